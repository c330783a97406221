"""scratchnet: a neural-network library written from scratch in NumPy.

A reverse-mode autograd whose backward passes are written by hand, Numba kernels for the CPU
hot loops, and the layers a modern MNIST CNN needs. The API follows PyTorch's names.
"""

from scratchnet.runtime import startup

startup.apply()  # before anything else: every import-time effect, listed in runtime/startup.py

from scratchnet import autograd  # noqa: E402
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
from scratchnet.tensor import (  # noqa: E402
    Function,
    Tensor,
    enable_grad,
    is_grad_enabled,
    no_grad,
    tensor,
)

__version__ = "0.1.0"

__all__ = [
    "Function",
    "Tensor",
    "__version__",
    "arange",
    "autograd",
    "empty",
    "empty_like",
    "enable_grad",
    "eye",
    "full",
    "full_like",
    "is_grad_enabled",
    "linspace",
    "manual_seed",
    "no_grad",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randint_like",
    "randn",
    "randn_like",
    "tensor",
    "zeros",
    "zeros_like",
]
