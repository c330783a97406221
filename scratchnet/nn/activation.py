"""Activations as layers, named and defaulted as in torch.nn.

The operations themselves, with their math, are the engine's (scratchnet/ops/activation.py);
each Module here holds only its options. torch's `inplace=` argument is not taken: scratchnet
has no in-place activations.
"""

from __future__ import annotations

from scratchnet.nn.module import Module
from scratchnet.ops import activation as ops
from scratchnet.tensor import Tensor


class ReLU(Module):
    """y = max(x, 0), elementwise, as torch.nn.ReLU."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)), elementwise, as torch.nn.Sigmoid."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)


class Tanh(Module):
    """y = tanh(x), elementwise, as torch.nn.Tanh."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class Softplus(Module):
    """y = log(1 + exp(beta * x)) / beta, and x where beta * x > threshold, as torch.nn.Softplus."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, x: Tensor) -> Tensor:
        return ops.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class LeakyReLU(Module):
    """y = x where x > 0, else negative_slope * x, as torch.nn.LeakyReLU."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return ops.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """y = x where x > 0, else alpha * (exp(x) - 1), as torch.nn.ELU."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return ops.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(Module):
    """y = x * Phi(x) (approximate='none') or its tanh approximation, as torch.nn.GELU."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return ops.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class ReLU6(Module):
    """y = min(max(x, 0), 6), as torch.nn.ReLU6."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu6(x)


class Hardswish(Module):
    """y = x * relu6(x + 3) / 6, as torch.nn.Hardswish."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.hardswish(x)


class SiLU(Module):
    """y = x * sigmoid(x), as torch.nn.SiLU."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.silu(x)


class Mish(Module):
    """y = x * tanh(softplus(x)), as torch.nn.Mish."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.mish(x)


class Softmax(Module):
    """softmax along dim, as torch.nn.Softmax(dim).

    dim is required: torch's guess when it is left out (deprecated there) is not made here.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return ops.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax) along dim, computed stably, as torch.nn.LogSoftmax(dim).

    dim is required, as for Softmax.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return ops.log_softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
