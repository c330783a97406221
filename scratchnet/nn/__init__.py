"""Layers (Modules) and their building blocks, named as in torch.nn."""

from scratchnet.nn import activation, functional, init
from scratchnet.nn.activation import *  # noqa: F403 (the names: activation.__all__)
from scratchnet.nn.batchnorm import BatchNorm1d, BatchNorm2d
from scratchnet.nn.container import ModuleDict, ModuleList, Sequential
from scratchnet.nn.conv import Conv2d
from scratchnet.nn.dropout import Dropout
from scratchnet.nn.linear import Flatten, Identity, Linear
from scratchnet.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from scratchnet.nn.module import Module, Parameter
from scratchnet.nn.padding import ZeroPad2d
from scratchnet.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    *activation.__all__,
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Identity",
    "L1Loss",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "Sequential",
    "ZeroPad2d",
    "functional",
    "init",
]
