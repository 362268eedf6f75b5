"""Headless Debian Chromium driven by Playwright (never a downloaded browser): skipped when absent,
a failure under CI (like PostgreSQL in tests/pg.py)."""
import os
import shutil

import pytest

CHROMIUM = os.environ.get("NEEDLE_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage"]


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}: the browser tests must run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright; no browser download)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield instance
        instance.close()


class PageLog:
    """Every request a page makes and every console message it logs."""

    def __init__(self, page, origin: str):
        self.origin = origin.rstrip("/")
        self.requests: list[str] = []
        self.console: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def foreign(self) -> list[str]:
        """Requests to any other origin (data: and blob: URLs are the page's own)."""
        return [url for url in self.requests if not url.startswith((self.origin + "/", "data:", "blob:"))]

    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]
