"""The trained model rebuilt locally from its spec and downloaded state: needle or PyTorch.

The one place the client imports beyond service.specs: `needle_model` reuses the service's own
spec -> needle builder (service.training.builders) rather than a second copy of it, imported
only when a needle model is asked for."""
from __future__ import annotations

from typing import Any

import numpy as np


def needle_model(model_spec: dict[str, Any], state: dict[str, np.ndarray]):
    """needle Module of `model_spec` with `state` (needle layout) loaded, in eval mode."""
    from service.training.builders import build_model
    rng_state = np.random.get_state()  # building draws initial weights: keep the caller's stream
    try:
        model = build_model(model_spec)
    finally:
        np.random.set_state(rng_state)
    model.load_state_dict(state)
    return model.eval()


def torch_model(model_spec: dict[str, Any], state: dict[str, np.ndarray]):
    """torch.nn.Module twin of `model_spec` with `state` (torch layout) loaded strictly, in
    eval mode."""
    import torch

    from .torch_twin import from_model_spec
    module = from_model_spec(model_spec)
    module.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in
                            state.items()}, strict=True)
    return module.eval()
