"""Width inference through a stack of layer specs; reports the exact field that breaks the chain."""
from __future__ import annotations

from dataclasses import dataclass, field

from .layers import (BatchNorm1dLayer, LayerNorm1dLayer, LinearLayer, ResidualLayer,
                     SequentialLayer)

Loc = tuple[str | int, ...]


@dataclass
class ShapeIssue:
    """A width mismatch at `loc` (relative to the stack's owner)."""

    loc: Loc
    message: str


@dataclass
class WidthTrace:
    """Running state while walking a stack: the first and current width, and the issues found."""

    input_width: int | None = None
    width: int | None = None
    issues: list[ShapeIssue] = field(default_factory=list)

    def expect(self, got: int, loc: Loc, what: str) -> None:
        """Check a layer's declared input width against the current width, then adopt it."""
        if self.width is None:
            self.input_width = got if self.input_width is None else self.input_width
        elif got != self.width:
            self.issues.append(ShapeIssue(
                loc, f"{what} is {got} but the previous layer outputs width {self.width}"))


def trace_layers(layers: list, loc: Loc, trace: WidthTrace) -> None:
    """Walk `layers` (found at `loc`), updating `trace` in place."""
    for index, layer in enumerate(layers):
        here = (*loc, index)
        if isinstance(layer, LinearLayer):
            trace.expect(layer.in_features, (*here, "in_features"), "in_features")
            trace.width = layer.out_features
        elif isinstance(layer, (BatchNorm1dLayer, LayerNorm1dLayer)):
            trace.expect(layer.dim, (*here, "dim"), "dim")
            trace.width = layer.dim
        elif isinstance(layer, SequentialLayer):
            trace_layers(layer.layers, (*here, "layers"), trace)
        elif isinstance(layer, ResidualLayer):
            _trace_residual(layer, here, trace)
        # relu, flatten, identity, dropout keep the width (inputs are (N, F))


def _trace_residual(layer: ResidualLayer, here: Loc, trace: WidthTrace) -> None:
    """A residual adds its input to its output, so both widths must agree."""
    width_in = trace.width
    trace_layers(layer.layers, (*here, "layers"), trace)
    if width_in is None:
        width_in = trace.input_width  # the residual opens the stack: its first width is the input
    if width_in is not None and trace.width is not None and trace.width != width_in:
        trace.issues.append(ShapeIssue(
            here, f"residual output width {trace.width} differs from its input width {width_in}"))


def trace_stack(layers: list, loc: Loc = ("layers",)) -> WidthTrace:
    """Infer the (input, output) widths of a layer stack and collect every mismatch."""
    trace = WidthTrace()
    trace_layers(layers, loc, trace)
    return trace
