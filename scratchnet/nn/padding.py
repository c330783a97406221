"""Constant padding: F.pad(x, pad, mode='constant', value) and nn.ZeroPad2d.

`pad` lists (before, after) pairs starting from the LAST dim, as in torch:
(left, right) pads the last dim, (left, right, top, bottom) the last two, and so on. A negative
entry crops that many elements instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scratchnet.nn.module import Module
from scratchnet.tensor import Context, Function, Tensor

_OTHER_MODES = ("reflect", "replicate", "circular")


class ConstantPad(Function):
    """y = x cropped by the negative entries of pad, then padded with value by the positive ones

    Along a dim with (before, after):  y = [value] * before + x + [value] * after
    Backward: dx = the part of dy that holds x (the padding's gradient goes nowhere: value is
    a constant), and 0 at the elements of x that were cropped.
    Shapes: along each dim, n_out = n + before + after (which must be >= 0).
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, widths: tuple = (), value: float = 0.0) -> np.ndarray:
        # crop: where x's kept part lies in x; inside: where it lies in y.
        ctx.x_shape, ctx.dtype = x.shape, x.dtype
        ctx.crop = tuple(
            slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, x.shape)
        )
        kept = x[ctx.crop]
        ctx.inside = tuple(
            slice(max(lo, 0), max(lo, 0) + n) for (lo, _), n in zip(widths, kept.shape)
        )
        grow = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
        return np.pad(kept, grow, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        dx = np.zeros(ctx.x_shape, dtype=ctx.dtype)
        dx[ctx.crop] = dy[ctx.inside]
        return dx


def pad(
    input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None
) -> Tensor:
    """Pad (or, with negative entries, crop) input, as torch.nn.functional.pad.

    pad = (last_before, last_after, second_last_before, second_last_after, ...): torch's order,
    the reverse of np.pad's. Only mode='constant' is implemented; value None means 0.
    """
    if mode in _OTHER_MODES:
        raise NotImplementedError(
            f"pad: mode={mode!r} is not implemented in scratchnet, only mode='constant'"
        )
    if mode != "constant":
        raise ValueError(
            f"pad: unknown mode {mode!r} (torch's modes: constant, {', '.join(_OTHER_MODES)})"
        )
    pad = tuple(pad)
    if not all(isinstance(p, int | np.integer) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: the padding must be ints, got {pad}")
    if len(pad) % 2:
        raise ValueError(f"pad: the padding {pad} must have an even length (before, after) pairs")
    if len(pad) // 2 > input.ndim:
        raise ValueError(
            f"pad: the padding {pad} has {len(pad) // 2} pairs, more than the {input.ndim} dims "
            f"of the input of shape {tuple(input.shape)}"
        )
    pairs = [(int(pad[i]), int(pad[i + 1])) for i in range(0, len(pad), 2)]
    widths = [(0, 0)] * (input.ndim - len(pairs)) + pairs[::-1]
    for d, ((lo, hi), n) in enumerate(zip(widths, input.shape)):
        if n + lo + hi < 0:
            raise ValueError(
                f"pad: dim {d} of size {n}, padded by ({lo}, {hi}), would have a negative size "
                f"(input of shape {tuple(input.shape)}, pad {pad})"
            )
    return ConstantPad.apply(input, widths=tuple(widths), value=0.0 if value is None else value)


class ZeroPad2d(Module):
    """Pad the last two dims with zeros: padding is an int (all four sides) or
    (left, right, top, bottom), as torch.nn.ZeroPad2d. Negative entries crop."""

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__()
        if isinstance(padding, int | np.integer):
            padding = (int(padding),) * 4
        padding = tuple(padding)
        if len(padding) != 4:
            raise ValueError(
                f"ZeroPad2d: padding must be an int or (left, right, top, bottom), got {padding}"
            )
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return pad(x, self.padding)

    def extra_repr(self) -> str:
        return str(self.padding)
