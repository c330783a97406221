"""The engine's primitives: each a Function with its forward and hand-written backward.

    elementwise  add, sub, mul, div, neg, exp, log, pow, sqrt, abs, sign, clamp/clip,
                 maximum, minimum, where
    linalg       matmul
    reduction    sum, mean, max/min, amax/amin, argmax/argmin, var/std, prod, logsumexp
    shape        reshape, permute, expand, repeat, indexing (and flatten, transpose, ...)
    comparison   ==, !=, <, <=, >, >= (bool results, no gradient)
    conversion   clone, to(dtype)
    activation   relu, sigmoid, tanh, softplus, leaky_relu, elu, gelu, relu6, hardswish,
                 silu, mish, softmax, log_softmax
    join         cat, stack, split, chunk
    indexing     gather, masked_fill

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
    indexing,
    join,
    linalg,
    reduction,
    shape,
)
from scratchnet.ops.activation import *  # noqa: F403 (the names: activation.__all__)
from scratchnet.ops.elementwise import (
    Abs,
    Add,
    Clamp,
    Div,
    Exp,
    Log,
    Maximum,
    Minimum,
    Mul,
    Neg,
    Pow,
    PowScalar,
    RPowScalar,
    Sign,
    Sqrt,
    Sub,
    Where,
    abs,
    clamp,
    clip,
    maximum,
    minimum,
    pow,
    sign,
    sqrt,
    where,
)
from scratchnet.ops.indexing import Gather, MaskedFill, gather, masked_fill
from scratchnet.ops.join import Cat, Stack, cat, chunk, split, stack
from scratchnet.ops.linalg import MatMul
from scratchnet.ops.reduction import AMax, AMin, LogSumExp, Mean, Prod, Std, Sum, Var
from scratchnet.ops.shape import Index, Permute, Reshape, flatten
from scratchnet.tensor import Tensor

__all__ = [
    *activation.__all__,
    "AMax",
    "AMin",
    "Abs",
    "Add",
    "Cat",
    "Clamp",
    "Div",
    "Exp",
    "Gather",
    "Index",
    "Log",
    "LogSumExp",
    "MaskedFill",
    "MatMul",
    "Maximum",
    "Mean",
    "Minimum",
    "Mul",
    "Neg",
    "Permute",
    "Pow",
    "PowScalar",
    "Prod",
    "RPowScalar",
    "Reshape",
    "Sign",
    "Sqrt",
    "Stack",
    "Std",
    "Sub",
    "Sum",
    "Var",
    "Where",
    "abs",
    "cat",
    "chunk",
    "clamp",
    "clip",
    "flatten",
    "gather",
    "masked_fill",
    "maximum",
    "minimum",
    "pow",
    "sign",
    "split",
    "sqrt",
    "stack",
    "where",
]


def _install_tensor_methods() -> None:
    for module in (
        elementwise,
        linalg,
        reduction,
        shape,
        activation,
        comparison,
        conversion,
        join,
        indexing,
    ):
        for name, member in vars(module.TensorMethods).items():
            if isinstance(member, FunctionType | property):
                setattr(Tensor, name, member)


_install_tensor_methods()
