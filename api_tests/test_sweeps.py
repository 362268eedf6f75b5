"""Sweeps over HTTP against the real server: grid and random trials, max_parallel, ASHA pruning,
422s naming the parameter, cancel and delete."""
import pytest

from .specs import long_teacher, sweep_base

GOOD_AND_HOPELESS_LRS = [0.03, 0.01, 0.003, 1e-6, 3e-7, 1e-7]   # the last three cannot learn
ASHA = {"type": "asha", "grace_epochs": 1, "reduction_factor": 3, "max_epochs": 9}  # rungs 1, 3


def lr_sweep(max_parallel: int, early_stopping: dict | None = None) -> dict:
    return {"base": sweep_base(epochs=9), "parameters": {"optimizer.lr": {"values": GOOD_AND_HOPELESS_LRS}},
            "strategy": {"type": "grid"}, "max_parallel": max_parallel,
            "objective": {"metric": "val_loss", "mode": "min"}, "early_stopping": early_stopping}


def most_at_once(trials: list[dict]) -> int:
    """The most trials running at the same moment, from their started_at/finished_at stamps
    (ISO 8601 UTC strings of one format: they sort as times)."""
    events = sorted([(t["started_at"], 1) for t in trials] + [(t["finished_at"], -1) for t in trials],
                    key=lambda event: (event[0], event[1]))   # an end before a start at a tie
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_a_3x3_grid_runs_9_trials_in_order_and_reports_the_true_best(server):
    lrs, widths = [0.03, 0.003, 1e-6], [8, 16, 32]
    sweep = server.submit_sweep({"base": sweep_base(epochs=3), "max_parallel": 2,
                                 "parameters": {"optimizer.lr": {"values": lrs},
                                                "model.hidden_dim": {"values": widths}}})
    assert sweep["n_trials"] == 9 and sweep["counts"] == {"queued": 2, "waiting": 7}
    done = server.finish_sweep(sweep["id"])
    assert done["status"] == "succeeded" and done["counts"] == {"succeeded": 9}
    trials = done["trials"]
    assert [t["params"] for t in trials] == [{"optimizer.lr": lr, "model.hidden_dim": width}
                                            for lr in lrs for width in widths]  # last varies fastest
    objectives = {}
    for trial in trials:
        job = server.job(trial["job_id"])
        assert job["sweep_id"] == sweep["id"] and job["trial"] == trial["trial"]
        assert job["spec"]["optimizer"]["lr"] == trial["params"]["optimizer.lr"]
        assert job["spec"]["model"]["hidden_dim"] == trial["params"]["model.hidden_dim"]
        assert trial["objective"] == job["result"]["val_loss"] and trial["epochs_run"] == 3
        objectives[trial["trial"]] = job["result"]["val_loss"]
    true_best = min(objectives, key=objectives.get)
    assert done["best"]["trial"] == true_best and done["best"]["objective"] == objectives[true_best]
    assert most_at_once(trials) <= 2


def test_a_random_sweep_is_reproducible_from_its_seed(api_only):
    def sweep(seed: int) -> dict:
        return {"base": sweep_base(), "strategy": {"type": "random", "n_trials": 8, "seed": seed},
                "max_parallel": 8,
                "parameters": {"optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 0.1},
                               "model.hidden_dim": {"type": "int_uniform", "low": 4, "high": 64},
                               "optimizer.weight_decay": {"type": "uniform", "low": 0, "high": 0.01},
                               "training.batch_size": {"values": [16, 32, 64]}}}
    params = [[t["params"] for t in api_only.submit_sweep(sweep(seed))["trials"]] for seed in (7, 7, 8)]
    assert params[0] == params[1] and params[0] != params[2]
    for trial in params[0] + params[2]:
        assert 1e-4 <= trial["optimizer.lr"] <= 0.1 and 4 <= trial["model.hidden_dim"] <= 64
        assert 0 <= trial["optimizer.weight_decay"] <= 0.01 and trial["training.batch_size"] in (16, 32, 64)
    assert len({t["optimizer.lr"] for t in params[0]}) == 8


def test_asha_prunes_hopeless_trials_at_the_first_rung_and_saves_epochs(server):
    # max_parallel 1 makes the arrival order at each rung the trial order, so the outcome is
    # fixed (training itself is deterministic); it also checks that a second idle worker waits
    full = server.finish_sweep(server.submit_sweep(lr_sweep(max_parallel=1))["id"])
    asha = server.finish_sweep(server.submit_sweep(lr_sweep(max_parallel=1, early_stopping=ASHA))["id"])
    for sweep in (full, asha):
        assert most_at_once(sweep["trials"]) == 1
    by_lr = {t["params"]["optimizer.lr"]: t for t in asha["trials"]}
    for lr in (1e-6, 3e-7, 1e-7):
        assert by_lr[lr]["status"] == "pruned" and by_lr[lr]["pruned_at_epoch"] == 1
        assert by_lr[lr]["epochs_run"] == 1
    assert asha["counts"]["pruned"] >= 3 and asha["status"] == "succeeded"
    best = asha["best"]
    assert best["status"] == "succeeded" and best["epochs_run"] == 9
    assert best["params"] == full["best"]["params"] and best["objective"] == full["best"]["objective"]
    assert full["total_epochs"] == 9 * len(GOOD_AND_HOPELESS_LRS)
    ratio = asha["total_epochs"] / full["total_epochs"]
    print(f"ASHA used {asha['total_epochs']} of {full['total_epochs']} epochs ({ratio:.2f})")
    assert ratio < 0.5
    pruned_job = server.job(by_lr[1e-7]["job_id"])
    assert pruned_job["status"] == "pruned" and pruned_job["result"]["stopped"] == "pruned"
    assert pruned_job["has_parameters"]


