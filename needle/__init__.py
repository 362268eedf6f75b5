"""needle: a numpy deep-learning engine following the CMU 10-414/714 needle API."""
import importlib

from . import ops
from .ops import *  # noqa: F401,F403
from .autograd import Tensor, cpu, all_devices, default_device, no_grad  # noqa: F401
from . import init

# Written in parallel by another engineer: resolved on first access so the package imports meanwhile.
_LAZY_SUBMODULES = ("nn", "optim", "data", "models", "training")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
