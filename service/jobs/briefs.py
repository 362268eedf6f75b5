"""Job specs as polls show them: inline data arrays (possibly megabytes) replaced by their sizes."""
from typing import Any

INLINE_ARRAYS = ("x", "y")


def brief_spec(spec: Any) -> Any:
    """A copy of the normalised spec where every inline data source keeps its other fields but
    drops `x` and `y` for `n_rows` and `n_features`; idempotent, and cheap on small specs."""
    if isinstance(spec, list):
        return [brief_spec(item) for item in spec]
    if not isinstance(spec, dict):
        return spec
    if spec.get("type") == "inline" and "x" in spec:
        x = spec["x"]
        sizes = {"n_rows": len(x), "n_features": len(x[0]) if x else 0}
        return {**{k: brief_spec(v) for k, v in spec.items() if k not in INLINE_ARRAYS}, **sizes}
    return {key: brief_spec(value) for key, value in spec.items()}
