"""The needle model the client hands back: the trained model behind the input preprocessing it
was trained with, so raw rows give /predict's answer. Imports needle and service.training (the
client imports this module only from to_needle)."""
from __future__ import annotations

from typing import Any

import needle
from needle import nn
from service.training.builders import model_input
from service.training.inference import input_rows
from service.training.preprocess import apply_preprocess


class PreprocessedModel(nn.Module):
    """Raw x -> the model's preprocessing -> the trained model, exactly as /predict runs it.

    `model` is the bare trained model (its state_dict has the keys of the job's needle-layout
    parameters, prefixed "model."); `preprocess` the fitted preprocessing from the parameters'
    header ({"type": "none"}, {"type": "scale", "factor"} or {"type": "standardize", "mean",
    "std"}). forward takes rows (N, F) -- or images (N, C, H, W) for a model with that
    input_shape -- as a needle Tensor or numpy array. The preprocessing runs in numpy (float32
    input, float64 arithmetic, float32 result, as on the server), so no gradient flows back to x."""

    def __init__(self, model: nn.Module, model_spec: dict[str, Any], preprocess: dict[str, Any]):
        super().__init__()
        self.model = model
        self.model_spec = model_spec
        self.preprocess = preprocess

    def forward(self, x) -> needle.Tensor:
        raw = x.numpy() if isinstance(x, needle.Tensor) else x
        rows = apply_preprocess(self.preprocess, input_rows(raw, self.model_spec))  # (N, F)
        batch = model_input(self.model_spec, rows)  # (N, F) or (N, C, H, W)
        return self.model(needle.Tensor(batch, dtype="float32", requires_grad=False))
