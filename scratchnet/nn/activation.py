"""Activations as layers, named and defaulted as in torch.nn.

The operations themselves, with their math, are the engine's (scratchnet/ops/activation.py);
each Module here holds only its options. torch's `inplace=` argument is not taken: scratchnet
has no in-place activations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scratchnet.nn.module import Module
from scratchnet.ops import activation as ops
from scratchnet.tensor import Tensor

# One Module for each of the engine's activation Functions, under the same name, as in torch.
__all__ = [name for name in ops.__all__ if not name.islower()]


class Activation(Module):
    """The layer form of an activation: y = function(x, **options).

    Each option is an attribute, as in torch (LeakyReLU(0.2).negative_slope == 0.2), so that
    setting it changes what forward computes; extra_repr lists the options.
    """

    def __init__(self, function: Callable[..., Tensor], **options: Any) -> None:
        super().__init__()
        self.function = function
        self.option_names = tuple(options)
        for name, value in options.items():
            setattr(self, name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x, **{name: getattr(self, name) for name in self.option_names})

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self.option_names)


class ReLU(Activation):
    """y = max(x, 0), elementwise, as torch.nn.ReLU."""

    def __init__(self) -> None:
        super().__init__(ops.relu)


class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)), elementwise, as torch.nn.Sigmoid."""

    def __init__(self) -> None:
        super().__init__(ops.sigmoid)


class Tanh(Activation):
    """y = tanh(x), elementwise, as torch.nn.Tanh."""

    def __init__(self) -> None:
        super().__init__(ops.tanh)


class Softplus(Activation):
    """y = log(1 + exp(beta * x)) / beta, and x where beta * x > threshold, as torch.nn.Softplus."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__(ops.softplus, beta=beta, threshold=threshold)


class LeakyReLU(Activation):
    """y = x where x > 0, else negative_slope * x, as torch.nn.LeakyReLU."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__(ops.leaky_relu, negative_slope=negative_slope)


class ELU(Activation):
    """y = x where x > 0, else alpha * (exp(x) - 1), as torch.nn.ELU."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(ops.elu, alpha=alpha)


class GELU(Activation):
    """y = x * Phi(x) (approximate='none') or its tanh approximation, as torch.nn.GELU."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__(ops.gelu, approximate=approximate)


class ReLU6(Activation):
    """y = min(max(x, 0), 6), as torch.nn.ReLU6."""

    def __init__(self) -> None:
        super().__init__(ops.relu6)


class Hardswish(Activation):
    """y = x * relu6(x + 3) / 6, as torch.nn.Hardswish."""

    def __init__(self) -> None:
        super().__init__(ops.hardswish)


class SiLU(Activation):
    """y = x * sigmoid(x), as torch.nn.SiLU."""

    def __init__(self) -> None:
        super().__init__(ops.silu)


class Mish(Activation):
    """y = x * tanh(softplus(x)), as torch.nn.Mish."""

    def __init__(self) -> None:
        super().__init__(ops.mish)


class Softmax(Activation):
    """softmax along dim, as torch.nn.Softmax(dim).

    dim is required: torch's guess when it is left out (deprecated there) is not made here.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(ops.softmax, dim=dim)


class LogSoftmax(Activation):
    """log(softmax) along dim, computed stably, as torch.nn.LogSoftmax(dim).

    dim is required, as for Softmax.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(ops.log_softmax, dim=dim)
