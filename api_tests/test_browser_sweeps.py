"""The dashboard's sweep pages in real headless Chromium, against the real server over HTTP: the
list, then one sweep's trials table (best starred, pruned trials), overlaid objective curves and
parameter scatters."""
from .browser import PageLog, browser  # noqa: F401 - the fixture
from .test_browser import TIMEOUT_MS, page, site  # noqa: F401 - the fixtures

LRS = [0.03, 1e-6, 1e-7]   # in order: the good one reaches each rung first, the others are pruned


def test_sweep_page_shows_trials_curves_and_scatters(page, site):  # noqa: F811
    page, log = page
    sweep = site.submit_sweep({"base": {
        "model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16, "num_blocks": 1,
                  "num_classes": 3, "norm": "layernorm", "drop_prob": 0.0},
        "optimizer": {"type": "adam", "lr": 0.01},
        "data": {"type": "spirals", "n_samples": 300, "validation": {"type": "fraction", "fraction": 0.25}},
        "training": {"epochs": 4}},
        "parameters": {"optimizer.lr": {"values": LRS}}, "max_parallel": 1,
        "early_stopping": {"type": "asha", "grace_epochs": 1, "reduction_factor": 3}})
    done = site.finish_sweep(sweep["id"])
    assert done["counts"] == {"succeeded": 1, "pruned": 2}

    page.goto(f"{site.client.base_url}/ui/#/sweeps")
    page.locator(f'tr[data-sweep-id="{sweep["id"]}"] .status.succeeded').wait_for()
    page.locator(f'tr[data-sweep-id="{sweep["id"]}"] a').click()
    page.wait_for_function("() => document.querySelectorAll('#trial-rows tr[data-trial]').length === 3")
    assert page.locator("#trial-rows tr.best").get_attribute("data-trial") == "0"
    assert "★" in page.locator("#trial-rows tr.best").inner_text()
    assert page.locator('#trial-rows tr[data-status="pruned"]').count() == 2
    page.wait_for_function("() => document.querySelector('#sweep-curves').dataset.series === '3'",
                           timeout=TIMEOUT_MS)
    assert page.locator("#sweep-curves canvas").count() >= 1
    assert page.locator("#sweep-curves .u-legend .u-series").count() == 4   # epoch axis + 3 trials
    scatter = page.locator('#sweep-scatter svg.scatter[data-points="3"]')
    assert scatter.count() == 1 and scatter.locator("circle.best").count() == 1
    assert scatter.locator("circle.pruned").count() == 2
    page.locator(f'#sweep-header a[href="#/job/{done["best"]["job_id"]}"]').click()
    page.locator("#job-header .status.succeeded").wait_for()
    assert log.foreign() == [], log.foreign()
    assert log.csp_violations() == []
    assert not [line for line in log.console if line.startswith("pageerror")], log.console
