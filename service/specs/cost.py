"""What a model costs per row: one table of layer types drives the FLOP and memory estimates.

Every layer type has one entry in LAYER_COSTS: a function (layer spec, input shape of one row)
-> LayerCost(forward FLOPs per row, output shape). Containers (sequential, residual) are walked
here; a new layer type (h10's activations, h12b's convolutions) adds one entry and nothing else.
The estimates bound a job at submission (total FLOPs, activation memory) and size the evaluation
chunks workers use; they are deliberately simple upper-bound-ish counts, not a profiler.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import TypeAdapter

from .layers import LayerSpec
from .shapes import conv_output_shape, pool_output_shape, trace_stack

FLOAT_BYTES = 4            # everything trains in float32
BACKWARD_FACTOR = 2        # a backward pass costs about twice the forward pass
OPTIMIZER_FLOPS_PER_PARAMETER = 10   # Adam's update (moments, bias correction, decay) per scalar
# Training keeps every layer's output for backward, plus a gradient of the same size.
TRAIN_BYTES_PER_ACTIVATION = 2 * FLOAT_BYTES
MAX_EVAL_CHUNK = 1024      # rows per evaluation forward pass when memory allows
# Preprocessing a chunk (float64 arithmetic on float32 rows) holds ~6 float32-sized values per
# input value: the raw rows, a float64 copy, the float64 result and its float32 cast.
PREPROCESS_VALUES_PER_INPUT = 6
MAX_MODEL_DEPTH = 32       # nesting of sequential/residual containers
_LAYERS = TypeAdapter(list[LayerSpec])


Shape = tuple[int, ...]  # one row: (F,) for features, (C, H, W) for images


@dataclass(frozen=True)
class LayerCost:
    """One layer on a row of `shape`: forward FLOPs per row, the output shape, the values per
    row its eval forward pass holds besides its input and output (im2col, layout copies), and
    the values per row a training step holds for backward besides the output (conv's padded
    input, which its backward makes again)."""

    flops: int
    shape: Shape
    temporaries: int = 0
    saved: int = 0


LayerCostFn = Callable[[Any, Shape], LayerCost]


def _linear(layer, shape: Shape) -> LayerCost:
    out = layer.out_features
    return LayerCost(2 * layer.in_features * out + (out if layer.bias else 0), (out,))


def _norm(temporaries_per_value: int) -> LayerCostFn:
    # mean, var, normalise, scale, shift
    return lambda layer, shape: LayerCost(8 * math.prod(shape), shape,
                                          temporaries_per_value * math.prod(shape))


def _elementwise(flops_per_value: int, temporaries_per_value: int = 0) -> LayerCostFn:
    return lambda layer, shape: LayerCost(flops_per_value * math.prod(shape), shape,
                                          temporaries_per_value * math.prod(shape))


def _flatten(layer, shape: Shape) -> LayerCost:
    return LayerCost(0, (math.prod(shape),))


def _conv2d(layer, shape: Shape) -> LayerCost:
    out = conv_output_shape(layer, shape)   # (C_out, Ho, Wo)
    k = layer.kernel_size
    per_output = 2 * k * k * layer.in_channels + (1 if layer.bias else 0)
    channels, height, width = shape
    padded = channels * (height + 2 * (k // 2)) * (width + 2 * (k // 2))
    im2col = k * k * channels * out[1] * out[2]
    # the padded input and the columns (needle makes both by blocks of images, at most one
    # image's per row of the batch), and the output's NHWC -> NCHW copy; in training the backward
    # makes the padded blocks again for the kernel's gradient (the forward keeps no columns)
    return LayerCost(per_output * math.prod(out), out, padded + im2col + math.prod(out), saved=padded)


def _pool(layer, shape: Shape) -> LayerCost:
    out = pool_output_shape(layer, shape)
    # an NHWC copy of the input and two window reductions of the output's size
    return LayerCost(layer.kernel_size ** 2 * math.prod(out), out,
                     math.prod(shape) + 2 * math.prod(out))


# Temporaries were measured with tracemalloc on needle's eval forward pass (tests/service/
# test_inference_budget.py holds every entry to it): e.g. gelu keeps two values per output value.
LAYER_COSTS: dict[str, LayerCostFn] = {
    "linear": _linear,               # bias fused into the GEMM: no temporary
    "batchnorm1d": _norm(1),
    "layernorm1d": _norm(1),
    "batchnorm2d": _norm(3),         # NCHW <-> NHWC copies around the per-channel statistics
    "relu": _elementwise(1),
    "leaky_relu": _elementwise(2, 2),  # a mask and a scaled copy
    "tanh": _elementwise(8),         # exp-based: a handful of FLOPs per value
    "sigmoid": _elementwise(8, 1),
    "gelu": _elementwise(12, 2),
    "silu": _elementwise(10, 1),
    "dropout": _elementwise(2),      # draw a mask, multiply (eval mode: the identity)
    "flatten": _flatten,
    "identity": _elementwise(0),
    "conv2d": _conv2d,               # 2*K*K*C_in*C_out*Ho*Wo (+ bias)
    "maxpool2d": _pool,
    "avgpool2d": _pool,
}
CONTAINERS = ("sequential", "residual")


@dataclass(frozen=True)
class ModelCost:
    """Per-row figures of a whole model."""

    flops: int               # forward FLOPs per row
    activations: int         # values per row kept for backward (every layer's output, conv's padded input)
    widest: int              # most values of one activation (input included)
    depth: int               # deepest container nesting (a flat stack is 1)
    modules: int             # layers and containers, like needle's module tree
    eval_peak: int = 0       # values per row held at once by an eval forward pass (its worst
                             # layer: input, output, temporaries, and the inputs residuals keep)


def mlp_resnet_layers(model) -> list:
    """needle.models.MLPResNet as the equivalent list of layer specs."""
    hidden, half = model.hidden_dim, model.hidden_dim // 2
    norm = "batchnorm1d" if model.norm == "batchnorm" else "layernorm1d"
    block = {"type": "sequential", "layers": [
        {"type": "residual", "layers": [
            {"type": "linear", "in_features": hidden, "out_features": half},
            {"type": norm, "dim": half}, {"type": "relu"}, {"type": "dropout"},
            {"type": "linear", "in_features": half, "out_features": hidden},
            {"type": norm, "dim": hidden}]},
        {"type": "relu"}]}
    layers = [{"type": "linear", "in_features": model.in_features, "out_features": hidden},
              {"type": "relu"}, block,
              {"type": "linear", "in_features": hidden, "out_features": model.num_classes}]
    first, relu, block, last = _LAYERS.validate_python(layers)
    return [first, relu, *([block] * model.num_blocks), last]


def model_cost(model) -> ModelCost:
    """Walk a validated model spec (MLPResNetModel or SequentialModel) on one row."""
    if model.type == "mlp_resnet":
        layers, shape = mlp_resnet_layers(model), (model.in_features,)
    else:
        layers = model.layers
        shape = tuple(model.input_shape) if getattr(model, "input_shape", None) else None
        shape = shape or (trace_stack(layers).input_width,)
    totals = {"flops": 0, "activations": 0, "widest": math.prod(shape), "depth": 1,
              "modules": 1, "eval_peak": PREPROCESS_VALUES_PER_INPUT * math.prod(shape)}
    _walk(layers, shape, 1, totals, held=math.prod(shape))  # the caller holds the input batch
    return ModelCost(**totals)


def _walk(layers: list, shape: Shape, depth: int, totals: dict, held: int) -> Shape:
    """Add the layers' costs to totals; `held`: values per row enclosing residuals keep alive."""
    totals["depth"] = max(totals["depth"], depth)
    for layer in layers:
        totals["modules"] += 1
        if layer.type in CONTAINERS:
            skip = math.prod(shape) if layer.type == "residual" else 0
            out = _walk(layer.layers, shape, depth + 1, totals, held + skip)
            if layer.type == "residual":
                totals["flops"] += math.prod(out)       # the addition
                totals["activations"] += math.prod(out)
                _peak(totals, held + skip + 2 * math.prod(out))
            shape = out
            continue
        cost = LAYER_COSTS[layer.type](layer, shape)
        totals["flops"] += cost.flops
        totals["activations"] += math.prod(cost.shape) + cost.saved
        totals["widest"] = max(totals["widest"], math.prod(cost.shape))
        _peak(totals, held + math.prod(shape) + math.prod(cost.shape) + cost.temporaries)
        shape = cost.shape
    return shape


