"""scratchnet: a neural-network library written from scratch in NumPy.

A reverse-mode autograd whose backward passes are written by hand, Numba kernels for the CPU
hot loops, and the layers a modern MNIST CNN needs. The API follows PyTorch's names.
"""

import numpy as np

from scratchnet.runtime import startup

startup.apply()  # before anything else: every import-time effect, listed in runtime/startup.py

from scratchnet import autograd, nn, ops, optim, viz  # noqa: E402
from scratchnet.creation import (  # noqa: E402
    arange,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    zeros,
    zeros_like,
)
from scratchnet.nn.init import manual_seed  # noqa: E402
from scratchnet.ops.comparison import eq, equal, ge, gt, le, lt, ne  # noqa: E402
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
    "Function",
    "Size",
    "Tensor",
    "__version__",
    "arange",
    "autograd",
    "empty",
    "empty_like",
    "enable_grad",
    "eq",
    "equal",
    "eye",
    "flatten",
    "float32",
    "float64",
    "full",
    "full_like",
    "ge",
    "gt",
    "int32",
    "int64",
    "is_grad_enabled",
    "le",
    "linspace",
    "lt",
    "manual_seed",
    "ne",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "ops",
    "optim",
    "permute",
    "rand",
    "rand_like",
    "randint",
    "randint_like",
    "randn",
    "randn_like",
    "reference_mode",
    "reference_mode_enabled",
    "reshape",
    "set_reference_mode",
    "squeeze",
    "t",
    "tensor",
    "transpose",
    "uint8",
    "unsqueeze",
    "viz",
    "zeros",
    "zeros_like",
]
