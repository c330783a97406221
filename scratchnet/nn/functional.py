"""The functional forms of the layers, as torch.nn.functional: each takes and returns Tensors.

Each function is defined in its layer's file, beside its Function and its Module; the
activations (relu, sigmoid, gelu, softmax, ...) are the engine's own (scratchnet/ops/activation.py).
"""

from scratchnet.nn.batchnorm import batch_norm
from scratchnet.nn.conv import conv2d
from scratchnet.nn.dropout import dropout
from scratchnet.nn.linear import linear
from scratchnet.nn.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
)
from scratchnet.nn.padding import pad
from scratchnet.nn.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from scratchnet.ops import activation
from scratchnet.ops.activation import *  # noqa: F403 (the names: activation.__all__)

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "l1_loss",
    "linear",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "pad",
    # The activations' functional forms, not their Functions (ReLU, ...), as torch.nn.functional.
    *(name for name in activation.__all__ if name.islower()),
]
