"""Loss modules beyond the course's SoftmaxLoss: label-smoothed cross-entropy and regression losses."""
from needle import ops
from needle.autograd import Tensor
from needle.nn import functional as F
from needle.nn.nn_basic import Module


class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy of logits (N, K) against integer labels (N,), optionally against
    label-smoothed targets (1 - s) onehot + s / K; s = 0 is exactly SoftmaxLoss."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, y) -> Tensor:
        if self.label_smoothing == 0:
            return F.softmax_loss(logits, y)
        return ops.smoothed_softmax_loss(logits, y, self.label_smoothing)


class MSELoss(Module):
    """Mean squared error over every element."""

    def forward(self, pred: Tensor, target) -> Tensor:
        return ops.mse_loss(pred, target)


class L1Loss(Module):
    """Mean absolute error over every element."""

    def forward(self, pred: Tensor, target) -> Tensor:
        return ops.l1_loss(pred, target)


class HuberLoss(Module):
    """Mean Huber loss: quadratic below `delta`, linear above (PyTorch's nn.HuberLoss)."""

    def __init__(self, delta: float = 1.0):
        super().__init__()
        self.delta = delta

    def forward(self, pred: Tensor, target) -> Tensor:
        return ops.huber_loss(pred, target, self.delta)
