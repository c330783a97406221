"""Cross-entropy: log-softmax and negative log-likelihood in one operation."""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.nn.module import Module
from scratchnet.tensor import Context, Function, Tensor


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


def _check_target(logits: Tensor, target: Any) -> np.ndarray:
    target = np.asarray(target.data if isinstance(target, Tensor) else target)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (N, C), got {logits.shape}")
    n, c = logits.shape
    if target.dtype.kind not in "iu":
        if target.dtype.kind == "f" and target.size and np.all(target == np.round(target)):
            raise TypeError(
                "cross_entropy expects integer class labels, got a float array: "
                "convert it with .astype(np.int64)"
            )
        raise TypeError(f"cross_entropy expects integer class labels, got dtype {target.dtype}")
    if target.shape != (n,):
        raise ValueError(
            f"cross_entropy: target has shape {target.shape}, expected ({n},) "
            f"for logits of shape {logits.shape}"
        )
    if target.size and (target.min() < 0 or target.max() >= c):
        bad = target[(target < 0) | (target >= c)][0]
        raise ValueError(f"cross_entropy: label {bad} is out of range for {c} classes [0, {c})")
    return target.astype(np.int64, copy=False)


def cross_entropy(logits: Tensor, target: Any) -> Tensor:
    """Mean cross-entropy of logits (N, C) against integer labels (N,), as F.cross_entropy."""
    return CrossEntropy.apply(logits, target=_check_target(logits, target))


def nll_loss(logp: Tensor, target: Any) -> Tensor:
    """Mean negative log-likelihood of log-probabilities (N, C)."""
    target = _check_target(logp, target)
    n = logp.shape[0]
    return -(logp[np.arange(n), target].mean())


class CrossEntropyLoss(Module):
    def forward(self, logits: Tensor, target: Any) -> Tensor:
        return cross_entropy(logits, target)
