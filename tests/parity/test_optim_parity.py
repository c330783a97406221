"""Optimizers and learning-rate schedulers against torch.optim: the parameters after N steps.

Both frameworks start from the same parameters and receive the same gradients at every step,
so any difference comes from the update rules (or the learning rates and momenta that the
schedulers write into the param groups, which are compared too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scratchnet import optim  # noqa: E402
from scratchnet.nn import Parameter  # noqa: E402
from tests.gradcheck import relative_error  # noqa: E402
from tests.parity.compare import DTYPES, TOLERANCE, dtype_name, slug  # noqa: E402

SHAPES = [(4, 3), (3,), (2, 2, 3)]

# (name, class in both scratchnet.optim and torch.optim, keyword arguments)
OPTIMIZERS: list[tuple[str, str, dict[str, Any]]] = [
    ("SGD", "SGD", {"lr": 0.1}),
    ("SGD momentum", "SGD", {"lr": 0.1, "momentum": 0.9}),
    (
        "SGD momentum, dampening, weight decay",
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05},
    ),
    ("SGD nesterov", "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (
        "SGD nesterov, weight decay",
        "SGD",
        {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
    ),
    ("Adam", "Adam", {"lr": 0.01}),
    ("Adam weight decay (L2)", "Adam", {"lr": 0.01, "weight_decay": 0.1}),
    (
        "Adam betas, eps, amsgrad",
        "Adam",
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True},
    ),
    ("AdamW", "AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("AdamW defaults", "AdamW", {}),
]

# (name, optimizer name in OPTIMIZERS, class in both scratchnet.optim and
# torch.optim.lr_scheduler, keyword arguments, steps)
SCHEDULERS: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("StepLR", "SGD momentum", "StepLR", {"step_size": 3, "gamma": 0.5}, 10),
    # 13 steps: past T_max, where the cosine climbs back up.
    ("CosineAnnealingLR", "Adam", "CosineAnnealingLR", {"T_max": 5}, 13),
    (
        "CosineAnnealingLR eta_min",
        "SGD nesterov",
        "CosineAnnealingLR",
        {"T_max": 4, "eta_min": 0.01},
        10,
    ),
    (
        "OneCycleLR (SGD momentum cycling)",
        "SGD momentum",
        "OneCycleLR",
        {"max_lr": 0.2, "total_steps": 20},
        20,
    ),
    (
        "OneCycleLR (AdamW beta1 cycling)",
        "AdamW",
        "OneCycleLR",
        {"max_lr": 0.01, "epochs": 3, "steps_per_epoch": 6},
        18,
    ),
    (
        "OneCycleLR three-phase, linear",
        "Adam",
        "OneCycleLR",
        {"max_lr": 0.05, "total_steps": 15, "three_phase": True, "anneal_strategy": "linear"},
        15,
    ),
]


def _optimizers(cls: str, kwargs: dict[str, Any]) -> tuple[Callable, Callable]:
    """(scratchnet, torch) constructors of optimizer `cls`, each called with a parameter list."""
    return (
        lambda params: getattr(optim, cls)(params, **kwargs),
        lambda params: getattr(torch.optim, cls)(params, **kwargs),
    )


def _schedulers(cls: str, kwargs: dict[str, Any]) -> tuple[Callable, Callable]:
    """(scratchnet, torch) constructors of scheduler `cls`, each called with an optimizer."""
    return (
        lambda opt: getattr(optim, cls)(opt, **kwargs),
        lambda opt: getattr(torch.optim.lr_scheduler, cls)(opt, **kwargs),
    )


def _group_values(group: dict[str, Any]) -> list[float]:
    """The values a scheduler writes: lr, and the momentum or beta1 it cycles."""
    values = [group["lr"]]
    if "betas" in group:
        values.append(group["betas"][0])
    if "momentum" in group:
        values.append(group["momentum"])
    return values


def run_both(
    make_ours: Callable,
    make_theirs: Callable,
    dtype: Any,
    steps: int,
    schedulers: tuple[Callable, Callable] | None = None,
) -> tuple[float, float]:
    """(largest relative error of the parameters, largest error of lr/momentum) over steps."""
    rng = np.random.default_rng(len(SHAPES) + steps)
    start = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    ours = [Parameter(a.copy()) for a in start]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in start]
    opt_ours, opt_theirs = make_ours(ours), make_theirs(theirs)
    sched_ours = sched_theirs = None
    if schedulers is not None:
        sched_ours, sched_theirs = schedulers[0](opt_ours), schedulers[1](opt_theirs)

    param_error = hyper_error = 0.0
    for _ in range(steps):
        for p, q in zip(ours, theirs):
            grad = rng.standard_normal(p.shape).astype(dtype)
            p.grad = grad.copy()
            q.grad = torch.from_numpy(grad.copy())
        opt_ours.step()
        opt_theirs.step()
        if sched_ours is not None:
            sched_ours.step()
            sched_theirs.step()
        for p, q in zip(ours, theirs):
            assert p.data.dtype == dtype
            param_error = max(param_error, relative_error(p.data, q.detach().numpy()))
        ours_values = _group_values(opt_ours.param_groups[0])
        theirs_values = _group_values(opt_theirs.param_groups[0])
        hyper_error = max(
            hyper_error, relative_error(np.array(ours_values), np.array(theirs_values))
        )
    return param_error, hyper_error


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", OPTIMIZERS, ids=lambda case: slug(case[0]))
def test_optimizer_matches_torch(case, dtype, parity_errors):
    name, cls, kwargs = case
    error, _ = run_both(*_optimizers(cls, kwargs), dtype, steps=12)
    parity_errors.record(f"optim {name}", dtype_name(dtype), error)
    tol = TOLERANCE[dtype_name(dtype)]
    assert error <= tol, f"{name}: parameters differ by {error:.2e} after 12 steps"


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", SCHEDULERS, ids=lambda case: slug(case[0]))
def test_scheduler_matches_torch(case, dtype, parity_errors):
    name, optimizer_name, cls, kwargs, steps = case
    _, optimizer_cls, optimizer_kwargs = next(o for o in OPTIMIZERS if o[0] == optimizer_name)
    error, hyper_error = run_both(
        *_optimizers(optimizer_cls, optimizer_kwargs),
        dtype,
        steps,
        schedulers=_schedulers(cls, kwargs),
    )
    parity_errors.record(f"sched {name}", dtype_name(dtype), error)
    parity_errors.record(f"sched {name}", "lr/momentum", hyper_error)
    assert hyper_error <= 1e-12, f"{name}: lr or momentum differs by {hyper_error:.2e}"
    tol = TOLERANCE[dtype_name(dtype)]
    assert error <= tol, f"{name}: parameters differ by {error:.2e} after {steps} steps"
