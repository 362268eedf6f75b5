"""Request dependencies, declared once as Annotated aliases."""
from typing import Annotated

from fastapi import Depends, Request

from ..jobs import JobStore
from ..settings import Settings


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


def get_store(request: Request) -> JobStore:
    """The job store opened by the app's lifespan."""
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
