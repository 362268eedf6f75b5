"""Finite-difference gradient check shared by the needle op tests."""
import numpy as np

import needle as ndl


def check_gradients(fn, *arrays, tol=1e-6, eps=1e-6, seed=0):
    """Compare backprop of a random projection of fn(*tensors) with central differences, in float64.

    fn takes needle Tensors and returns a Tensor; arrays are the float inputs (all get gradients).
    Returns the list of analytic gradients (numpy) so callers can assert more if they like.
    """
    rng = np.random.default_rng(seed)
    inputs = [np.array(a, dtype=np.float64) for a in arrays]
    tensors = [ndl.Tensor(a, dtype="float64") for a in inputs]
    out = fn(*tensors)
    projection = rng.standard_normal(out.shape)  # random direction: catches errors a plain sum hides
    (out * ndl.Tensor(projection, dtype="float64", requires_grad=False)).sum().backward()

    def objective():
        with ndl.no_grad():
            value = fn(*[ndl.Tensor(a, dtype="float64") for a in inputs])
        return float(np.sum(value.numpy() * projection))

    analytic = []
    for array, tensor in zip(inputs, tensors):
        assert tensor.grad is not None, "no gradient reached an input"
        grad = tensor.grad.numpy()
        assert grad.shape == array.shape and grad.dtype == np.float64
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            plus = objective()
            array[index] = original - eps
            minus = objective()
            array[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=tol, atol=tol)
        analytic.append(grad)
    return analytic
