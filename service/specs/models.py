"""Model specs: an MLP-ResNet or an explicit sequential stack (discriminated on "type")."""
from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter, model_validator

from .cost import MAX_MODEL_DEPTH, container_depth
from .errors import spec_error
from .layers import MAX_WIDTH, LayerSpec, _Spec
from .shapes import LOST, describe, trace_stack


class MLPResNetModel(_Spec):
    """needle.models.MLPResNet(in_features, hidden_dim, num_blocks, num_classes, norm, drop_prob)."""

    type: Literal["mlp_resnet"]
    in_features: int = Field(gt=0, le=MAX_WIDTH)
    hidden_dim: int = Field(default=100, ge=2, le=MAX_WIDTH)
    num_blocks: int = Field(default=3, ge=0, le=10_000)
    num_classes: int = Field(default=10, ge=1, le=MAX_WIDTH,
                             description="output width: classes, or regression targets")
    norm: Literal["batchnorm", "layernorm"] = "batchnorm"
    drop_prob: float = Field(default=0.1, ge=0, lt=1)
    activation: Literal["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu"] = Field(
        default="relu", description="every activation of the network (leaky_relu: slope 0.01)")


MAX_IMAGE_SIZE = 4096  # pixels per side
MAX_IMAGE_VALUES = 1_000_000  # C*H*W per sample


class SequentialModel(_Spec):
    """needle.nn.Sequential(*layers); shapes are checked through the whole stack."""

    type: Literal["sequential"]
    input_shape: list[Annotated[int, Field(gt=0, le=MAX_IMAGE_SIZE)]] | None = Field(
        default=None, min_length=3, max_length=3,
        description="[C, H, W] of each input image (needed by conv2d, batchnorm2d and pooling "
                    "layers); rows of C*H*W features are reshaped to it")
    layers: list[LayerSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _shapes_chain(self) -> "SequentialModel":
        depth = container_depth(self.layers)
        if depth > MAX_MODEL_DEPTH:
            raise spec_error("SequentialModel", [(("layers",), f"containers are nested more than "
                             f"{MAX_MODEL_DEPTH} levels deep; flatten the stack", None)])
        if self.input_shape is not None and math.prod(self.input_shape) > MAX_IMAGE_VALUES:
            raise spec_error("SequentialModel", [(("input_shape",), f"C*H*W is "
                             f"{math.prod(self.input_shape)}; at most {MAX_IMAGE_VALUES}", None)])
        trace = trace_stack(self.layers, input_shape=self.input_shape)
        issues = [(issue.loc, issue.message, None) for issue in trace.issues]
        if trace.shape == LOST:
            pass  # an issue above already explains it
        elif trace.shape is not None and len(trace.shape) == 3:
            issues.append((("layers",), f"the model outputs images {describe(trace.shape)}; a "
                           "classifier ends with flatten and linear layers", None))
        elif trace.width is None:
            issues.append((("layers",), "a sequential model needs at least one linear or "
                           "normalisation layer to fix its input and output widths", None))
        if issues:
            raise spec_error("SequentialModel", issues)
        return self


ModelSpec = Annotated[Union[MLPResNetModel, SequentialModel], Field(discriminator="type")]
_MODEL_ADAPTER = TypeAdapter(ModelSpec)


def parse_model(model: dict) -> MLPResNetModel | SequentialModel:
    """A stored job spec's "model" (a dict) as its ModelSpec."""
    return _MODEL_ADAPTER.validate_python(model)


def model_widths(model: MLPResNetModel | SequentialModel) -> tuple[int, int]:
    """(input features, output classes) of a validated model spec."""
    if isinstance(model, MLPResNetModel):
        return model.in_features, model.num_classes
    trace = trace_stack(model.layers, input_shape=model.input_shape)
    return trace.input_width, trace.width


def model_input_shape(model: MLPResNetModel | SequentialModel) -> tuple[int, ...] | None:
    """(C, H, W) of the images a model takes, None for a model of feature rows."""
    shape = getattr(model, "input_shape", None)
    return None if shape is None else tuple(shape)


def model_input_loc(model: MLPResNetModel | SequentialModel) -> tuple[str | int, ...]:
    """Path (relative to the model) of the field that fixes the model's input width."""
    if isinstance(model, MLPResNetModel):
        return ("in_features",)
    if model.input_shape is not None:
        return ("input_shape",)
    return _first_width_loc(model.layers, ("layers",)) or ("layers",)


def _first_width_loc(layers: list, loc: tuple) -> tuple | None:
    for index, layer in enumerate(layers):
        if layer.type == "linear":
            return (*loc, index, "in_features")
        if layer.type in ("batchnorm1d", "layernorm1d"):
            return (*loc, index, "dim")
        if layer.type in ("residual", "sequential"):
            found = _first_width_loc(layer.layers, (*loc, index, "layers"))
            if found:
                return found
    return None


def model_output_loc(model: MLPResNetModel | SequentialModel) -> tuple[str | int, ...]:
    """Path (relative to the model) of the field that fixes the number of output classes."""
    if isinstance(model, MLPResNetModel):
        return ("num_classes",)
    return _last_width_loc(model.layers, ("layers",)) or ("layers",)


def _last_width_loc(layers: list, loc: tuple) -> tuple | None:
    for index in reversed(range(len(layers))):
        layer = layers[index]
        if layer.type == "linear":
            return (*loc, index, "out_features")
        if layer.type in ("batchnorm1d", "layernorm1d"):
            return (*loc, index, "dim")
        if layer.type == "sequential":  # a residual keeps its input width: look further up
            found = _last_width_loc(layer.layers, (*loc, index, "layers"))
            if found:
                return found
    return None
