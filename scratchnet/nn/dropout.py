"""Inverted dropout."""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.nn import init
from scratchnet.nn.module import Module
from scratchnet.tensor import Context, Function, Tensor


class DropoutFunction(Function):
    """y = x * mask / (1 - p), with mask[i] ~ Bernoulli(1 - p)

    Scaling the kept units by 1/(1-p) in training keeps E[y] = x, so evaluation needs no
    rescaling ("inverted" dropout).
    Backward: dx = dy * mask / (1 - p).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, mask: Any = None) -> np.ndarray:
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy * ctx.mask


def dropout(
    x: Tensor,
    p: float = 0.5,
    training: bool = True,
    mask: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p), in training only.

    `mask` (0/1 values of x's shape) may be given to reproduce a draw, for example to compare
    with another framework.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if mask is None:
        keep = (rng or init.get_rng()).random(x.shape) >= p
    else:
        keep = np.asarray(mask, dtype=bool)
        if keep.shape != x.shape:
            raise ValueError(f"dropout mask has shape {keep.shape}, input has {x.shape}")
    scaled = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return DropoutFunction.apply(x, mask=scaled)


class Dropout(Module):
    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
