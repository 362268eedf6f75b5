"""needle operators: each a TensorOp class plus a lower-case function (course API)."""
from .ops_mathematic import *  # noqa: F401,F403
from .ops_logarithmic import *  # noqa: F401,F403
from .ops_fused import *  # noqa: F401,F403
from .ops_fused_blocks import *  # noqa: F401,F403
from .ops_tuple import *  # noqa: F401,F403
from .ops_activation import *  # noqa: F401,F403
from .ops_loss import *  # noqa: F401,F403
from .ops_conv import *  # noqa: F401,F403
from .ops_pool import *  # noqa: F401,F403
from .ops_batchnorm_pool import *  # noqa: F401,F403
