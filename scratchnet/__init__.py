"""scratchnet: a neural-network library written from scratch in NumPy.

A reverse-mode autograd whose backward passes are written by hand, Numba kernels for the CPU
hot loops, and the layers a modern MNIST CNN needs. The API follows PyTorch's names.
"""

from scratchnet.runtime import startup

startup.apply()  # before anything else: every import-time effect, listed in runtime/startup.py

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
    "enable_grad",
    "is_grad_enabled",
    "manual_seed",
    "no_grad",
    "tensor",
]
