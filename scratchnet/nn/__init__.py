"""Layers (Modules) and their building blocks, named as in torch.nn."""

from scratchnet.nn import functional, init
from scratchnet.nn.activation import ReLU
from scratchnet.nn.batchnorm import BatchNorm1d, BatchNorm2d
from scratchnet.nn.conv import Conv2d
from scratchnet.nn.dropout import Dropout
from scratchnet.nn.linear import Flatten, Identity, Linear
from scratchnet.nn.loss import CrossEntropyLoss
from scratchnet.nn.module import Module, Parameter, Sequential
from scratchnet.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Identity",
    "Linear",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "functional",
    "init",
]
