"""Tuple ops (course hw4): make_tuple, tuple_get_item, and stack/split, the tensor <-> tuple pair."""
import numpy as np

from ..autograd import Tensor, TensorOp, TensorTuple, TensorTupleOp
from .ops_mathematic import keep_float_dtype

__all__ = ["MakeTensorTuple", "make_tuple", "TupleGetItem", "tuple_get_item", "FusedAddScalars",
           "fused_add_scalars", "Stack", "stack", "Split", "split"]


class MakeTensorTuple(TensorTupleOp):
    """Tensors -> one TensorTuple."""

    def compute(self, *args) -> tuple:
        return tuple(args)

    def gradient(self, out_grad, node):
        return tuple(out_grad[i] for i in range(len(out_grad)))


def make_tuple(*args):
    return MakeTensorTuple()(*args)


class TupleGetItem(TensorOp):
    """Item `index` of a TensorTuple."""

    def __init__(self, index):
        self.index = index

    def __call__(self, a: TensorTuple, fold_const=True) -> Tensor:
        if not isinstance(a, TensorTuple):
            raise TypeError(f"tuple_get_item needs a TensorTuple, got {type(a).__name__}")
        if fold_const and isinstance(a.op, MakeTensorTuple):  # course: constant folding
            return a.inputs[self.index]
        return Tensor.make_from_op(self, (a,))

    def compute(self, a):
        return a[self.index]

    def gradient(self, out_grad, node):
        items = node.inputs[0].realize_cached_data()
        index = self.index % len(items)
        in_grad = [out_grad if i == index else Tensor.make_const(np.zeros(item.shape, dtype=item.dtype))
                   for i, item in enumerate(items)]
        return MakeTensorTuple()(*in_grad)


def tuple_get_item(value, index):
    return TupleGetItem(index)(value)


class FusedAddScalars(TensorTupleOp):
    """(a + c0, a + c1): the course's example of an op with two outputs."""

    def __init__(self, c0: float, c1: float):
        self.c0 = c0
        self.c1 = c1

    def compute(self, a):
        return keep_float_dtype(a + self.c0, a), keep_float_dtype(a + self.c1, a)

    def gradient(self, out_grad, node):
        return out_grad[0] + out_grad[1]


def fused_add_scalars(x, c0, c1):
    return FusedAddScalars(c0, c1)(x)


class Stack(TensorOp):
    """Stack a TensorTuple of equally shaped tensors along a new axis `axis`."""

    def __init__(self, axis: int):
        self.axis = axis

    def compute(self, args: tuple) -> np.ndarray:
        if not args:
            raise ValueError("stack needs at least one tensor")
        shapes = {a.shape for a in args}
        if len(shapes) != 1:
            raise ValueError(f"stack needs tensors of one shape, got {sorted(shapes)}")
        return np.stack(args, axis=self.axis)

    def gradient(self, out_grad, node):
        return split(out_grad, self.axis)


def stack(args, axis):
    """Stack a list/tuple of Tensors (or a TensorTuple) along a new axis."""
    items = args.tuple() if isinstance(args, TensorTuple) else args
    return Stack(axis)(make_tuple(*items))


class Split(TensorTupleOp):
    """Split along `axis` into a TensorTuple of A.shape[axis] tensors with that axis removed (inverse of stack)."""

    def __init__(self, axis: int):
        self.axis = axis

    def compute(self, a):
        return tuple(np.moveaxis(a, self.axis, 0))  # views, one per index along axis

    def gradient(self, out_grad, node):
        return stack(out_grad, self.axis)


def split(a, axis):
    return Split(axis)(a)
