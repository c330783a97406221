"""The functional forms of the layers, as torch.nn.functional: each takes and returns Tensors.

Each function is defined in its layer's file, beside its Function and its Module; relu,
softmax and log_softmax are the engine's own (scratchnet/ops/activation.py).
"""

from scratchnet.nn.batchnorm import batch_norm
from scratchnet.nn.conv import conv2d
from scratchnet.nn.dropout import dropout
from scratchnet.nn.linear import linear
from scratchnet.nn.loss import cross_entropy, nll_loss
from scratchnet.nn.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from scratchnet.ops import log_softmax, relu, softmax

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "cross_entropy",
    "dropout",
    "linear",
    "log_softmax",
    "max_pool2d",
    "nll_loss",
    "relu",
    "softmax",
]
