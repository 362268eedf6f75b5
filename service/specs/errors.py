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


def union_tag(node: Any) -> Any:
    """The tag pydantic puts into error locations below a tagged-union member: its "type", or
    "values" for a sweep distribution written without one ({"values": [...]})."""
    if not isinstance(node, dict):
        return None
    if "type" in node:
        return node["type"]
    return "values" if "values" in node else None


def plain_loc(loc: Loc, doc: Any) -> Loc:
    """`loc` (relative to the JSON document `doc`) without the discriminator values pydantic
    inserts, so that ("model", "sequential", "layers", 2) becomes ("model", "layers", 2): a path
    that exists in the document.

    pydantic puts a member's tag right after the member's own path, so the first matching part
    below a tagged object is its tag (then e.g. {"type": "fraction", "fraction": 2} yields
    ..., "fraction", "fraction")."""
    out: list[str | int] = []
    node, tag_skipped = doc, False
    for part in loc:
        if not tag_skipped and union_tag(node) is not None and union_tag(node) == part:
            tag_skipped = True
            continue
        out.append(part)
        node, tag_skipped = _child(node, part), False
    return tuple(out)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None
