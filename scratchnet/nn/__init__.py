"""Layers (Modules) and their building blocks, named as in torch.nn."""

from scratchnet.nn import functional, init
from scratchnet.nn.activation import ReLU
from scratchnet.nn.dropout import Dropout
from scratchnet.nn.linear import Flatten, Identity, Linear
from scratchnet.nn.loss import CrossEntropyLoss
from scratchnet.nn.module import Module, Parameter, Sequential

__all__ = [
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Identity",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "functional",
    "init",
]
