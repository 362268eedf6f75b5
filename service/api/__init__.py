"""HTTP API: the app factory and its thin route modules."""
from .app import create_app

__all__ = ["create_app"]
