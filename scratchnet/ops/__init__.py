"""The engine's primitives: each a Function with its forward and hand-written backward.

    elementwise  add, sub, mul, div, neg, exp, log
    linalg       matmul
    reduction    sum, mean
    shape        reshape, permute, expand, repeat, indexing (and flatten, transpose, ...)
    comparison   ==, !=, <, <=, >, >= (bool results, no gradient)
    conversion   clone, to(dtype)
    activation   ReLU, log-softmax, softmax

In every docstring, `dy` is the gradient of the loss with respect to the output y, and the
backward formulas give the gradient with respect to each input.

Tensor's operators and methods (`a + b`, `x.relu()`, `x.sum(1)`, ...) are the calls of these
Functions. Each module lists its own in a `TensorMethods` class, and they are copied onto
Tensor here, once, when scratchnet is imported: tensor.py cannot import the modules that build
on it. Chainer v1 adds Variable's operators the same way (functions/basic_math.py), and so
does PyTorch for much of torch.Tensor.
"""

from types import FunctionType

from scratchnet.ops import (
    activation,
    comparison,
    conversion,
    elementwise,
    linalg,
    reduction,
    shape,
)
from scratchnet.ops.activation import LogSoftmax, ReLU, log_softmax, relu, softmax
from scratchnet.ops.elementwise import Add, Div, Exp, Log, Mul, Neg, Sub
from scratchnet.ops.linalg import MatMul
from scratchnet.ops.reduction import Mean, Sum
from scratchnet.ops.shape import Index, Permute, Reshape, flatten
from scratchnet.tensor import Tensor

__all__ = [
    "Add",
    "Div",
    "Exp",
    "Index",
    "Log",
    "LogSoftmax",
    "MatMul",
    "Mean",
    "Mul",
    "Neg",
    "Permute",
    "ReLU",
    "Reshape",
    "Sub",
    "Sum",
    "flatten",
    "log_softmax",
    "relu",
    "softmax",
]


def _install_tensor_methods() -> None:
    for module in (elementwise, linalg, reduction, shape, activation, comparison, conversion):
        for name, member in vars(module.TensorMethods).items():
            if isinstance(member, FunctionType | property):
                setattr(Tensor, name, member)


_install_tensor_methods()
