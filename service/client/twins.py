"""The trained model rebuilt locally from its spec, downloaded state and fitted preprocessing:
needle or PyTorch, each wrapped so that it takes the raw rows (or images) /predict takes.

The one place the client imports beyond service.specs: `needle_model` reuses the service's own
spec -> needle builder and preprocessing (service.training) rather than a second copy of them,
imported only when a needle model is asked for."""
from __future__ import annotations

from typing import Any

import numpy as np


def needle_model(model_spec: dict[str, Any], state: dict[str, np.ndarray],
                 preprocess: dict[str, Any]):
    """needle_twin.PreprocessedModel: `preprocess` (fitted) then the model of `model_spec` with
    `state` (needle layout) loaded, in eval mode."""
    from service.training.builders import build_model

    from .needle_twin import PreprocessedModel
    rng_state = np.random.get_state()  # building draws initial weights: keep the caller's stream
    try:
        model = build_model(model_spec)
    finally:
        np.random.set_state(rng_state)
    model.load_state_dict(state)
    return PreprocessedModel(model, model_spec, preprocess).eval()


def torch_model(model_spec: dict[str, Any], state: dict[str, np.ndarray],
                preprocess: dict[str, Any]):
    """torch_twin.PreprocessedModel: `preprocess` (fitted) then the torch.nn.Module twin of
    `model_spec` with `state` (torch layout) loaded strictly, in eval mode."""
    import torch
    from service.specs import model_widths, parse_model

    from .torch_twin import Preprocess, PreprocessedModel, from_model_spec
    module = from_model_spec(model_spec)
    module.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in
                            state.items()}, strict=True)
    width, _ = model_widths(parse_model(model_spec))
    steps = Preprocess(preprocess, width, model_spec.get("input_shape"))
    return PreprocessedModel(steps, module).eval()
