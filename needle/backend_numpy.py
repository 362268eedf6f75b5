"""The numpy CPU device: the only device needle has (course API: `cpu()`, `all_devices()`)."""
import numpy

__all__ = ["Device", "CPUDevice", "cpu", "default_device", "all_devices"]


class Device:
    """Base class of all devices."""


class CPUDevice(Device):
    """Numpy-backed CPU device; all instances compare equal."""

    def __repr__(self):
        return "cpu()"

    def __hash__(self):
        return hash("cpu()")

    def __eq__(self, other):
        return isinstance(other, CPUDevice)

    def enabled(self):
        """The CPU device is always available."""
        return True

    def zeros(self, *shape, dtype="float32"):
        """Array of zeros of the given shape."""
        return numpy.zeros(shape, dtype=dtype)

    def ones(self, *shape, dtype="float32"):
        """Array of ones of the given shape."""
        return numpy.ones(shape, dtype=dtype)

    def randn(self, *shape):
        """Standard normal draws (float64) from numpy's global generator, one call for the whole shape."""
        return numpy.random.randn(*shape)

    def rand(self, *shape):
        """Uniform [0, 1) draws (float64) from numpy's global generator, one call for the whole shape."""
        return numpy.random.rand(*shape)

    def one_hot(self, n, i, dtype="float32"):
        """Rows of the n x n identity selected by integer indices i."""
        return numpy.eye(n, dtype=dtype)[i]

    def empty(self, shape, dtype="float32"):
        """Uninitialised array."""
        return numpy.empty(shape, dtype=dtype)

    def full(self, shape, fill_value, dtype="float32"):
        """Array filled with fill_value."""
        return numpy.full(shape, fill_value, dtype=dtype)


_CPU = CPUDevice()  # one shared instance: cpu() sits on the hot path of Tensor.device


def cpu():
    """Return the CPU device."""
    return _CPU


def default_device():
    """Return the default device (CPU)."""
    return _CPU


def all_devices():
    """Return a list of all available devices."""
    return [_CPU]
