"""Losses, as torch.nn.functional's and torch.nn's: each a Function, its function and its Module.

Every loss takes reduction='mean' | 'sum' | 'none': the mean or the sum of the per-element
losses l, or l itself. In the backward formulas below, g is the gradient reaching each l:

    'none': g = dy (one per element)    'sum': g = dy    'mean': g = dy / n

(n = the number of elements, or, for nll_loss and cross_entropy, the summed weight of the
targets that are not ignored, as torch divides).

cross_entropy with its default arguments is the CNN's training loss: it keeps its own fused
Function (CrossEntropy), and every other option takes the general path through log_softmax
and NegativeLogLikelihood, so the options cost the training loop nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.nn.module import Module
from scratchnet.ops import log_softmax
from scratchnet.tensor import Context, Function, Tensor

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(losses: np.ndarray, reduction: str, dtype: np.dtype) -> np.ndarray:
    if reduction == "none":
        return losses.astype(dtype, copy=False)
    total = losses.sum() if reduction == "sum" else losses.mean()  # mean of no element: nan
    return np.asarray(total, dtype=dtype)


def _reduced_grad(dy: np.ndarray, reduction: str, n: int) -> np.ndarray:
    """g, the gradient reaching each per-element loss (see the module docstring)."""
    return dy / n if reduction == "mean" else dy


def _as_array(x: Any) -> np.ndarray | None:
    return None if x is None else np.asarray(x.data if isinstance(x, Tensor) else x)


def _as_target(op: str, input: Tensor, target: Any) -> Tensor:
    """A float target of input's shape: a constant in input's dtype unless it is a Tensor."""
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    if target.shape != input.shape:
        raise ValueError(
            f"{op}: target has shape {target.shape}, expected input's shape {input.shape}"
        )
    return target


# ---------------------------------------------------------------------------------------------
# Regression: mse_loss, l1_loss
# ---------------------------------------------------------------------------------------------


class SquaredError(Function):
    """l = (x - t)**2, reduced

    Backward: dx = 2 * (x - t) * g, dt = -dx.
    Shapes: x and t the same shape; y is 0-d, or x's shape for reduction='none'.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, t: np.ndarray, reduction: str) -> np.ndarray:
        ctx.diff, ctx.reduction = x - t, reduction
        return _reduce(ctx.diff**2, reduction, x.dtype)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx = 2 * ctx.diff * _reduced_grad(dy, ctx.reduction, ctx.diff.size)
        return dx, -dx


