"""Folding a BatchNorm in evaluation mode into the convolution before it, as torch's
torch.nn.utils.fusion.fuse_conv_bn_eval and torch.ao.quantization.fuse_modules do.

In evaluation, BatchNorm2d is an affine map per channel o, with its running statistics:

    bn(z)[o] = gamma[o] * (z[o] - running_mean[o]) / sqrt(running_var[o] + eps) + beta[o]
             = scale[o] * z[o] + shift[o],
    scale    = gamma / sqrt(running_var + eps),    shift = beta - scale * running_mean

and a convolution's output channel o is linear in weight[o] plus bias[o], so bn(conv(x)) is
itself one convolution:

    weight'[o] = scale[o] * weight[o]
    bias'[o]   = scale[o] * (bias[o] - running_mean[o]) + beta[o]     (bias = 0 if absent)

The fused layer does one pass over the output instead of two. It holds only for evaluation:
in training, BatchNorm uses each batch's statistics, which no fixed weight can reproduce.
The products are computed in float64 and rounded once to the weight's dtype; the fused
output matches the pair's to float32 rounding (tests/test_fusion.py).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from scratchnet.nn.batchnorm import BatchNorm2d
from scratchnet.nn.conv import Conv2d
from scratchnet.nn.linear import Identity
from scratchnet.nn.module import Module, Parameter


def fuse_conv_bn_weights(
    conv_weight: np.ndarray,
    conv_bias: np.ndarray | None,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float,
    bn_weight: np.ndarray | None,
    bn_bias: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The folded (weight', bias') of the module docstring, in conv_weight's dtype.

    A BatchNorm without affine parameters has gamma = 1 and beta = 0.
    """
    channels = len(conv_weight)
    gamma = np.ones(channels) if bn_weight is None else np.asarray(bn_weight, np.float64)
    beta = np.zeros(channels) if bn_bias is None else np.asarray(bn_bias, np.float64)
    bias = np.zeros(channels) if conv_bias is None else np.asarray(conv_bias, np.float64)
    scale = gamma / np.sqrt(np.asarray(running_var, np.float64) + eps)
    weight = conv_weight.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
    bias = scale * (bias - np.asarray(running_mean, np.float64)) + beta
    return weight.astype(conv_weight.dtype), bias.astype(conv_weight.dtype)


def fuse_conv_bn_eval(conv: Conv2d, bn: BatchNorm2d) -> Conv2d:
    """A new Conv2d computing bn(conv(x)) for a conv and a BatchNorm2d both in eval mode.

    The inputs are left unchanged. Raises ValueError in training mode, without running
    statistics, or when the channel counts differ.
    """
    if conv.training or bn.training:
        raise ValueError("fuse_conv_bn_eval: only modules in eval mode can be fused")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fuse_conv_bn_eval: the BatchNorm has no running statistics")
    if bn.num_features != conv.out_channels:
        raise ValueError(
            f"fuse_conv_bn_eval: the BatchNorm has {bn.num_features} channels, the "
            f"convolution {conv.out_channels} outputs"
        )
    weight, bias = fuse_conv_bn_weights(
        conv.weight.data,
        None if conv.bias is None else conv.bias.data,
        bn.running_mean,
        bn.running_var,
        bn.eps,
        None if bn.weight is None else bn.weight.data,
        None if bn.bias is None else bn.bias.data,
    )
    fused = copy.deepcopy(conv)
    fused.weight = Parameter(weight, requires_grad=conv.weight.requires_grad)
    fused.bias = Parameter(bias, requires_grad=conv.weight.requires_grad)
    return fused


def fuse_modules(model: Module, modules_to_fuse: Sequence[Sequence[str]]) -> Module:
    """A copy of model (in eval mode) with each [conv, bn] pair of names fused, as
    torch.ao.quantization.fuse_modules(model, [["conv1", "bn1"], ...]) in eval mode:

    the conv's place gets the fused Conv2d, the BatchNorm's an Identity, so that the model's
    own forward runs unchanged. Names may be dotted ("block.conv"). The model is left as it is.
    """
    if model.training:
        raise ValueError("fuse_modules: put the model in eval mode first (model.eval())")
    fused = copy.deepcopy(model)
    for names in modules_to_fuse:
        if len(names) != 2:
            raise ValueError(f"fuse_modules: expected a [conv, bn] pair of names, got {names!r}")
        conv, bn = (_submodule(fused, name) for name in names)
        if not isinstance(conv, Conv2d) or not isinstance(bn, BatchNorm2d):
            raise ValueError(
                f"fuse_modules: {names[0]!r} and {names[1]!r} are a {type(conv).__name__} and a "
                f"{type(bn).__name__}; only Conv2d followed by BatchNorm2d can be fused"
            )
        _replace(fused, names[0], fuse_conv_bn_eval(conv, bn))
        _replace(fused, names[1], Identity())
    return fused


def _submodule(model: Module, name: str) -> Module:
    module = model
    for part in name.split("."):
        child = dict(module.named_children()).get(part)
        if child is None:
            raise ValueError(f"fuse_modules: the model has no submodule {name!r}")
        module = child
    return module


def _replace(model: Module, name: str, new: Module) -> None:
    parent, _, last = name.rpartition(".")
    setattr(_submodule(model, parent) if parent else model, last, new)
