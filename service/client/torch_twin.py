"""PyTorch twins of needle models, with the same module nesting and so the same state_dict keys.

Used by Client.to_torch, the cross-check tests and the benchmark; imports torch.
"""
import torch
from torch import nn


class Residual(nn.Module):
    """fn(x) + x; the child is called `fn`, as in needle, so its keys read `….fn.…`."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
               "gelu": lambda: nn.GELU(approximate="tanh"), "silu": nn.SiLU}


def mlp_resnet(dim: int, hidden_dim: int = 100, num_blocks: int = 3, num_classes: int = 10,
               drop_prob: float = 0.1, norm: type[nn.Module] = nn.BatchNorm1d,
               activation: str = "relu") -> nn.Sequential:
    """needle.models.MLPResNet, layer for layer."""
    half = hidden_dim // 2
    act = ACTIVATIONS[activation]

    def block() -> nn.Sequential:
        return nn.Sequential(Residual(nn.Sequential(
            nn.Linear(hidden_dim, half), norm(half), act(), nn.Dropout(drop_prob),
            nn.Linear(half, hidden_dim), norm(hidden_dim))), act())

    return nn.Sequential(nn.Linear(dim, hidden_dim), act(), *[block() for _ in range(num_blocks)],
                         nn.Linear(hidden_dim, num_classes))


def layer(spec: dict) -> nn.Module:
    """One layer of a service `sequential` model spec."""
    kind = spec["type"]
    if kind == "linear":
        return nn.Linear(spec["in_features"], spec["out_features"], bias=spec["bias"])
    if kind == "batchnorm1d":
        return nn.BatchNorm1d(spec["dim"], eps=spec["eps"], momentum=spec["momentum"])
    if kind == "layernorm1d":
        return nn.LayerNorm(spec["dim"], eps=spec["eps"])
    if kind == "dropout":
        return nn.Dropout(spec["p"])
    if kind == "leaky_relu":
        return nn.LeakyReLU(spec["negative_slope"])
    if kind == "conv2d":
        k = spec["kernel_size"]
        return nn.Conv2d(spec["in_channels"], spec["out_channels"], k, stride=spec["stride"],
                         padding=k // 2, bias=spec["bias"])
    if kind == "batchnorm2d":
        return nn.BatchNorm2d(spec["dim"], eps=spec["eps"], momentum=spec["momentum"])
    if kind in ("maxpool2d", "avgpool2d"):
        pool = nn.MaxPool2d if kind == "maxpool2d" else nn.AvgPool2d
        return pool(spec["kernel_size"], spec["stride"])
    if kind == "residual":
        return Residual(nn.Sequential(*map(layer, spec["layers"])))
    if kind == "sequential":
        return nn.Sequential(*map(layer, spec["layers"]))
    return {**ACTIVATIONS, "identity": nn.Identity, "flatten": nn.Flatten}[kind]()


def from_model_spec(spec: dict) -> nn.Module:
    """The PyTorch twin of a service model spec (normalised: every default filled in)."""
    if spec["type"] == "mlp_resnet":
        norm = nn.BatchNorm1d if spec["norm"] == "batchnorm" else nn.LayerNorm
        return mlp_resnet(spec["in_features"], spec["hidden_dim"], spec["num_blocks"], spec["num_classes"],
                          spec["drop_prob"], norm, spec.get("activation", "relu"))
    return nn.Sequential(*map(layer, spec["layers"]))


class Preprocess(nn.Module):
    """service.training.preprocess.apply_preprocess in torch, with /predict's input handling:
    rows (N, F) -- or images (N, C, H, W) for a model with that input_shape -- as float32, then
    none / x * factor / (x - mean) / std computed in float64 and rounded to float32, then shaped
    as the model takes them. `fitted` is the parameters' preprocess header entry."""

    def __init__(self, fitted: dict, width: int, input_shape: list[int] | None = None):
        super().__init__()
        self.kind = fitted["type"]
        if self.kind not in ("none", "scale", "standardize"):
            raise ValueError(f"unknown preprocess type {self.kind!r}")
        self.width = width
        self.input_shape = tuple(input_shape) if input_shape else None
        self.factor = float(fitted.get("factor", 1.0))
        # configuration, not trained state: kept out of state_dict, float64 whatever .to() does
        self.register_buffer("mean", torch.tensor(fitted.get("mean", []), dtype=torch.float64),
                             persistent=False)
        self.register_buffer("std", torch.tensor(fitted.get("std", []), dtype=torch.float64),
                             persistent=False)

    def forward(self, x) -> torch.Tensor:
        rows = self._rows(torch.as_tensor(x).to(torch.float32))  # (N, F), as /predict reads x
        if self.kind == "scale":
            rows = (rows.double() * self.factor).float()
        elif self.kind == "standardize":
            rows = ((rows.double() - self.mean.double()) / self.std.double()).float()
        return rows if self.input_shape is None else rows.reshape(len(rows), *self.input_shape)

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4 and (self.input_shape is None or tuple(x.shape[1:]) == self.input_shape):
            x = x.reshape(len(x), -1)
        if x.ndim != 2 or x.shape[1] != self.width or len(x) == 0:
            shape = "" if self.input_shape is None else f" or (N, {', '.join(map(str, self.input_shape))})"
            raise ValueError(f"x must have shape (N, {self.width}){shape} with N >= 1, got {tuple(x.shape)}")
        return x


class PreprocessedModel(nn.Module):
    """Raw x -> `preprocess` (a Preprocess) -> `model` (the bare twin, whose state_dict has the
    keys of the job's torch-layout parameters; here they are prefixed "model."). The
    preprocessed rows take the model's dtype, so `.double()` works as on any module."""

    def __init__(self, preprocess: Preprocess, model: nn.Module):
        super().__init__()
        self.preprocess = preprocess
        self.model = model

    def forward(self, x) -> torch.Tensor:
        rows = self.preprocess(x)  # float32, as /predict feeds the model
        weight = next(self.model.parameters(), None)
        return self.model(rows if weight is None else rows.to(weight.dtype))