class AbsoluteError(Function):
    """l = |x - t|, reduced

    Backward: dx = sign(x - t) * g, dt = -dx (the subgradient at x == t is 0, as in torch).
    Shapes: x and t the same shape; y is 0-d, or x's shape for reduction='none'.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, t: np.ndarray, reduction: str) -> np.ndarray:
        diff = x - t
        ctx.sign, ctx.reduction = np.sign(diff), reduction
        return _reduce(np.abs(diff), reduction, x.dtype)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx = ctx.sign * _reduced_grad(dy, ctx.reduction, ctx.sign.size)
        return dx, -dx


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error, as F.mse_loss: reduce((input - target)**2)."""
    _check_reduction("mse_loss", reduction)
    return SquaredError.apply(input, _as_target("mse_loss", input, target), reduction=reduction)


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error, as F.l1_loss: reduce(|input - target|)."""
    _check_reduction("l1_loss", reduction)
    return AbsoluteError.apply(input, _as_target("l1_loss", input, target), reduction=reduction)


# ---------------------------------------------------------------------------------------------
# Binary classification: binary_cross_entropy, binary_cross_entropy_with_logits
# ---------------------------------------------------------------------------------------------


class BinaryCrossEntropy(Function):
    """l = -w * (t * log(p) + (1 - t) * log(1 - p)), each log clamped to >= -100, reduced

    The clamp is torch's: p = 0 or 1 gives a loss of 100, not inf.
    Backward (torch's formulas):
              dp = w * (p - t) / max(p * (1 - p), 1e-12) * g
              dt = w * (log(1 - p) - log(p)) * g
    Shapes: p and t the same shape, p in [0, 1]; w (optional, a constant) broadcasts to p.
    """

    @staticmethod
    def forward(
        ctx: Context, p: np.ndarray, t: np.ndarray, weight: np.ndarray | None, reduction: str
    ) -> np.ndarray:
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), -100)
            log_1mp = np.maximum(np.log1p(-p), -100)
        losses = -(t * log_p + (1 - t) * log_1mp)
        w = np.ones((), p.dtype) if weight is None else weight
        ctx.p, ctx.t, ctx.w, ctx.reduction = p, t, w, reduction
        ctx.log_p, ctx.log_1mp = log_p, log_1mp
        return _reduce(w * losses, reduction, p.dtype)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, Any]:
        g = ctx.w * _reduced_grad(dy, ctx.reduction, ctx.p.size)
        dp = dt = None
        if ctx.needs_input_grad[0]:
            dp = g * (ctx.p - ctx.t) / np.maximum(ctx.p * (1 - ctx.p), 1e-12)
        if ctx.needs_input_grad[1]:
            dt = g * (ctx.log_1mp - ctx.log_p)
        return dp, dt


class BinaryCrossEntropyWithLogits(Function):
    """l = w * ((1 - t) * x + (1 + (pos_weight - 1) * t) * softplus(-x)), reduced

    This is binary_cross_entropy(sigmoid(x), t) without the round trip through p, so it is
    stable for any x: softplus(-x) = -log(sigmoid(x)) = max(-x, 0) + log(1 + exp(-|x|)).
    pos_weight (optional) multiplies the loss of the positive targets.
    Backward: with lw = 1 + (pos_weight - 1) * t,
              dx = w * ((1 - t) - lw * sigmoid(-x)) * g      (= w * (sigmoid(x) - t) * g
                                                               without pos_weight)
              dt = w * (-x + (pos_weight - 1) * softplus(-x)) * g
    Shapes: x and t the same shape; w and pos_weight (constants) broadcast to x.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        t: np.ndarray,
        weight: np.ndarray | None,
        pos_weight: np.ndarray | None,
        reduction: str,
    ) -> np.ndarray:
        softplus_neg = np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))
        extra = np.zeros((), x.dtype) if pos_weight is None else pos_weight - 1
        lw = 1 + extra * t
        w = np.ones((), x.dtype) if weight is None else weight
        ctx.x, ctx.t, ctx.w, ctx.extra, ctx.lw = x, t, w, extra, lw
        ctx.softplus_neg, ctx.reduction = softplus_neg, reduction
        return _reduce(w * ((1 - t) * x + lw * softplus_neg), reduction, x.dtype)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, Any]:
        g = ctx.w * _reduced_grad(dy, ctx.reduction, ctx.x.size)
        dx = dt = None
        if ctx.needs_input_grad[0]:
            sigmoid_neg = np.exp(-ctx.softplus_neg - ctx.x)  # 1 - sigmoid(x), stably
            dx = g * ((1 - ctx.t) - ctx.lw * sigmoid_neg)
        if ctx.needs_input_grad[1]:
            dt = g * (ctx.extra * ctx.softplus_neg - ctx.x)
        return dx, dt


