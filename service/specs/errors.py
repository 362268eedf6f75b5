"""Raise pydantic validation errors at an exact field path from inside a model validator."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Loc = tuple[str | int, ...]


def spec_error(title: str, issues: list[tuple[Loc, str, Any]]) -> ValidationError:
    """A ValidationError with one `value_error` per (loc, message, input); pydantic prefixes
    the caller's location, so each loc is relative to the model being validated."""
    details = [
        InitErrorDetails(type=PydanticCustomError("value_error", "{reason}", {"reason": message}),
                         loc=loc, input=value)
        for loc, message, value in issues
    ]
    return ValidationError.from_exception_data(title, details)
