"""Argument handling that the convolution and pooling layers share."""

from __future__ import annotations

import numpy as np

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
