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
from scratchnet.ops.activation import (
    elu,
    gelu,
    hardswish,
    leaky_relu,
    log_softmax,
    mish,
    relu,
    relu6,
    sigmoid,
    silu,
    softmax,
    softplus,
    tanh,
)

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "elu",
    "gelu",
    "hardswish",
    "l1_loss",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mish",
    "mse_loss",
    "nll_loss",
    "pad",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
]
