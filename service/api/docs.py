"""/docs (Swagger UI) and /redoc served with every asset from the service itself (vendored under
static/vendor, see VENDORED.md), so that the API explorer works on a machine without internet."""
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Swagger UI</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="/static/vendor/swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/docs/swagger-init.js" data-openapi="{openapi}"
        data-oauth2-redirect="{redirect}"></script>
</body></html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="/static/vendor/swagger-ui/favicon-32x32.png">
<style>body {{ margin: 0; padding: 0; }}</style></head>
<body><div id="redoc"></div>
<script src="/static/vendor/redoc/redoc.standalone.js"></script>
<script src="/static/docs/redoc-init.js" data-openapi="{openapi}"></script>
</body></html>
"""


def install_docs(app: FastAPI) -> None:
    """Mount /static and add /docs, its OAuth2 redirect page and /redoc (create the app with
    docs_url=None and redoc_url=None so FastAPI's CDN-based pages are not registered)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    fields = {"title": app.title, "openapi": app.openapi_url, "redirect": OAUTH2_REDIRECT}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(SWAGGER_PAGE.format(**fields))

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(REDOC_PAGE.format(**fields))
