"""Shape inference through a stack of layer specs; reports the exact field that breaks the chain.

Per-sample shapes are (F,) for feature rows and (C, H, W) for images. A stack without a given
input shape starts unknown: its first linear or 1-d norm layer fixes its input width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .layers import (AvgPool2dLayer, BatchNorm1dLayer, BatchNorm2dLayer, Conv2dLayer,
                     FlattenLayer, LayerNorm1dLayer, LinearLayer, MaxPool2dLayer, ResidualLayer,
                     SequentialLayer)

Loc = tuple[str | int, ...]
Shape = tuple[int, ...]
INPUT_SHAPE_LOC: Loc = ("input_shape",)
LOST: Shape = ()  # unknown after an issue: later layers are not checked against it (no cascade)


@dataclass
class ShapeIssue:
    """A shape mismatch at `loc` (relative to the stack's owner)."""

    loc: Loc
    message: str


def describe(shape: Shape) -> str:
    """'width 16' for rows, 'shape (C, H, W) = (16, 7, 7)' for images."""
    return f"width {shape[0]}" if len(shape) == 1 else f"(C, H, W) = {tuple(shape)}"


@dataclass
class ShapeTrace:
    """Running state while walking a stack: the input and current per-sample shapes, and the
    issues found."""

    input_shape: Shape | None = None
    shape: Shape | None = None
    issues: list[ShapeIssue] = field(default_factory=list)

    @property
    def input_width(self) -> int | None:
        """Features per input row (C*H*W for images)."""
        return None if self.input_shape is None else math.prod(self.input_shape)

    @property
    def width(self) -> int | None:
        """Current row width; None while unknown or while the data is image-shaped."""
        return self.shape[0] if self.shape and len(self.shape) == 1 else None

    def flat(self, got: int, loc: Loc, what: str, layer: str) -> None:
        """A layer that takes (N, got) rows: check the current shape, then adopt it."""
        if self.shape == LOST:
            return
        if self.shape is None:
            if self.input_shape is None:
                self.input_shape = (got,)
        elif len(self.shape) != 1:
            self.issues.append(ShapeIssue(loc, f"{layer} needs (N, F) rows but the previous layer "
                                               f"outputs {describe(self.shape)}: add a flatten layer"))
        elif got != self.shape[0]:
            self.issues.append(ShapeIssue(
                loc, f"{what} is {got} but the previous layer outputs width {self.shape[0]}"))

    def image(self, channels: int | None, loc: Loc, layer: str) -> Shape | None:
        """A layer that takes (N, channels, H, W) (None: any C): the current (C, H, W), or None
        after an issue."""
        if self.shape == LOST:
            return None
        if self.shape is None:
            self.issues.append(ShapeIssue(INPUT_SHAPE_LOC, f"a {layer} layer needs images: give "
                                                           "model.input_shape [C, H, W]"))
            return None
        if len(self.shape) != 3:
            self.issues.append(ShapeIssue(loc, f"{layer} needs (N, C, H, W) images but gets "
                                               f"{describe(self.shape)}: check the layers before it"))
            return None
        if channels is not None and channels != self.shape[0]:
            self.issues.append(ShapeIssue(loc, f"{layer} expects {channels} channels but gets "
                                               f"{describe(self.shape)}"))
            return None
        return self.shape


def conv_output_shape(layer: Conv2dLayer, shape: Shape) -> Shape:
    """(C_out, Ho, Wo) of a same-padded conv2d on (C, H, W)."""
    k, s = layer.kernel_size, layer.stride
    return (layer.out_channels, *((size + 2 * (k // 2) - k) // s + 1 for size in shape[1:]))


def pool_output_shape(layer: MaxPool2dLayer | AvgPool2dLayer, shape: Shape) -> Shape:
    """(C, Ho, Wo) of an unpadded, floor-mode pooling on (C, H, W)."""
    k = layer.kernel_size
    s = k if layer.stride is None else layer.stride
    return (shape[0], *((size - k) // s + 1 for size in shape[1:]))


def _trace_spatial(layer, here: Loc, trace: ShapeTrace) -> None:
    """conv2d, batchnorm2d and the pooling layers."""
    if isinstance(layer, Conv2dLayer):
        shape = trace.image(layer.in_channels, (*here, "in_channels"), "conv2d")
        trace.shape = LOST if shape is None else conv_output_shape(layer, shape)
    elif isinstance(layer, BatchNorm2dLayer):
        shape = trace.image(layer.dim, (*here, "dim"), "batchnorm2d")
        trace.shape = LOST if shape is None else shape
    else:
        shape = trace.image(None, (*here, "type"), layer.type)
        if shape is None:
            trace.shape = LOST
        elif layer.kernel_size > min(shape[1:]):
            trace.issues.append(ShapeIssue((*here, "kernel_size"), f"a {layer.kernel_size}x"
                                           f"{layer.kernel_size} window does not fit the "
                                           f"{shape[1]}x{shape[2]} images it gets"))
            trace.shape = LOST
        else:
            trace.shape = pool_output_shape(layer, shape)


def trace_layers(layers: list, loc: Loc, trace: ShapeTrace) -> None:
    """Walk `layers` (found at `loc`), updating `trace` in place."""
    for index, layer in enumerate(layers):
        here = (*loc, index)
        if isinstance(layer, LinearLayer):
            trace.flat(layer.in_features, (*here, "in_features"), "in_features", "linear")
            trace.shape = (layer.out_features,)
        elif isinstance(layer, (BatchNorm1dLayer, LayerNorm1dLayer)):
            trace.flat(layer.dim, (*here, "dim"), "dim", layer.type)
            trace.shape = (layer.dim,)
        elif isinstance(layer, (Conv2dLayer, BatchNorm2dLayer, MaxPool2dLayer, AvgPool2dLayer)):
            _trace_spatial(layer, here, trace)
        elif isinstance(layer, FlattenLayer):
            if trace.shape:  # unknown and lost shapes stay so
                trace.shape = (math.prod(trace.shape),)
        elif isinstance(layer, SequentialLayer):
            trace_layers(layer.layers, (*here, "layers"), trace)
        elif isinstance(layer, ResidualLayer):
            _trace_residual(layer, here, trace)
        # relu, identity, dropout (and other element-wise layers) keep the shape


def _trace_residual(layer: ResidualLayer, here: Loc, trace: ShapeTrace) -> None:
    """A residual adds its input to its output, so both shapes must agree."""
    shape_in = trace.shape
    trace_layers(layer.layers, (*here, "layers"), trace)
    if shape_in is None:
        shape_in = trace.input_shape  # the residual opens the stack: its first shape is the input
    if shape_in and trace.shape and tuple(trace.shape) != tuple(shape_in):
        trace.issues.append(ShapeIssue(
            here, f"residual output {describe(trace.shape)} differs from its input "
                  f"{describe(shape_in)}"))


def trace_stack(layers: list, loc: Loc = ("layers",), input_shape=None) -> ShapeTrace:
    """Infer the input and output shapes of a layer stack and collect every mismatch."""
    start = None if input_shape is None else tuple(input_shape)
    trace = ShapeTrace(input_shape=start, shape=start)
    trace_layers(layers, loc, trace)
    return trace
