"""needle: a numpy deep-learning engine following the CMU 10-414/714 needle API."""
from . import allocator  # noqa: F401  (first: tunes malloc before arrays are made)
from . import ops
from .ops import *  # noqa: F401,F403
from .autograd import Tensor, TensorTuple, cpu, all_devices, default_device, no_grad  # noqa: F401
from . import init

# Imported after the core above: these modules import needle.ops/init/autograd themselves.
from . import nn  # noqa: E402
from . import optim  # noqa: E402
from . import data  # noqa: E402
from . import models  # noqa: E402
from . import training  # noqa: E402
from . import capture  # noqa: E402,F401
