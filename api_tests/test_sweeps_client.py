"""Sweeps through service.client and the `needle-service sweeps` command line, against the real
server: submit, wait with progress, list, show, cancel, delete; follow exits 0 with the table."""
import asyncio
import json

import pytest

from service.client import AsyncClient, Client, Conflict, NotFound, ValidationError

from .specs import long_teacher, sweep_base
from .test_cli import cli, write


def small_sweep(lrs=(0.03, 1e-6), epochs=3) -> dict:
    return {"base": sweep_base(epochs=epochs), "parameters": {"optimizer.lr": {"values": list(lrs)}},
            "max_parallel": 1, "early_stopping": {"type": "asha", "grace_epochs": 1}}  # in order


@pytest.fixture(scope="module")
def client(server):
    with Client(str(server.client.base_url), poll_interval=0.05) as c:
        yield c


def test_client_submits_waits_lists_and_deletes_a_sweep(client):
    sweep = client.submit_sweep(small_sweep())
    seen = []
    done = client.wait_sweep(sweep["id"], timeout=60, on_progress=seen.append)
    assert done["status"] == "succeeded" and seen[-1]["status"] == "succeeded"
    assert done["best"]["params"] == {"optimizer.lr": 0.03}
    assert sweep["id"] in [s["id"] for s in client.list_sweeps(limit=5)]
    assert client.get_sweep(sweep["id"])["counts"] == done["counts"]
    trial = client.get(done["trials"][1]["job_id"])          # trials are jobs
    assert trial["sweep_id"] == sweep["id"] and trial["params"] == {"optimizer.lr": 1e-6}
    with pytest.raises(Conflict):
        client.cancel_sweep(sweep["id"])
    client.delete_sweep(sweep["id"])
    with pytest.raises(NotFound):
        client.get_sweep(sweep["id"])
    with pytest.raises(ValidationError) as caught:
        client.submit_sweep({"base": sweep_base(), "parameters": {"optimizer.lr": {"values": [-1]}}})
    assert any("optimizer.lr" in line for line in caught.value.lines())


def test_async_client_cancels_a_sweep(server):
    async def scenario():
        async with AsyncClient(str(server.client.base_url), poll_interval=0.05) as aclient:
            base = long_teacher(epochs=200)
            base["data"]["validation"] = {"type": "fraction", "fraction": 0.2}
            sweep = await aclient.submit_sweep({"base": base, "parameters": {
                "training.seed": {"values": [0, 1, 2]}}, "max_parallel": 1})
            cancelled = await aclient.cancel_sweep(sweep["id"])
            assert cancelled["cancel_requested"]
            return await aclient.wait_sweep(sweep["id"], timeout=60)
    done = asyncio.run(scenario())
    assert done["status"] == "cancelled" and done["counts"] == {"cancelled": 3}


def test_cli_sweeps_submit_follow_show_and_list(server, tmp_path):
    done = cli(server, "sweeps", "submit", write(tmp_path / "s.json", small_sweep()), "--follow",
               check_code=0)
    assert "submitted sweep" in done.stdout and "succeeded: 2 trials" in done.stdout
    assert "best: trial 0 val_loss" in done.stdout and "OPTIMIZER.LR" in done.stdout
    assert "pruned" in done.stdout and "running  2 trials" in done.stderr  # the progress lines
    sweep_id = done.stdout.split("submitted sweep ", 1)[1].split()[0]
    shown = json.loads(cli(server, "sweeps", "show", sweep_id, "--json", check_code=0).stdout)
    assert shown["id"] == sweep_id and shown["best"]["trial"] == 0
    assert sweep_id in cli(server, "sweeps", "list", check_code=0).stdout
    bad = cli(server, "sweeps", "submit", write(tmp_path / "bad.json", {
        "base": sweep_base(), "parameters": {"optimizer.nope": {"values": [1]}}}), check_code=2)
    assert "optimizer.nope" in bad.stderr
    assert cli(server, "sweeps", "delete", sweep_id, check_code=0).returncode == 0
    assert cli(server, "sweeps", "show", sweep_id).returncode == 1
