"""Named numpy arrays + a JSON header <-> safetensors bytes (no pickle anywhere)."""
import json
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

HEADER_KEY = "needle_service"


def pack(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> bytes:
    """safetensors bytes holding the arrays, with `header` as JSON in the file metadata."""
    contiguous = {name: np.require(array, requirements="C") for name, array in arrays.items()}  # keeps 0-d
    return st_save(contiguous, metadata={HEADER_KEY: json.dumps(header)})


def unpack(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Inverse of pack: (arrays, header); ValueError when the bytes are not ours."""
    try:
        arrays = st_load(bytes(blob))
        header = json.loads(read_metadata(blob).get(HEADER_KEY, "{}"))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"not a needle-service safetensors blob: {exc}") from exc
    return arrays, header


def read_metadata(blob: bytes) -> dict[str, str]:
    """The safetensors __metadata__ dict (header = 8-byte little-endian length + JSON)."""
    length = int.from_bytes(blob[:8], "little")
    return json.loads(bytes(blob[8:8 + length])).get("__metadata__") or {}
