"""ReLU as a layer. The operation itself is the engine's (scratchnet/ops/activation.py)."""

from __future__ import annotations

from scratchnet.nn.module import Module
from scratchnet.ops import relu
from scratchnet.tensor import Tensor


class ReLU(Module):
    """y = max(x, 0), elementwise, as torch.nn.ReLU."""

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)