def _peak(totals: dict, values: int) -> None:
    totals["eval_peak"] = max(totals["eval_peak"], values)


def container_depth(layers: list, depth: int = 1) -> int:
    """Nesting depth of layer specs (a flat stack is 1), stopping past the bound."""
    deepest = depth
    for layer in layers:
        inner = getattr(layer, "layers", None)
        if inner is not None and deepest <= MAX_MODEL_DEPTH:
            deepest = max(deepest, container_depth(inner, depth + 1))
    return deepest


def training_flops(cost: ModelCost, *, steps: int, batch_size: int, train_rows: int,
                   epochs: int, val_rows: int, parameters: int) -> int:
    """Total FLOPs of a job: forward + backward per row of every step, the optimizer update per
    step, and a forward pass over the validation rows at every epoch end."""
    rows_trained = min(steps * batch_size, steps * max(train_rows, 1))
    per_step = OPTIMIZER_FLOPS_PER_PARAMETER * parameters
    return (rows_trained * cost.flops * (1 + BACKWARD_FACTOR) + steps * per_step
            + epochs * val_rows * cost.flops)


def training_activation_bytes(cost: ModelCost, batch_size: int) -> int:
    """Memory of one training step's graph: every layer's output (and its gradient) per row."""
    return batch_size * (cost.activations + cost.widest) * TRAIN_BYTES_PER_ACTIVATION


def eval_bytes_per_row(cost: ModelCost) -> int:
    """Memory one row adds to an eval forward pass (no graph) at the model's worst layer."""
    return cost.eval_peak * FLOAT_BYTES


def eval_rows_per_chunk(cost: ModelCost, budget_bytes: int) -> int:
    """Rows per evaluation forward pass that fit in `budget_bytes` (at least 1, at most 1,024):
    the one rule of workers' validation, /predict and /evaluate, and the submission estimate."""
    return max(1, min(MAX_EVAL_CHUNK, budget_bytes // eval_bytes_per_row(cost)))


def eval_chunk_bytes(cost: ModelCost, rows: int) -> int:
    """Memory of one evaluation forward pass over `rows` rows."""
    return rows * eval_bytes_per_row(cost)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def human_flops(n: float) -> str:
    """3.2e12 -> '3.2 TFLOP'."""
    if n < 1e3:
        return f"{n:.0f} FLOP"
    exponent = min(int(math.log10(n) // 3), 6)
    return f"{n / 10 ** (3 * exponent):.1f} {' KMGTPE'[exponent]}FLOP"
