"""scratchnet: a neural-network library written from scratch in NumPy.

A reverse-mode autograd whose backward passes are written by hand, Numba kernels for the CPU
hot loops, and the layers a modern MNIST CNN needs. The API follows PyTorch's names.
"""

import numpy as np

from scratchnet.runtime import startup

startup.apply()  # before anything else: every import-time effect, listed in runtime/startup.py

from scratchnet import autograd, creation, jit, nn, ops, optim, viz  # noqa: E402
from scratchnet.creation import *  # noqa: E402, F403 (the names: creation.__all__)
from scratchnet.nn.init import manual_seed  # noqa: E402
from scratchnet.ops.activation import (  # noqa: E402
    log_softmax,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from scratchnet.ops.comparison import eq, equal, ge, gt, le, lt, ne  # noqa: E402
from scratchnet.ops.elementwise import (  # noqa: E402
    clamp,
    maximum,
    minimum,
    sign,
    sqrt,
    where,
)
from scratchnet.ops.indexing import gather, masked_fill  # noqa: E402
from scratchnet.ops.join import cat, chunk, split, stack  # noqa: E402
from scratchnet.ops.reduction import (  # noqa: E402
    amax,
    amin,
    argmax,
    argmin,
    logsumexp,
    mean,
    prod,
    std,
    var,
)
from scratchnet.ops.shape import (  # noqa: E402
    flatten,
    permute,
    reshape,
    squeeze,
    t,
    transpose,
    unsqueeze,
)
from scratchnet.runtime.mode import (  # noqa: E402
    reference_mode,
    reference_mode_enabled,
    set_reference_mode,
)
from scratchnet.tensor import (  # noqa: E402
    Function,
    Size,
    Tensor,
    enable_grad,
    is_grad_enabled,
    no_grad,
    tensor,
)

__version__ = "0.1.0"

# torch's functions that share a builtin's name are attributes (sn.sum, sn.max, ...), left out
# of __all__ so that `from scratchnet import *` does not hide the builtins.
abs = ops.elementwise.abs
pow = ops.elementwise.pow
max = ops.reduction.max
min = ops.reduction.min
sum = ops.reduction.sum

# The dtypes, by torch's names (scratchnet's dtypes are NumPy's): x.to(scratchnet.float64).
float32 = np.float32
float64 = np.float64
int32 = np.int32
int64 = np.int64
uint8 = np.uint8
# torch.bool: scratchnet.bool is the bool dtype. It is left out of __all__, so that
# `from scratchnet import *` does not hide the builtin.
bool = np.bool_

__all__ = [
    *creation.__all__,
    "Function",
    "Size",
    "Tensor",
    "__version__",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "autograd",
    "cat",
    "chunk",
    "clamp",
    "enable_grad",
    "eq",
    "equal",
    "flatten",
    "float32",
    "float64",
    "gather",
    "ge",
    "gt",
    "int32",
    "int64",
    "is_grad_enabled",
    "jit",
    "le",
    "log_softmax",
    "logsumexp",
    "lt",
    "manual_seed",
    "masked_fill",
    "maximum",
    "mean",
    "minimum",
    "ne",
    "nn",
    "no_grad",
    "ops",
    "optim",
    "permute",
    "prod",
    "reference_mode",
    "reference_mode_enabled",
    "relu",
    "reshape",
    "set_reference_mode",
    "sigmoid",
    "sign",
    "softmax",
    "split",
    "sqrt",
    "squeeze",
    "stack",
    "std",
    "t",
    "tanh",
    "tensor",
    "transpose",
    "uint8",
    "unsqueeze",
    "var",
    "viz",
    "where",
]
