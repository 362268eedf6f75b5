"""CSV dataset uploads over HTTP: a header row, the label column named by a form field (default
`label`), and a 422 naming the line and column of whatever is malformed."""
import pytest


def upload_csv(server, text: str, **form):
    return server.client.post("/v1/datasets", files={"file": ("rows.csv", text.encode())},
                              data=form or None)


def test_csv_upload_with_default_and_named_label_columns(api_only):
    created = upload_csv(api_only, "a,b,label\n0.5,1,0\n-2,3e-1,2\n\n4,5,1.0\n")
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert (dataset["n_rows"], dataset["n_features"], dataset["n_classes"]) == (3, 2, 3)
    assert dataset["name"] == "rows.csv"
    named = upload_csv(api_only, "\ufeffy,f1\n1,0.25\n0,0.5\n", label_column="y", name="mine")
    assert named.status_code == 201, named.text
    assert (named.json()["n_features"], named.json()["name"]) == (1, "mine")


def test_a_csv_dataset_trains_a_job(server):
    rows = "\n".join(f"{i % 7 / 7},{(i * 3) % 5 / 5},{i % 2}" for i in range(60))
    dataset = upload_csv(server, "x1,x2,label\n" + rows + "\n").json()
    job = server.train({"model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 8,
                                  "num_blocks": 1, "num_classes": 2},
                        "data": {"type": "dataset", "id": dataset["id"]},
                        "training": {"epochs": 1}})
    assert job["progress"]["steps"] == 2


@pytest.mark.parametrize("text,form,message", [
    ("", {}, "line 1: the CSV is empty"),
    ("a,b\n1,2\n", {}, "line 1: no label column 'label'"),
    ("a,label\n1,0\n", {"label_column": "y"}, "line 1: no label column 'y'"),
    ("a,a,label\n1,2,0\n", {}, "line 1: duplicate column name(s) ['a']"),
    ("label\n1\n", {}, "line 1: the CSV needs at least one feature column"),
    ("a,label\n", {}, "no data rows"),
    ("a,b,label\n1,2,0\n3,4\n", {}, "line 3: 2 fields, but the header has 3"),
    ("a,b,label\n1,2,0\n3,oops,1\n", {}, "line 3, column 'b': 'oops' is not a number"),
    ("a,b,label\n1,nan,0\n", {}, "line 2, column 'b': 'nan' is not a finite number"),
    ("a,label\n1,0\n2,1.5\n", {}, "line 3, column 'label': '1.5' is not a class label"),
    ("a,label\n1,-1\n", {}, "line 2, column 'label': '-1' is not a class label"),
    ('a,label\n"1,0\n', {}, "line 2: malformed CSV"),
], ids=["empty", "no-label", "named-label-missing", "duplicate", "labels-only", "no-rows",
        "short-row", "not-a-number", "nan", "fractional-label", "negative-label", "bad-quote"])
def test_malformed_csv_is_a_422_naming_line_and_column(api_only, text, form, message):
    before = api_only.client.get("/v1/datasets").json()
    response = upload_csv(api_only, text, **form)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "file"] and message in detail["msg"], detail["msg"]
    assert "pickle" not in response.text
    assert api_only.client.get("/v1/datasets").json() == before


def test_non_utf8_csv_is_a_422(api_only):
    response = api_only.client.post("/v1/datasets", files={"file": ("r.csv", b"a,label\n\xff,1\n")})
    assert response.status_code == 422 and "not UTF-8" in response.text
