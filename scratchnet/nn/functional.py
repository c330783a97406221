"""The functional forms of the layers, as torch.nn.functional: each takes and returns Tensors.

Each function is defined in its layer's file, beside its Function and its Module.
"""

from scratchnet.nn.activation import log_softmax, relu, softmax
from scratchnet.nn.dropout import dropout
from scratchnet.nn.linear import linear
from scratchnet.nn.loss import cross_entropy, nll_loss

__all__ = [
    "cross_entropy",
    "dropout",
    "linear",
    "log_softmax",
    "nll_loss",
    "relu",
    "softmax",
]
