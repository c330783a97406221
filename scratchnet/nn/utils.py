"""Argument handling and parameter set-up that the layers share."""

from __future__ import annotations

import numpy as np

from scratchnet.nn import init
from scratchnet.nn.module import Module, Parameter
from scratchnet.tensor import Tensor

IntPair = int | tuple[int, int]  # a kernel size, stride or padding: n means (n, n)


def to_pair(value: IntPair, name: str) -> tuple[int, int]:
    """An int n becomes (n, n); a pair is checked and returned as a tuple of ints."""
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def check_4d(x: Tensor, caller: str) -> None:
    """Raise ValueError unless x is a batch of images (N, C, H, W)."""
    if x.ndim != 4:
        raise ValueError(
            f"{caller} expects a 4-D input (N, C, H, W), got {x.ndim}-D input of shape "
            f"{tuple(x.shape)}"
        )


def init_weight_and_bias(module: Module, weight_shape: tuple[int, ...], bias: bool) -> None:
    """Give module the weight and (if bias) the bias of torch's Linear and ConvNd layers.

    weight ~ kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and
    bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in that order as in PyTorch's
    reset_parameters. Without bias, module.bias is registered as None.
    """
    module.weight = Parameter(init.kaiming_uniform(weight_shape, a=5**0.5))
    if bias:
        bound = init.fan_in_bias_bound(weight_shape)
        module.bias = Parameter(init.uniform((weight_shape[0],), -bound, bound))
    else:
        module.register_parameter("bias", None)
