"""Run one computation in scratchnet and in PyTorch and measure how far apart they are.

The same inputs go through both, forward and then backward with the same random upstream
gradient dy (never ones, see tests/gradcheck.py); the output and the gradient of every input
are compared with `relative_error` = max|a - b| / max(|a|, |b|).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from scratchnet import Tensor, manual_seed
from scratchnet.mnist import models
from tests.gradcheck import relative_error

torch = pytest.importorskip("torch")

# float64 results agree to rounding; float32 sums of a few hundred terms differ by ~1e-6.
TOLERANCE = {"float64": 1e-10, "float32": 1e-5}
DTYPES = [np.float64, np.float32]


def dtype_name(dtype: Any) -> str:
    return np.dtype(dtype).name


def to_numpy(t: Any) -> np.ndarray:
    """A scratchnet Tensor, a torch tensor or an array, as an np.ndarray."""
    if isinstance(t, Tensor):
        return t.data
    if torch.is_tensor(t):
        return t.detach().cpu().numpy()
    return np.asarray(t)


def forward_backward(
    scratchnet_fn: Callable[..., Tensor],
    torch_fn: Callable[..., Any],
    arrays: Sequence[np.ndarray],
    seed: int = 0,
    torch_dtype: Any = None,
) -> dict[str, float]:
    """Relative errors of the output ("forward") and of each input's gradient ("grad0", ...).

    torch_dtype=np.float64 runs torch in float64 on the same (float32) inputs: the exact
    answer, for ill-conditioned cases where torch's own float32 rounding is the larger error.
    """
    ours = [Tensor(np.array(a), requires_grad=True) for a in arrays]
    theirs = [
        torch.tensor(np.array(a, dtype=torch_dtype or a.dtype), requires_grad=True) for a in arrays
    ]
    y_ours = scratchnet_fn(*ours)
    y_theirs = torch_fn(*theirs)
    errors = {"forward": relative_error(to_numpy(y_ours), to_numpy(y_theirs))}
    if torch_dtype is None:
        assert y_ours.dtype == to_numpy(y_theirs).dtype, "the output dtypes differ"

    dy = np.random.default_rng(seed).standard_normal(y_ours.shape).astype(y_ours.dtype)
    y_ours.backward(dy)
    y_theirs.backward(torch.from_numpy(dy.astype(torch_dtype or dy.dtype)))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.grad is not None, f"input {i} got no gradient in scratchnet"
        errors[f"grad{i}"] = relative_error(a.grad, to_numpy(b.grad))
    return errors


def check_close(table: Any, row: str, column: str, errors: dict[str, float], tol: float) -> None:
    """Record the largest error of `errors` and fail, naming each one, if any exceeds tol."""
    worst = max(errors.values())
    table.record(row, column, worst)
    bad = {k: f"{v:.2e}" for k, v in errors.items() if v > tol}
    assert not bad, f"{row} ({column}): relative errors above {tol:.0e}: {bad}"


def case_id(case: tuple) -> str:
    """The test id of a CASES row (op, variant, ...): "sum", "dim, keepdim" -> sum-dim,_keepdim."""
    op, variant = case[0], case[1]
    return f"{op}-{variant}".rstrip("-").replace(" ", "_")


def check_case(table: Any, case: tuple, dtype: Any, name: str) -> None:
    """Compare one CASES row (op, variant, ours, theirs, make) in dtype, within TOLERANCE.

    make(rng) builds the inputs; rng is seeded by the test id `name`, so every case has its
    own inputs and the same ones on every run.
    """
    op, _, ours, theirs, make = case
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    arrays = [a.astype(dtype) for a in make(rng)]
    errors = forward_backward(ours, theirs, arrays)
    column = dtype_name(dtype)
    check_close(table, op, column, errors, TOLERANCE[column])


def slug(text: str) -> str:
    """A test id from a description: "OneCycleLR (SGD momentum)" -> "OneCycleLR_SGD_momentum"."""
    return "_".join("".join(c if c.isalnum() else " " for c in text).split())


def random_state(name: str, seed: int = 0, **kwargs: Any) -> dict[str, np.ndarray]:
    """scratchnet's initial weights, with non-trivial biases, BN affine and running stats;
    kwargs are the model's constructor options (the CNN's pool_size)."""
    manual_seed(seed)
    state = models.build_model(name, **kwargs).state_dict()
    rng = np.random.default_rng(seed)
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(5, dtype=np.int64)
        elif key.endswith(("running_var", "weight")) and key.startswith("bn"):
            state[key] = rng.uniform(0.5, 2.0, value.shape).astype(value.dtype)
        elif key.endswith(("bias", "running_mean")):
            state[key] = (0.1 * rng.standard_normal(value.shape)).astype(value.dtype)
        elif key.startswith("fc"):
            state[key] = value * 10  # logits of order 1, so that the loss gradient is not flat
    return state
