"""Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from scratchnet.tensor import Tensor


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale all gradients together, in place, so that their joint norm is at most max_norm.

    The gradients are seen as one long vector g (parameters without a gradient are skipped):

        total_norm = (sum over all elements of |g| ** norm_type) ** (1 / norm_type)
                     (max |g| for norm_type = inf)
        clip_coef  = max_norm / (total_norm + 1e-6)
        g = g * min(clip_coef, 1)

    so the direction of the update is kept and only its length is capped. As in PyTorch, the
    norm is computed per parameter first and then as the norm of those norms, in the dtype of
    the gradients.

    Returns:
        total_norm, the norm before clipping, as a float (np.float64, so `.item()` works too).
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    norm_type = float(norm_type)
    max_norm = float(max_norm)
    if len(grads) == 0:
        return np.float64(0.0)

    norms = np.array([_vector_norm(g, norm_type) for g in grads])
    total_norm = _vector_norm(norms, norm_type)
    if error_if_nonfinite and not np.isfinite(total_norm):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )

    # np.minimum keeps a nan: a nan norm turns the gradients into nan, as in PyTorch.
    clip_coef = np.minimum(max_norm / (total_norm + 1e-6), 1.0)
    if clip_coef != 1.0:
        for grad in grads:
            grad *= clip_coef.astype(grad.dtype)
    return np.float64(total_norm)


def _vector_norm(x: np.ndarray, norm_type: float) -> np.generic:
    """The norm of all elements of x as one vector, as a scalar of x's dtype.

    Sums run in float64 and are rounded to x's dtype at the end, as PyTorch does on the CPU.
    """
    x = np.asarray(x)
    dtype = x.dtype.type
    x = np.abs(x.ravel().astype(np.float64))
    if x.size == 0:
        return dtype(0)
    if norm_type == math.inf:
        return dtype(x.max())
    if norm_type == -math.inf:
        return dtype(x.min())
    if norm_type == 0:
        return dtype(np.count_nonzero(x))
    if norm_type == 2:
        return dtype(np.sqrt(np.dot(x, x)))
    return dtype(np.sum(x**norm_type) ** (1.0 / norm_type))
