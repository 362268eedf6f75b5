"""The dashboard: static pages under /ui/ (no build step), and / redirects there."""
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from .docs import STATIC_DIR


def install_dashboard(app: FastAPI) -> None:
    """Mount /ui/ and redirect / to it."""
    app.mount("/ui", StaticFiles(directory=STATIC_DIR / "ui", html=True), name="ui")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/")
