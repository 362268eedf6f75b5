"""The committed openapi.json is rendered from the app, never edited by hand."""
import json

from ..settings import Settings
from .app import create_app


def render_openapi() -> str:
    """The OpenAPI document as stable, diff-friendly JSON text."""
    # the schema does not depend on runtime settings; workers=0 keeps it from probing the CPU count
    schema = create_app(Settings(workers=0)).openapi()
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
