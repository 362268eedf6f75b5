"""The installed `needle-service` command line against a real server, in subprocesses:
follow to the end with exit 0/1/3, one-line errors with field paths, and parseable --json."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .server import wait_for
from .specs import long_teacher, spirals, sweep_base

CLI = Path(sys.executable).with_name("needle-service")  # the entry point pip installed


def cli(server, *args: str, timeout: float = 120, check_code: int | None = None):
    env = {**os.environ, "NEEDLE_URL": str(server.client.base_url), "COLUMNS": "200"}
    env.pop("NEEDLE_API_KEY", None)
    done = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    if check_code is not None:
        assert done.returncode == check_code, (done.returncode, done.stdout, done.stderr)
    return done


def write(path: Path, doc) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def diverging() -> dict:
    rng = np.random.default_rng(0)
    return {"model": {"type": "sequential", "layers": [
        {"type": "linear", "in_features": 4, "out_features": 16}, {"type": "relu"},
        {"type": "linear", "in_features": 16, "out_features": 2}]},
        "optimizer": {"type": "sgd", "lr": 1e6},
        "data": {"type": "inline", "x": (rng.normal(size=(64, 4)) * 1000).round(1).tolist(),
                 "y": rng.integers(0, 2, 64).tolist()},
        "training": {"epochs": 50, "batch_size": 8}}


def test_submit_follow_exits_0_and_prints_the_final_metrics(server, tmp_path):
    done = cli(server, "submit", write(tmp_path / "s.json", spirals(seed=2, epochs=3)),
               "--follow", check_code=0)
    assert "succeeded after 3/3 epochs" in done.stdout
    assert "final metrics: train_loss" in done.stdout and "val_error" in done.stdout
    assert "epoch 3/3" in done.stderr  # the per-epoch lines that replace the bar in a pipe


def test_a_diverging_job_exits_1_with_its_error(server, tmp_path):
    done = cli(server, "submit", write(tmp_path / "d.json", diverging()), "--follow",
               check_code=1)
    assert " failed after " in done.stdout and "step" in done.stdout


def test_a_cancelled_job_exits_3(server, tmp_path):
    env = {**os.environ, "NEEDLE_URL": str(server.client.base_url)}
    follower = subprocess.Popen([str(CLI), "submit", write(tmp_path / "l.json", long_teacher(500)),
                                 "--follow", "--json"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def submitted():
        items = server.client.get("/v1/jobs", params={"limit": 5}).json()["items"]
        return next((j for j in items if j["progress"]["epochs"] == 500), None)
    target = wait_for(submitted, 60, "the CLI to submit")
    assert server.client.post(f"/v1/jobs/{target['id']}/cancel").status_code == 200
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 3, (out, err)
    assert json.loads(out)["status"] == "cancelled"


def test_a_bad_spec_prints_each_field_path_and_exits_2(server, tmp_path):
    bad = spirals()
    bad["model"]["hidden_dim"] = 1
    bad["training"]["epochs"] = 0
    done = cli(server, "submit", write(tmp_path / "bad.json", bad), check_code=2)
    assert "error: invalid request:" in done.stderr
    assert "\n  model.hidden_dim: " in done.stderr and "\n  training.epochs: " in done.stderr
    as_json = json.loads(cli(server, "submit", str(tmp_path / "bad.json"), "--json").stdout)
    assert as_json["status"] == 422 and as_json["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("args,message", [
    (("submit", "missing.json"), "cannot read missing.json"),
    (("jobs", "list", "--limit", "0"), "--limit must be at least 1"),
    (("jobs", "list", "--status", "bogus"), "status: Input should be"),
    (("predict", "x", "--input", "rows.txt"), "use a .csv, .npz or .json file"),
    (("evaluate", "x", "--input", "rows.txt"), "use a .csv (with a 'label' column)"),
    (("jobs", "list", "--tag", "team"), "--tag takes KEY=VALUE, not 'team'"),
    (("jobs", "list", "--sweep", "not an id"), "sweep_id: String should match pattern"),
])
def test_usage_errors_are_one_line_and_exit_2(server, args, message):
    done = cli(server, *args, check_code=2)
    assert done.stderr.strip().startswith("error:") and message in done.stderr


def test_argument_errors_exit_2(server):
    assert cli(server, "jobs", "frobnicate").returncode == 2


def test_unreachable_server_is_one_line_and_exit_1(server):
    done = subprocess.run([str(CLI), "jobs", "list", "--url", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "cannot reach the server" in done.stderr


def test_every_command_speaks_json(server, tmp_path):
    job = json.loads(cli(server, "submit", write(tmp_path / "s.json", spirals(seed=4)),
                         "--json", "--idempotency-key", "cli-json-1", check_code=0).stdout)
    again = json.loads(cli(server, "submit", str(tmp_path / "s.json"), "--json",
                           "--idempotency-key", "cli-json-1", check_code=0).stdout)
    assert again["id"] == job["id"]
    final = json.loads(cli(server, "jobs", "follow", job["id"], "--json", check_code=0).stdout)
    assert final["status"] == "succeeded"
    assert json.loads(cli(server, "jobs", "show", job["id"], "--json").stdout)["id"] == job["id"]
    listed = json.loads(cli(server, "jobs", "list", "--status", "succeeded", "--limit", "50",
                            "--json", check_code=0).stdout)
    assert job["id"] in [j["id"] for j in listed]
    assert job["id"] in cli(server, "jobs", "list", check_code=0).stdout  # the table

    meta = json.loads(cli(server, "params", job["id"], "-o", str(tmp_path / "p.npz"),
                          "--layout", "torch", "--json", check_code=0).stdout)
    assert meta["format"] == "npz" and Path(meta["path"]).stat().st_size == meta["bytes"]
    with np.load(tmp_path / "p.npz") as params:
        assert params["0.weight"].shape == (16, 2)  # torch layout: (out, in)

    rows = np.random.default_rng(3).normal(size=(4, 2))
    np.savetxt(tmp_path / "rows.csv", rows, delimiter=",", header="a,b", comments="")
    write(tmp_path / "rows.json", {"x": rows.tolist()})
    np.savez(tmp_path / "rows.npz", x=rows)
    expected = server.client.post(f"/v1/jobs/{job['id']}/predict",
                                  json={"x": rows.tolist()}).json()["classes"]
    for name in ("rows.csv", "rows.json", "rows.npz"):
        prediction = json.loads(cli(server, "predict", job["id"], "--input",
                                    str(tmp_path / name), "--json", check_code=0).stdout)
        assert prediction["classes"] == expected
    assert "PROBABILITIES" in cli(server, "predict", job["id"], "--input",
                                  str(tmp_path / "rows.csv"), check_code=0).stdout
    cli(server, "predict", job["id"], "--input", str(tmp_path / "rows.npz"), "-o",
        str(tmp_path / "out.csv"), check_code=0)
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "class,p0,p1,p2" and [int(l.split(",")[0]) for l in lines[1:]] == expected
    cli(server, "predict", job["id"], "--input", str(tmp_path / "rows.npz"), "-o",
        str(tmp_path / "out.json"), check_code=0)
    assert json.loads((tmp_path / "out.json").read_text())["classes"] == expected

    (tmp_path / "train.csv").write_text("f1,f2,cls\n0.1,0.2,1\n0.3,0.4,0\n")
    dataset = json.loads(cli(server, "datasets", "upload", str(tmp_path / "train.csv"),
                             "--name", "two", "--label-column", "cls", "--json",
                             check_code=0).stdout)
    assert (dataset["name"], dataset["n_rows"], dataset["n_features"]) == ("two", 2, 2)
    listed = json.loads(cli(server, "datasets", "list", "--json", check_code=0).stdout)
    assert dataset["id"] in [d["id"] for d in listed]
    cli(server, "datasets", "delete", dataset["id"], "--json", check_code=0)
    missing = cli(server, "datasets", "delete", dataset["id"], "--json", check_code=1)
    assert json.loads(missing.stdout)["status"] == 404
    assert json.loads(cli(server, "jobs", "delete", job["id"], "--json",
                          check_code=0).stdout) == {"deleted": job["id"]}


def test_evaluate_takes_csv_npz_json_or_a_dataset(server, tmp_path):
    job = server.train(spirals(seed=6))
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 2)), rng.integers(0, 3, size=30)
    expected = server.client.post(f"/v1/jobs/{job['id']}/evaluate", json={"data": {
        "type": "inline", "x": x.tolist(), "y": y.tolist()}}).json()
    np.savetxt(tmp_path / "l.csv", np.column_stack([y, x]), delimiter=",", header="cls,a,b",
               comments="")
    np.savez(tmp_path / "l.npz", x=x, y=y)
    write(tmp_path / "l.json", {"type": "inline", "x": x.tolist(), "y": y.tolist()})
    dataset = server.client.post("/v1/datasets", json={"x": x.tolist(), "y": y.tolist()}).json()
    for args in (("--input", str(tmp_path / "l.csv"), "--label-column", "cls"),
                 ("--input", str(tmp_path / "l.npz")), ("--input", str(tmp_path / "l.json")),
                 ("--dataset", dataset["id"])):
        evaluation = json.loads(cli(server, "evaluate", job["id"], *args, "--json",
                                    check_code=0).stdout)
        assert evaluation["confusion_matrix"] == expected["confusion_matrix"], args
        assert evaluation["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    table = cli(server, "evaluate", job["id"], "--input", str(tmp_path / "l.npz"),
                check_code=0).stdout
    assert table.startswith(f"classification on 30 rows: loss {expected['loss']:.4g}")
    assert "PRECISION" in table and "->2" in table
    no_label = cli(server, "evaluate", job["id"], "--input", str(tmp_path / "l.csv"), check_code=2)
    assert "a 'label' column (--label-column)" in no_label.stderr
    bad = cli(server, "evaluate", job["id"], "--input", write(tmp_path / "b.json", {
        "type": "spirals", "n_samples": -1}), check_code=2)
    assert "data.spirals.n_samples: " in bad.stderr


def test_jobs_list_filters_by_tag_name_prefix_and_sweep(api_only):
    submit = lambda name, tags: api_only.submit({**spirals(seed=1), "name": name, "tags": tags})["id"]
    a = submit("cli-a", {"team": "vision", "note": "x=y"})
    b = submit("cli-b", {"team": "vision"})
    sweep = api_only.submit_sweep({"base": sweep_base(epochs=1), "parameters": {
        "optimizer.lr": {"values": [0.01, 0.02]}}})
    listed = lambda *args: [job["id"] for job in json.loads(
        cli(api_only, "jobs", "list", *args, "--json", check_code=0).stdout)]
    assert listed("--tag", "team=vision") == [b, a]
    assert listed("--tag", "team=vision", "--tag", "note=x=y") == [a]  # split at the first =
    assert listed("--name-prefix", "cli-b") == [b]
    assert listed("--sweep", sweep["id"]) == [t["job_id"] for t in sweep["trials"]][::-1]
    table = cli(api_only, "jobs", "list", "--sweep", sweep["id"], "--status", "queued",
                check_code=0).stdout
    assert sweep["trials"][0]["job_id"] in table and a not in table
    api_only.client.post(f"/v1/sweeps/{sweep['id']}/cancel")