@pytest.mark.parametrize("parameters, strategy, loc", [
    ({"optimizer.lr": {"values": [0.01, -1]}}, "grid", ["body", "parameters", "optimizer.lr", "values", 1]),
    ({"optimizer.learning_rate": {"values": [0.01]}}, "grid", ["body", "parameters", "optimizer.learning_rate"]),
    ({"model.layers.2.p": {"values": [0.1]}}, "grid", ["body", "parameters", "model.layers.2.p"]),
    ({"model.hidden_dim": {"values": [16, 2.5]}}, "grid", ["body", "parameters", "model.hidden_dim", "values", 1]),
    ({"optimizer.lr": {"type": "uniform", "low": 0.001, "high": 0.1}}, "grid", ["body", "parameters", "optimizer.lr"]),
    ({"optimizer.lr": {"type": "uniform", "low": -1, "high": 0}}, {"type": "random", "n_trials": 3},
     ["body", "parameters", "optimizer.lr"]),
    ({"optimizer.lr": {"type": "loguniform", "low": 0, "high": 1}}, {"type": "random", "n_trials": 3},
     ["body", "parameters", "optimizer.lr", "low"]),
    ({"training.epochs": {"values": [2, 5000]}}, "grid", ["body", "parameters", "training.epochs", "values", 1]),
    ({"optimizer.lr": {"values": []}}, "grid", ["body", "parameters", "optimizer.lr", "values"]),
])
def test_invalid_paths_and_values_are_422s_naming_them_and_create_nothing(api_only, parameters, strategy, loc):
    before = len(api_only.client.get("/v1/jobs", params={"limit": 500}).json()["items"])
    sweeps_before = len(api_only.client.get("/v1/sweeps", params={"limit": 500}).json()["items"])
    response = api_only.client.post("/v1/sweeps", json={"base": sweep_base(), "parameters": parameters,
                                                        "strategy": strategy})
    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]], response.text
    assert len(api_only.client.get("/v1/jobs", params={"limit": 500}).json()["items"]) == before
    assert len(api_only.client.get("/v1/sweeps", params={"limit": 500}).json()["items"]) == sweeps_before


def test_an_invalid_base_is_a_422_at_the_base(api_only):
    base = sweep_base()
    base["model"]["in_features"] = 3
    del base["data"]["validation"]
    response = api_only.client.post("/v1/sweeps", json={"base": base, "parameters": {
        "optimizer.lr": {"values": [0.1]}}})
    assert response.status_code == 422
    locs = [error["loc"] for error in response.json()["detail"]]
    assert ["body", "base", "model", "in_features"] in locs, locs


def test_cancel_stops_every_trial_and_delete_removes_them(server):
    base = long_teacher(epochs=200)
    base["data"]["validation"] = {"type": "fraction", "fraction": 0.2}
    sweep = server.submit_sweep({"base": base, "max_parallel": 2,
                                 "parameters": {"optimizer.lr": {"values": [0.001, 0.002, 0.003, 0.004, 0.005]}}})
    assert server.client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 409
    for trial in sweep["trials"][:2]:
        server.wait_until(trial["job_id"], lambda job: job["status"] == "running", what="a running trial")
    cancelled = server.client.post(f"/v1/sweeps/{sweep['id']}/cancel").json()
    assert cancelled["cancel_requested"]
    assert [t["status"] for t in cancelled["trials"][2:]] == ["cancelled"] * 3
    done = server.finish_sweep(sweep["id"], timeout=60)
    assert done["status"] == "cancelled" and done["counts"] == {"cancelled": 5}
    assert all(t["started_at"] is None for t in done["trials"][2:])   # the waiting ones never ran
    assert server.client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 409
    assert server.client.delete(f"/v1/jobs/{done['trials'][0]['job_id']}").status_code == 409
    assert server.client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204
    assert server.client.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert server.client.get(f"/v1/jobs/{done['trials'][0]['job_id']}").status_code == 404


def test_sweeps_list_with_cursor_pages_and_unknown_sweeps_are_404(api_only):
    ids = [api_only.submit_sweep({"base": sweep_base(), "parameters": {
        "optimizer.lr": {"values": [0.01]}}})["id"] for _ in range(3)]
    first = api_only.client.get("/v1/sweeps", params={"limit": 2}).json()
    second = api_only.client.get("/v1/sweeps", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    listed = [s["id"] for s in first["items"] + second["items"]]
    assert listed[:3] == ids[::-1]
    assert api_only.client.get("/v1/sweeps", params={"cursor": "x"}).status_code == 422
    for method, path in (("GET", "/v1/sweeps/nope"), ("POST", "/v1/sweeps/nope/cancel"),
                         ("DELETE", "/v1/sweeps/nope")):
        assert api_only.client.request(method, path).status_code == 404
