"""Every op keeps its inputs' dtype (float32 and float64), forward and backward; every op has a case.

The cases are the tables of test_ops.py (ops against numpy) and test_fused_ops.py (fused ops against
their composite definitions), so one table row gives an op its forward, gradient and dtype checks.
"""
import inspect

import numpy as np
import pytest

import needle as ndl
from needle.autograd import Op, TensorTuple, find_topo_sort
from needle.ops import ops_fused, ops_fused_blocks, ops_logarithmic, ops_mathematic, ops_tuple

from .test_fused_ops import CASES as FUSED_CASES
from .test_ops import FORWARD_CASES

ALL_CASES = {**{f"op:{k}": (fn, arrays) for k, (fn, _, arrays) in FORWARD_CASES.items()},
             **{f"fused:{k}": (fn, arrays) for k, (fn, _, arrays) in FUSED_CASES.items()}}
OP_MODULES = (ops_mathematic, ops_logarithmic, ops_fused, ops_fused_blocks, ops_tuple)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ALL_CASES)
def test_op_keeps_the_input_dtype_forward_and_backward(name, dtype):
    fn, arrays = ALL_CASES[name]
    tensors = [ndl.Tensor(a, dtype=dtype) for a in arrays]
    out = fn(*tensors)
    assert out.dtype == np.dtype(dtype)
    out.sum().backward()
    for tensor in tensors:
        assert tensor.grad.dtype == np.dtype(dtype)


def _op_classes_used(out):
    return {type(node.op) for node in find_topo_sort([out]) if node.op is not None}


def test_every_op_class_has_a_case():
    """A new op in these modules must get a row in one of the tables (forward, gradient, dtype)."""
    exported = {cls for module in OP_MODULES for _, cls in inspect.getmembers(module, inspect.isclass)
                if issubclass(cls, Op) and cls.__module__ == module.__name__}
    used = set()
    for fn, arrays in ALL_CASES.values():
        out = fn(*[ndl.Tensor(a, dtype="float64") for a in arrays])
        used |= _op_classes_used(out)
        out.sum().backward(create_graph=True)  # ops only reached by gradients (e.g. Split from Stack)
        for grad in [t.grad for t in find_topo_sort([out]) if t.op is None and t.grad is not None]:
            used |= _op_classes_used(grad)
    missing = sorted(cls.__name__ for cls in exported - used)
    assert not missing, f"ops without a test case: {missing}"


@pytest.mark.parametrize("name", FUSED_CASES)
def test_fused_forward_equals_composite_in_float64(name):
    fused, composite, arrays = FUSED_CASES[name]
    outs = [fn(*[ndl.Tensor(a) for a in arrays]).numpy() for fn in (fused, composite)]  # float64 inputs
    assert outs[0].dtype == outs[1].dtype == np.float64
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-7, atol=1e-12)


SCALAR_OPS = {
    "add_scalar": lambda x, c: ndl.add_scalar(x, c), "mul_scalar": lambda x, c: ndl.mul_scalar(x, c),
    "divide_scalar": lambda x, c: ndl.divide_scalar(x, c), "power_scalar": lambda x, c: ndl.power_scalar(x, c),
    "fused_add_scalars": lambda x, c: ndl.fused_add_scalars(x, c, c)[1],
}


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("scalar", [2.0, np.float64(2.0), np.array(2.0), 2])
@pytest.mark.parametrize("name", SCALAR_OPS)
def test_scalar_ops_never_promote_a_float_input(name, scalar, dtype):
    x = ndl.Tensor([1.0, 3.0], dtype=dtype)
    assert SCALAR_OPS[name](x, scalar).dtype == np.dtype(dtype)


def test_integer_tensors_follow_numpy():
    x = ndl.Tensor([[1, 2], [3, 4]])
    assert x.dtype.kind == "i"
    for out in (x.sum(), x.reshape((4,)), x.transpose(), x + 1, x * 3, x.broadcast_to((2, 2, 2)),
                ndl.stack([x, x], 0), ndl.split(x, 0)[1]):
        assert out.dtype == x.dtype
    assert (x * 0.5).dtype == np.float64 and (x / 2).dtype == np.float64  # numpy's true division


def test_tensor_tensor_ops_promote_like_numpy():
    a, b = ndl.Tensor([1.0], dtype="float32"), ndl.Tensor([1.0], dtype="float64")
    assert (a + b).dtype == np.float64 and (a * a).dtype == np.float32


def test_split_returns_a_tensor_tuple_of_the_input_dtype():
    parts = ndl.split(ndl.Tensor(np.zeros((3, 2), dtype=np.float32)), 0)
    assert isinstance(parts, TensorTuple) and len(parts) == 3
    assert parts.dtype == (np.float32,) * 3 and parts[2].shape == (2,)
