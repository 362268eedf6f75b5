"""Job specs as polls show them: inline data arrays (possibly megabytes) replaced by their sizes."""
import math
from typing import Any

INLINE_ARRAYS = ("x", "y")


def _sample_shape(row: Any) -> tuple[int, ...]:
    """(F,) of a feature row, (C, H, W) of an image row (nested lists)."""
    if row and isinstance(row[0], list):
        return (len(row), len(row[0]), len(row[0][0]) if row[0] else 0)
    return (len(row),)


def brief_spec(spec: Any) -> Any:
    """A copy of the normalised spec where every inline data source keeps its other fields but
    drops `x` and `y` for `n_rows` and `n_features` (C*H*W for images, plus `image_shape`);
    idempotent, and cheap on small specs."""
    if isinstance(spec, list):
        return [brief_spec(item) for item in spec]
    if not isinstance(spec, dict):
        return spec
    if spec.get("type") == "inline" and "x" in spec:
        x = spec["x"]
        shape = _sample_shape(x[0]) if x else (0,)
        sizes = {"n_rows": len(x), "n_features": math.prod(shape)}
        if len(shape) == 3:
            sizes["image_shape"] = list(shape)
        return {**{k: brief_spec(v) for k, v in spec.items() if k not in INLINE_ARRAYS}, **sizes}
    return {key: brief_spec(value) for key, value in spec.items()}