def binary_cross_entropy(
    input: Tensor, target: Any, weight: Any = None, reduction: str = "mean"
) -> Tensor:
    """Binary cross-entropy of probabilities in [0, 1], as F.binary_cross_entropy."""
    _check_reduction("binary_cross_entropy", reduction)
    target = _as_target("binary_cross_entropy", input, target)
    p = input.data
    if p.size and not (p.min() >= 0 and p.max() <= 1):  # NaN fails too
        raise ValueError(
            "binary_cross_entropy: input must be probabilities in [0, 1] (apply sigmoid, or "
            "use binary_cross_entropy_with_logits on logits)"
        )
    w = _broadcastable("binary_cross_entropy", "weight", _as_array(weight), input)
    return BinaryCrossEntropy.apply(input, target, weight=w, reduction=reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross-entropy of logits, stable for any x, as F.binary_cross_entropy_with_logits.

    weight and pos_weight are constants here (torch can differentiate them too).
    """
    op = "binary_cross_entropy_with_logits"
    _check_reduction(op, reduction)
    target = _as_target(op, input, target)
    w = _broadcastable(op, "weight", _as_array(weight), input)
    pw = _broadcastable(op, "pos_weight", _as_array(pos_weight), input)
    return BinaryCrossEntropyWithLogits.apply(
        input, target, weight=w, pos_weight=pw, reduction=reduction
    )


def _broadcastable(op: str, name: str, array: np.ndarray | None, input: Tensor) -> Any:
    if array is None:
        return None
    try:
        np.broadcast_shapes(array.shape, input.shape)
    except ValueError:
        raise ValueError(
            f"{op}: {name} of shape {array.shape} does not broadcast to input's {input.shape}"
        ) from None
    return array.astype(input.dtype)


# ---------------------------------------------------------------------------------------------
# Classification: nll_loss, cross_entropy
# ---------------------------------------------------------------------------------------------


class CrossEntropy(Function):
    """loss = mean over the batch of -log_softmax(logits)[i, target[i]]

    Fusing the two steps gives a simple, stable gradient:
    Forward:  logp = logits - logsumexp(logits, axis=1)
              loss = -(1/N) * sum_i logp[i, target[i]]
    Backward: dlogits = dy * (softmax(logits) - onehot(target)) / N
    Shapes: logits (N, C), target (N,) integers in [0, C); loss is a scalar.
    """

    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, target: Any = None) -> np.ndarray:
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        ctx.logp, ctx.target = logp, target
        return np.asarray(-logp[np.arange(n), target].mean(), dtype=logits.dtype)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        n = ctx.logp.shape[0]
        dlogits = np.exp(ctx.logp)
        dlogits[np.arange(n), ctx.target] -= 1
        dlogits *= dy / n
        return dlogits


class NegativeLogLikelihood(Function):
    """l[i] = -valid[i] * ((1 - eps) * w[t[i]] * logp[i, t[i]]
                           + (eps / C) * sum_c w[c] * logp[i, c])

    with valid[i] = (t[i] != ignore_index), w the class weights (ones by default) and eps the
    label smoothing (0 for nll_loss; cross_entropy's label_smoothing, with torch's formula).
    'mean' divides by sum_i valid[i] * w[t[i]], as torch does.
    Backward: dlogp[i, c] = -g[i] * valid[i] * ((1 - eps) * w[t[i]] * (c == t[i])
                                                + (eps / C) * w[c])
    Shapes: logp (N, C) or (N, C, d1, ...); t (N,) or (N, d1, ...) integers; the class
    dimension is 1. l has t's shape; y is 0-d unless reduction='none'.
    """

    @staticmethod
    def forward(
        ctx: Context,
        logp: np.ndarray,
        target: np.ndarray,
        weight: np.ndarray | None,
        ignore_index: int,
        reduction: str,
        label_smoothing: float = 0.0,
    ) -> np.ndarray:
        c = logp.shape[1]
        valid = target != ignore_index
        t = np.where(valid, target, 0)[:, None]  # ignored rows point at class 0, weight 0
        w = np.ones(c, logp.dtype) if weight is None else weight
        w_shape = (1, c) + (1,) * (logp.ndim - 2)
        w_t = w[t[:, 0]] * valid
        losses = -(1 - label_smoothing) * w_t * np.take_along_axis(logp, t, axis=1)[:, 0]
        if label_smoothing:
            smooth = -(logp * w.reshape(w_shape)).sum(axis=1) * valid
            losses = losses + label_smoothing / c * smooth
        ctx.shape, ctx.t, ctx.w, ctx.w_t, ctx.valid = logp.shape, t, w, w_t, valid
        ctx.w_shape, ctx.eps, ctx.reduction = w_shape, label_smoothing, reduction
        if reduction == "mean":
            ctx.total_weight = w_t.sum()
            with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: nan, as torch
                return np.asarray(losses.sum() / ctx.total_weight, dtype=logp.dtype)
        return _reduce(losses, reduction, logp.dtype)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        g = np.broadcast_to(dy / ctx.total_weight if ctx.reduction == "mean" else dy, ctx.w_t.shape)
        c = ctx.shape[1]
        dlogp = np.zeros(ctx.shape, dtype=dy.dtype)
        if ctx.eps:
            dlogp -= (ctx.eps / c) * ctx.w.reshape(ctx.w_shape) * (g * ctx.valid)[:, None]
        picked = np.take_along_axis(dlogp, ctx.t, axis=1)
        update = picked - ((1 - ctx.eps) * g * ctx.w_t)[:, None]
        np.put_along_axis(dlogp, ctx.t, update, axis=1)
        return dlogp


def _check_target(
    op: str, input: Tensor, target: Any, ignore_index: int
) -> tuple[np.ndarray, bool]:
    """Integer class labels of shape (N,) or (N, d1, ...) for input (N, C) or (N, C, d1, ...),
    and whether any of them is ignore_index."""
    target = np.asarray(target.data if isinstance(target, Tensor) else target)
    if input.ndim < 2:
        raise ValueError(
            f"{op} expects input of shape (N, C) or (N, C, d1, ...), got {input.shape}"
        )
    c = input.shape[1]
    if target.dtype.kind not in "iu":
        if target.dtype.kind == "f" and target.size and np.all(target == np.round(target)):
            raise TypeError(
                f"{op} expects integer class labels, got a float array: "
                "convert it with .astype(np.int64)"
            )
        raise TypeError(f"{op} expects integer class labels, got dtype {target.dtype}")
    expected = input.shape[:1] + input.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{op}: target has shape {target.shape}, expected {expected} "
            f"for input of shape {input.shape}"
        )
    ignored = False
    if target.size and (target.min() < 0 or target.max() >= c):
        bad = (target < 0) | (target >= c)
        ignored = bool(bad.any())  # the labels outside [0, c) may only be ignore_index
        bad &= target != ignore_index
        if bad.any():
            raise ValueError(
                f"{op}: label {target[bad][0]} is out of range for {c} classes [0, {c})"
            )
    elif 0 <= ignore_index < c:
        ignored = bool((target == ignore_index).any())
    return target.astype(np.int64, copy=False), ignored


def _class_weight(op: str, weight: Any, input: Tensor) -> np.ndarray | None:
    w = _as_array(weight)
    if w is not None and w.shape != (input.shape[1],):
        raise ValueError(
            f"{op}: weight has shape {w.shape}, expected ({input.shape[1]},), one per class"
        )
    return None if w is None else w.astype(input.dtype)


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits against integer class labels, as F.cross_entropy.

    input (N, C) or (N, C, d1, ...), target (N,) or (N, d1, ...); weight (C,) weighs the
    classes, labels equal to ignore_index count for nothing, and label_smoothing = eps mixes
    in the uniform distribution: (1 - eps) * nll + eps * mean over classes of -log p.
    Class-probability targets (a float target) are not supported.
    """
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    labels, ignored = _check_target("cross_entropy", input, target, ignore_index)
    default = weight is None and reduction == "mean" and label_smoothing == 0.0
    if default and input.ndim == 2 and not ignored:
        return CrossEntropy.apply(input, target=labels)  # the training loop's fused fast path
    return NegativeLogLikelihood.apply(
        log_softmax(input, dim=1),
        target=labels,
        weight=_class_weight("cross_entropy", weight, input),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C) or (N, C, d1, ...), as F.nll_loss."""
    _check_reduction("nll_loss", reduction)
    return NegativeLogLikelihood.apply(
        input,
        target=_check_target("nll_loss", input, target, ignore_index)[0],
        weight=_class_weight("nll_loss", weight, input),
        ignore_index=ignore_index,
        reduction=reduction,
    )


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------


class _Loss(Module):
    """A loss Module: its reduction, and its class weights as buffers (as torch keeps them)."""

    def __init__(self, reduction: str = "mean", **weights: Any) -> None:
        super().__init__()
        _check_reduction(type(self).__name__, reduction)
        self.reduction = reduction
        for name, value in weights.items():
            self.register_buffer(name, None if value is None else _as_array(value))

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return l1_loss(input, target, self.reduction)


class BCELoss(_Loss):
    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction, weight=weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction, weight=weight, pos_weight=pos_weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return binary_cross_entropy_with_logits(
            input, target, self.weight, self.reduction, self.pos_weight
        )


class NLLLoss(_Loss):
    def __init__(
        self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction, weight=weight)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(_Loss):
    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction, weight=weight)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return cross_entropy(
            input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing
        )
