"""The functional forms of the layers, as torch.nn.functional: each takes and returns Tensors.

Each function is defined in its layer's file, beside its Function and its Module.
"""

from scratchnet.nn.activation import log_softmax, relu, softmax
from scratchnet.nn.batchnorm import batch_norm
from scratchnet.nn.conv import conv2d
from scratchnet.nn.dropout import dropout
from scratchnet.nn.linear import linear
from scratchnet.nn.loss import cross_entropy, nll_loss
from scratchnet.nn.pooling import adaptive_avg_pool2d, max_pool2d

__all__ = [
    "adaptive_avg_pool2d",
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
