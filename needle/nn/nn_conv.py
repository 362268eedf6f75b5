"""Convolutional modules on NCHW inputs: Conv (course hw4), BatchNorm2d, MaxPool2d, AvgPool2d.

NCHW <-> NHWC changes are transposes, i.e. numpy views: a conv writes its output NHWC in memory and
hands on an NCHW view of it, so BatchNorm2d's (N*H*W, C) reshape and the next conv's NHWC im2col
need no copy.
"""
from needle import init, ops
from needle.autograd import Tensor
from needle.nn.nn_basic import BatchNorm1d, Module, Parameter
from needle.ops.ops_conv import Conv as ConvOp


def _nchw_to_nhwc(x: Tensor) -> Tensor:
    return ops.transpose(ops.transpose(x, (1, 2)), (2, 3))


def _nhwc_to_nchw(x: Tensor) -> Tensor:
    return ops.transpose(ops.transpose(x, (2, 3)), (1, 2))


def _single(value, what: str) -> int:
    """The course accepts (k, k) tuples for square sizes; anything else is an error."""
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise ValueError(f"only square {what} are supported, got {value}")
        value = value[0]
    return int(value)


class Conv(Module):
    """2-D convolution of (N, C_in, H, W) with "same" padding kernel_size // 2 -> (N, C_out, Ho, Wo).

    weight (K, K, C_in, C_out): Kaiming uniform with fan_in = C_in*K*K, fan_out = C_out*K*K;
    bias (C_out,): uniform in +-1/sqrt(C_in*K*K) (both as in the course).
    """

    _static_forward = True  # see needle.capture

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, bias=True, device=None,
                 dtype="float32"):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _single(kernel_size, "kernels")
        self.stride = _single(stride, "strides")
        self.padding = self.kernel_size // 2
        k = self.kernel_size
        self.weight = Parameter(init.kaiming_uniform(
            in_channels * k * k, out_channels * k * k, shape=(k, k, in_channels, out_channels),
            device=device, dtype=dtype, requires_grad=True))
        self.bias = None
        if bias:
            bound = 1.0 / (in_channels * k * k) ** 0.5
            self.bias = Parameter(init.rand(out_channels, low=-bound, high=bound, device=device,
                                            dtype=dtype, requires_grad=True))

    def forward(self, x: Tensor) -> Tensor:
        op = ConvOp(self.stride, self.padding)
        nhwc = _nchw_to_nhwc(x)  # (N, H, W, C_in)
        out = op(nhwc, self.weight) if self.bias is None else op(nhwc, self.weight, self.bias)
        return _nhwc_to_nchw(out)  # (N, C_out, Ho, Wo)


class BatchNorm2d(BatchNorm1d):
    """BatchNorm1d over the channels of (N, C, H, W): statistics over N, H and W (as the course)."""

    _static_forward = True  # see needle.capture
    fuses_dropout = False  # a fused mask would be drawn in NHWC order, Dropout draws it in NCHW
    fuses_pool = True  # train_block(relu=True, pool2=True): see ops_batchnorm_pool

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return _per_channel(x, super().forward)
        return self.train_block(x)

    def train_block(self, x: Tensor, relu: bool = False, pool2: bool = False) -> Tensor:
        """Training-mode forward, optionally fused with the ReLU after it, or with the ReLU and a
        2x2 max-pool of stride 2 (pool2; H and W even) after it (see Sequential)."""
        if pool2:
            if not relu:
                raise ValueError("the fused 2x2 max-pool follows the ReLU: pool2 needs relu=True")
            op = ops.BatchNormReLUMaxPool2(self.eps, self._update_stats)
            return _nhwc_to_nchw(op(_nchw_to_nhwc(x), self.weight, self.bias))
        return _per_channel(x, lambda rows: BatchNorm1d.train_block(self, rows, relu))


def _per_channel(x: Tensor, rows_fn) -> Tensor:
    """rows_fn applied to x (N, C, H, W) seen as (N*H*W, C) rows (a view of NHWC memory)."""
    n, c, h, w = x.shape
    rows = ops.reshape(_nchw_to_nhwc(x), (n * h * w, c))  # (N*H*W, C)
    return _nhwc_to_nchw(ops.reshape(rows_fn(rows), (n, h, w, c)))


class _Pool2d(Module):
    """Window geometry shared by the pooling modules."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = _single(kernel_size, "kernels")
        self.stride = self.kernel_size if stride is None else _single(stride, "strides")


class MaxPool2d(_Pool2d):
    """Max over kernel_size windows of (N, C, H, W), stride defaulting to kernel_size (PyTorch)."""

    _static_forward = True  # see needle.capture
    pools_max = True  # a BatchNorm2d and ReLU before it may fuse with it (see Sequential)

    def forward(self, x: Tensor) -> Tensor:
        return ops.max_pool2d(x, self.kernel_size, self.stride)


class AvgPool2d(_Pool2d):
    """Mean over kernel_size windows of (N, C, H, W), stride defaulting to kernel_size (PyTorch)."""

    _static_forward = True  # see needle.capture

    def forward(self, x: Tensor) -> Tensor:
        return ops.avg_pool2d(x, self.kernel_size, self.stride)
