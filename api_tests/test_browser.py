"""The docs and the dashboard in real headless Chromium, against the real server over HTTP."""
import os
import shutil
from pathlib import Path

import pytest

from .browser import PageLog, browser  # noqa: F401 - the fixture
from .server import Server, wait_for
from .specs import long_teacher, spirals

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("browser"), workers=2).start()
    yield running
    running.stop()


@pytest.fixture
def page(browser, site):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    log = PageLog(page, str(site.client.base_url))
    yield page, log
    context.close()


def test_docs_render_offline_and_try_it_out_submits(page, site):
    page, log = page
    page.goto(f"{site.client.base_url}/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() >= 10
    operation = page.locator("#operations-jobs-submit_job_v1_jobs_post")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip().startswith("202")
    page.goto(f"{site.client.base_url}/redoc")
    page.locator("h2", has_text="Submit a training job").first.wait_for()
    assert log.foreign() == [], log.foreign()
    assert log.csp_violations() == []
    assert not [line for line in log.console if line.startswith("pageerror")], log.console


def test_dashboard_lists_follows_and_compares_jobs(page, site, tmp_path):
    page, log = page
    quick = [site.train(spirals(seed=seed, epochs=4))["id"] for seed in (1, 2)]
    long_spec = long_teacher(epochs=400, seed=5)  # trains for many seconds
    long_spec["data"]["validation"] = {"type": "fraction", "fraction": 0.2}
    long_job = site.submit(long_spec)["id"]
    site.wait_until(long_job, lambda job: job["status"] == "running", what="the long job to start")
    page.goto(f"{site.client.base_url}/")  # redirects to /ui/
    for job_id in (*quick, long_job):
        page.locator(f'tr[data-job-id="{job_id}"]').wait_for()
    page.select_option("#status-filter", "succeeded")
    page.wait_for_function("() => [...document.querySelectorAll('#job-rows tr[data-status]')]"
                           ".every(r => r.dataset.status === 'succeeded')")
    assert page.locator(f'tr[data-job-id="{long_job}"]').count() == 0

    page.goto(f"{site.client.base_url}/ui/#/job/{long_job}")
    chart = page.locator("#loss-chart")
    counts = [_points(chart, page, above=0)]
    for _ in range(3):  # the curve grows while the job trains
        counts.append(_points(chart, page, above=counts[-1]))
    assert counts == sorted(counts) and counts[-1] > counts[0]
    page.locator("#ema").fill("0.9")
    assert page.locator("#loss-chart canvas").count() >= 1
    _screenshot(page, tmp_path)
    page.locator("#cancel").click()
    site.wait_until(long_job, lambda job: job["status"] == "cancelled", what="the cancel")
    page.locator(".status.cancelled").first.wait_for()

    page.goto(f"{site.client.base_url}/ui/#/compare?ids={quick[0]},{quick[1]}")
    page.wait_for_function("() => document.querySelector('#compare-chart').dataset.series === '2'")
    assert page.locator("#compare-legend li").count() == 2
    series = page.locator("#compare-chart .u-legend .u-series")
    assert series.count() == 3  # the step axis and two jobs
    assert log.foreign() == [], log.foreign()
    assert log.csp_violations() == []


def _points(chart, page, above: int) -> int:
    page.wait_for_function(f"() => Number(document.querySelector('#loss-chart').dataset.points) > {above}",
                           timeout=TIMEOUT_MS)
    return int(chart.get_attribute("data-points"))


def _screenshot(page, tmp_path: Path) -> None:
    """Into the test's directory; with NEEDLE_UPDATE_SCREENSHOT=1 also over docs/dashboard.png
    (the README's)."""
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    if os.environ.get("NEEDLE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(shot, SCREENSHOT)


@pytest.fixture(scope="module")
def secured_site(tmp_path_factory):
    """A server that requires API keys, and one key."""
    server = Server(tmp_path_factory.mktemp("browser-auth"), workers=1,
                    env={"NEEDLE_AUTH": "required"})
    key = server.create_key("dashboard")
    server.start()
    yield server, key
    server.stop()


def test_dashboard_sends_the_saved_api_key(browser, secured_site):  # noqa: F811
    server, key = secured_site
    with server.client_for(key) as client:
        job = client.post("/v1/jobs", json=spirals(seed=3, epochs=3)).json()
        wait_for(lambda: client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded", 60,
                 "the job to succeed")
        points = len(client.get(f"/v1/jobs/{job['id']}/metrics/series").json()["step"])
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{server.client.base_url}/ui/")
        page.locator("#banner", has_text="401").wait_for()  # the page loads; its data needs a key
        page.fill("#api-key", key)
        page.click("#key-form button")
        page.locator(f'tr[data-job-id="{job["id"]}"]').wait_for()
        page.goto(f"{server.client.base_url}/ui/#/job/{job['id']}")
        page.locator(".status.succeeded").first.wait_for()  # read with the key
        assert _points(page.locator("#loss-chart"), page, above=0) == points
        assert page.evaluate("localStorage.getItem('needle.apiKey')") == key
    finally:
        context.close()
