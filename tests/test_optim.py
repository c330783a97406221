"""Tests of scratchnet.optim: update rules, schedulers, state_dict round trips and clipping.

Every optimizer is checked twice: against the update rule written out by hand in plain NumPy
(float64, so that only the formula can make a difference) and, when PyTorch is installed,
against torch.optim fed the same gradients, in float32 and float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratchnet.checkpoint import load_checkpoint, save_checkpoint
from scratchnet.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    OneCycleLR,
    Optimizer,
    StepLR,
    clip_grad_norm_,
    lr_scheduler,
)
from scratchnet.tensor import Tensor

SHAPES = [(3, 4), (5,), (2, 2)]
STEPS = 7


def make_params(dtype=np.float64, seed=0) -> list[Tensor]:
    """Parameters away from zero (|p| in [0.5, 1.5]), so relative comparisons are meaningful."""
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.5, 1.5, s) * rng.choice([-1, 1], s) for s in SHAPES]
    return [Tensor(a.astype(dtype), requires_grad=True) for a in arrays]


def make_grads(steps=STEPS, dtype=np.float64, seed=1) -> list[list[np.ndarray | None]]:
    """One gradient per parameter per step; the last parameter only has one on even steps."""
    rng = np.random.default_rng(seed)
    grads = []
    for t in range(steps):
        step_grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        if t % 2 == 1:
            step_grads[-1] = None
        grads.append(step_grads)
    return grads


def set_grads(params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.copy()


def run(optimizer, params, grads, scheduler=None) -> None:
    for step_grads in grads:
        set_grads(params, step_grads)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


# ---------------------------------------------------------------------------------------------
# Update rules against hand-written NumPy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "momentum, dampening, weight_decay, nesterov",
    [
        (0.0, 0.0, 0.0, False),
        (0.0, 0.0, 0.1, False),
        (0.9, 0.0, 0.0, False),
        (0.9, 0.3, 0.05, False),
        (0.9, 0.0, 0.05, True),
    ],
)
def test_sgd_matches_hand_formula(momentum, dampening, weight_decay, nesterov):
    lr = 0.1
    params = make_params()
    grads = make_grads()
    expected = [p.data.copy() for p in params]
    bufs: list[np.ndarray | None] = [None] * len(params)

    for step_grads in grads:
        for i, g in enumerate(step_grads):
            if g is None:
                continue
            d_p = g + weight_decay * expected[i]
            if momentum != 0:
                if bufs[i] is None:
                    bufs[i] = d_p.copy()
                else:
                    bufs[i] = momentum * bufs[i] + (1 - dampening) * d_p
                d_p = d_p + momentum * bufs[i] if nesterov else bufs[i]
            expected[i] = expected[i] - lr * d_p

    optimizer = SGD(params, lr, momentum, dampening, weight_decay, nesterov)
    run(optimizer, params, grads)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=1e-12, atol=1e-14)


def adam_by_hand(params, grads, lr, betas, eps, weight_decay, decoupled, amsgrad=False):
    """Textbook Adam / AdamW over float64 copies of params: returns the final values."""
    beta1, beta2 = betas
    p = [x.data.copy() for x in params]
    m = [np.zeros_like(x) for x in p]
    v = [np.zeros_like(x) for x in p]
    v_max = [np.zeros_like(x) for x in p]
    t = [0] * len(p)
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            if g is None:
                continue
            t[i] += 1
            if decoupled:
                p[i] = p[i] - lr * weight_decay * p[i]
            else:
                g = g + weight_decay * p[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            v_max[i] = np.maximum(v_max[i], v[i])
            m_hat = m[i] / (1 - beta1 ** t[i])
            v_hat = (v_max[i] if amsgrad else v[i]) / (1 - beta2 ** t[i])
            p[i] = p[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_hand_formula(weight_decay, amsgrad):
    params = make_params()
    grads = make_grads()
    kwargs = {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": weight_decay}
    expected = adam_by_hand(params, grads, **kwargs, decoupled=False, amsgrad=amsgrad)
    run(Adam(params, **kwargs, amsgrad=amsgrad), params, grads)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_matches_hand_formula(weight_decay):
    params = make_params()
    grads = make_grads()
    kwargs = {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": weight_decay}
    expected = adam_by_hand(params, grads, **kwargs, decoupled=True)
    run(AdamW(params, **kwargs), params, grads)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=1e-12, atol=1e-14)


def test_adam_and_adamw_weight_decay_differ():
    grads = make_grads()
    adam_params, adamw_params = make_params(), make_params()
    run(Adam(adam_params, lr=0.01, weight_decay=0.1), adam_params, grads)
    run(AdamW(adamw_params, lr=0.01, weight_decay=0.1), adamw_params, grads)
    assert not np.allclose(adam_params[0].data, adamw_params[0].data)


def test_adamw_default_weight_decay_and_first_step():
    (p,) = make_params()[:1]
    p0 = p.data.copy()
    optimizer = AdamW([p], lr=0.1)
    assert optimizer.param_groups[0]["weight_decay"] == 1e-2
    p.grad = np.full_like(p.data, 3.0)
    optimizer.step()
    # At t = 1: m_hat = g and v_hat = g*g, so the Adam part is lr * g / (|g| + eps).
    expected = p0 * (1 - 0.1 * 1e-2) - 0.1 * 3.0 / (3.0 + 1e-8)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12)


def test_parameters_without_grad_are_skipped_and_grad_is_untouched():
    params = make_params(np.float32)
    frozen = params[1].data.copy()
    optimizer = Adam(params, lr=0.1, weight_decay=0.5)
    grad = np.ones(SHAPES[0], dtype=np.float32)
    params[0].grad = grad
    optimizer.step()
    np.testing.assert_array_equal(params[1].data, frozen)
    assert params[1] not in optimizer.state or not optimizer.state[params[1]]
    np.testing.assert_array_equal(grad, 1.0)  # weight decay must not leak into p.grad
    assert params[0].data.dtype == np.float32
    assert optimizer.state[params[0]]["exp_avg"].dtype == np.float32


def test_update_is_in_place():
    params = make_params(np.float32)
    arrays = [p.data for p in params]
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    run(optimizer, params, make_grads(dtype=np.float32))
    assert all(p.data is a for p, a in zip(params, arrays))
    assert all(p.data.dtype == np.float32 for p in params)


def test_zero_grad():
    params = make_params()
    set_grads(params, make_grads()[0])
    optimizer = SGD(params, lr=0.1)
    optimizer.zero_grad(set_to_none=False)
    assert all(p.grad is None or not p.grad.any() for p in params)
    assert params[0].grad is not None
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


def test_param_groups_defaults_and_per_group_lr():
    a, b, _ = make_params()
    optimizer = SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.5]
    assert all(g["momentum"] == 0.9 for g in optimizer.param_groups)
    a0, b0 = a.data.copy(), b.data.copy()
    a.grad, b.grad = np.ones_like(a.data), np.ones_like(b.data)
    optimizer.step()
    np.testing.assert_allclose(a0 - a.data, 0.1)
    np.testing.assert_allclose(b0 - b.data, 0.5)


def test_named_parameters_keep_their_names():
    a, b, _ = make_params()
    optimizer = Adam([("layer.weight", a), ("layer.bias", b)])
    assert optimizer.param_groups[0]["param_names"] == ["layer.weight", "layer.bias"]
    assert optimizer.state_dict()["param_groups"][0]["param_names"] == [
        "layer.weight",
        "layer.bias",
    ]


def test_closure_returns_loss():
    params = make_params()
    optimizer = SGD(params, lr=0.1)
    assert optimizer.step(lambda: 3.5) == 3.5


def test_repr_lists_hyperparameters():
    text = repr(SGD(make_params(), lr=0.1, momentum=0.9))
    assert "Parameter Group 0" in text and "momentum: 0.9" in text


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda p: SGD(p, lr=-0.1), "learning rate"),
        (lambda p: Adam(p, lr=-1e-3), "learning rate"),
        (lambda p: AdamW(p, lr=float("nan")), "learning rate"),
        (lambda p: SGD(p, lr=0.1, momentum=-0.5), "momentum"),
        (lambda p: SGD(p, lr=0.1, weight_decay=-1.0), "weight_decay"),
        (lambda p: SGD(p, lr=0.1, nesterov=True), "Nesterov"),
        (lambda p: SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
        (lambda p: Adam(p, betas=(1.0, 0.999)), "beta parameter at index 0"),
        (lambda p: Adam(p, betas=(0.9, -0.1)), "beta parameter at index 1"),
        (lambda p: Adam(p, betas=(0.9,)), "betas"),
        (lambda p: Adam(p, eps=-1e-8), "epsilon"),
        (lambda p: AdamW(p, weight_decay=-0.1), "weight_decay"),
        (lambda p: SGD([{"params": p[:1]}, {"params": p[1:], "lr": -1.0}], lr=0.1), "rate"),
        (lambda p: Adam([{"params": p, "betas": (0.9, 2.0)}]), "beta parameter at index 1"),
        (lambda p: SGD([], lr=0.1), "empty parameter list"),
        (lambda p: SGD(iter([]), lr=0.1), "empty parameter list"),
        (lambda p: SGD([p[0], p[0]], lr=0.1), "twice"),
        (lambda p: SGD([{"params": p[:2]}, {"params": p[1:]}], lr=0.1), "more than one"),
    ],
)
def test_invalid_arguments_raise_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build(make_params())


def test_invalid_parameter_types_raise_type_error():
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(make_params()[0], lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="set"):
        SGD(set(make_params()), lr=0.1)


def test_gradient_of_the_wrong_shape_raises():
    params = make_params()
    optimizer = SGD(params, lr=0.1)
    params[0].grad = np.ones(7)
    with pytest.raises(ValueError, match="shape"):
        optimizer.step()


# ---------------------------------------------------------------------------------------------
# Schedulers against hand-computed values
# ---------------------------------------------------------------------------------------------


def lr_sequence(scheduler, steps):
    """The lr of group 0 at epochs 0, 1, ..., steps (construction sets epoch 0)."""
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return np.array(lrs)


def test_steplr_sequence_and_initial_lr():
    optimizer = SGD(make_params(), lr=0.5)
    scheduler = StepLR(optimizer, step_size=3, gamma=0.5)
    assert optimizer.param_groups[0]["initial_lr"] == 0.5
    assert scheduler.base_lrs == [0.5]
    epochs = np.arange(11)
    np.testing.assert_allclose(lr_sequence(scheduler, 10), 0.5 * 0.5 ** (epochs // 3), rtol=1e-14)
    assert optimizer.param_groups[0]["lr"] == scheduler.get_last_lr()[0]


def test_cosine_annealing_sequence_follows_closed_form():
    base_lr, eta_min, T_max = 0.1, 0.001, 10
    scheduler = CosineAnnealingLR(SGD(make_params(), lr=base_lr), T_max=T_max, eta_min=eta_min)
    epochs = np.arange(2 * T_max + 6)  # past T_max the cosine climbs back up
    expected = eta_min + (base_lr - eta_min) * (1 + np.cos(np.pi * epochs / T_max)) / 2
    np.testing.assert_allclose(lr_sequence(scheduler, len(epochs) - 1), expected, rtol=1e-12)


def one_cycle_by_hand(total, max_lr, pct, div, final_div, strategy, three_phase, base_m, max_m):
    """(lr, momentum) at steps 0 .. total - 1, from the phase table of the 1cycle policy."""
    initial = max_lr / div
    low = initial / final_div
    a = pct * total - 1
    if three_phase:
        phases = [
            (a, initial, max_lr, max_m, base_m),
            (2 * pct * total - 2, max_lr, initial, base_m, max_m),
            (total - 1, initial, low, max_m, max_m),
        ]
    else:
        phases = [(a, initial, max_lr, max_m, base_m), (total - 1, max_lr, low, base_m, max_m)]

    def anneal(start, end, frac):
        if strategy == "cos":
            return end + (start - end) / 2 * (1 + math.cos(math.pi * frac))
        return start + (end - start) * frac

    lrs, moms = [], []
    for t in range(total):
        start_step = 0.0
        for end_step, lr0, lr1, m0, m1 in phases:
            if t <= end_step or end_step == phases[-1][0]:
                frac = (t - start_step) / (end_step - start_step)
                lrs.append(anneal(lr0, lr1, frac))
                moms.append(anneal(m0, m1, frac))
                break
            start_step = end_step
    return np.array(lrs), np.array(moms)


@pytest.mark.parametrize("optimizer_cls", [SGD, Adam])
@pytest.mark.parametrize(
    "strategy, three_phase", [("cos", False), ("linear", False), ("cos", True)]
)
def test_one_cycle_lr_and_momentum(optimizer_cls, strategy, three_phase):
    total = 20
    optimizer = optimizer_cls(make_params(), lr=0.123)
    scheduler = OneCycleLR(
        optimizer,
        max_lr=0.1,
        epochs=4,
        steps_per_epoch=5,
        pct_start=0.25,
        anneal_strategy=strategy,
        three_phase=three_phase,
    )
    expected_lr, expected_m = one_cycle_by_hand(
        total, 0.1, 0.25, 25.0, 1e4, strategy, three_phase, 0.85, 0.95
    )
    lrs, moms = [], []
    for t in range(total):
        group = optimizer.param_groups[0]
        lrs.append(scheduler.get_last_lr()[0])
        moms.append(group["betas"][0] if optimizer_cls is Adam else group["momentum"])
        if optimizer_cls is Adam:
            assert group["betas"][1] == 0.999
        if t < total - 1:
            scheduler.step()
    np.testing.assert_allclose(lrs, expected_lr, rtol=1e-12)
    np.testing.assert_allclose(moms, expected_m, rtol=1e-12)
    assert lrs[0] == pytest.approx(0.1 / 25) and min(lrs) == pytest.approx(0.1 / 25 / 1e4)
    assert optimizer.param_groups[0]["initial_lr"] == 0.1 / 25


def test_one_cycle_errors():
    optimizer = SGD(make_params(), lr=0.1)
    with pytest.raises(ValueError, match="total_steps"):
        OneCycleLR(optimizer, max_lr=0.1)
    with pytest.raises(ValueError, match="pct_start"):
        OneCycleLR(optimizer, max_lr=0.1, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy"):
        OneCycleLR(optimizer, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="same length"):
        OneCycleLR(optimizer, max_lr=[0.1, 0.2], total_steps=10)
    scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        scheduler.step()


def test_scheduler_errors():
    with pytest.raises(TypeError, match="not an Optimizer"):
        StepLR(object(), step_size=2)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(SGD(make_params(), lr=0.1), step_size=2, last_epoch=3)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(SGD(make_params(), lr=0.1), step_size=0)


def test_lr_scheduler_module_exports():
    assert lr_scheduler.StepLR is StepLR
    assert issubclass(lr_scheduler.OneCycleLR, lr_scheduler.LRScheduler)


# ---------------------------------------------------------------------------------------------
# state_dict: 5 steps + save + load into fresh objects + 5 steps == 10 steps
# ---------------------------------------------------------------------------------------------


def quadratic_grads(params, t):
    """Gradients that depend on the parameters, so a wrong restored state changes the path."""
    grads = []
    for i, p in enumerate(params):
        g = 0.3 * p.data + np.sin(np.arange(p.data.size) + t + i).reshape(p.data.shape)
        grads.append(None if (i == 2 and t % 3 == 1) else g.astype(p.data.dtype))
    return grads


OPTIMIZERS = [
    (SGD, {"lr": 0.05}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (Adam, {"lr": 0.01, "weight_decay": 0.1}),
    (Adam, {"lr": 0.01, "amsgrad": True}),
    (AdamW, {"lr": 0.01, "betas": (0.8, 0.9)}),
]

SCHEDULERS = [
    None,
    (StepLR, {"step_size": 3, "gamma": 0.5}),
    (CosineAnnealingLR, {"T_max": 4, "eta_min": 1e-3}),
    (OneCycleLR, {"max_lr": 0.05, "total_steps": 10}),
    (OneCycleLR, {"max_lr": 0.05, "total_steps": 10, "three_phase": True}),
]


def build(optimizer_spec, scheduler_spec, dtype):
    params = make_params(dtype)
    cls, kwargs = optimizer_spec
    optimizer = cls([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], **kwargs)
    scheduler = None
    if scheduler_spec is not None:
        scheduler_cls, scheduler_kwargs = scheduler_spec
        scheduler = scheduler_cls(optimizer, **scheduler_kwargs)
    return params, optimizer, scheduler


def train(params, optimizer, scheduler, steps, start=0):
    for t in range(start, start + steps):
        set_grads(params, quadratic_grads(params, t))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def save_and_load_through_files(tmp_path, optimizer_state, scheduler_state):
    """What a training run's checkpoint does: scratchnet.checkpoint's file, and back."""
    path = tmp_path / "run.npz"
    save_checkpoint(path, {"weight": np.zeros(1)}, {"scheduler": scheduler_state}, optimizer_state)
    _, metadata, optimizer_state = load_checkpoint(path)
    return optimizer_state, metadata["scheduler"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scheduler_spec", SCHEDULERS, ids=lambda s: s and s[0].__name__)
@pytest.mark.parametrize("optimizer_spec", OPTIMIZERS, ids=lambda s: f"{s[0].__name__}{s[1]}")
def test_state_dict_round_trip_resumes_exactly(optimizer_spec, scheduler_spec, dtype, tmp_path):
    params, optimizer, scheduler = build(optimizer_spec, scheduler_spec, dtype)
    train(params, optimizer, scheduler, 10)

    params_a, optimizer_a, scheduler_a = build(optimizer_spec, scheduler_spec, dtype)
    train(params_a, optimizer_a, scheduler_a, 5)
    saved_params = [p.data.copy() for p in params_a]
    optimizer_state = optimizer_a.state_dict()
    scheduler_state = scheduler_a.state_dict() if scheduler_a is not None else None
    train(params_a, optimizer_a, scheduler_a, 2, start=5)  # the saved dict must not change
    optimizer_state, scheduler_state = save_and_load_through_files(
        tmp_path, optimizer_state, scheduler_state
    )

    params_b, optimizer_b, scheduler_b = build(optimizer_spec, scheduler_spec, dtype)
    for p, saved in zip(params_b, saved_params):
        p.data[...] = saved
    optimizer_b.load_state_dict(optimizer_state)
    if scheduler_b is not None:
        scheduler_b.load_state_dict(scheduler_state)
    train(params_b, optimizer_b, scheduler_b, 5, start=5)

    for p, p_b in zip(params, params_b):
        np.testing.assert_array_equal(p.data, p_b.data)
        assert p_b.data.dtype == dtype
    assert optimizer_b.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert optimizer_b.param_groups[1]["lr"] == optimizer.param_groups[1]["lr"]
    if scheduler is not None:
        assert scheduler_b.get_last_lr() == scheduler.get_last_lr()
        assert scheduler_b.last_epoch == scheduler.last_epoch == 10


def test_state_dict_layout_matches_torch():
    params = make_params()
    optimizer = Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.1}])
    set_grads(params, [np.ones(s) for s in SHAPES[:2]] + [None])
    optimizer.step()
    state = optimizer.state_dict()
    assert set(state) == {"state", "param_groups"}
    assert sorted(state["state"]) == [0, 1]  # parameter 2 had no gradient: no state
    assert set(state["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert state["state"][0]["step"] == 1
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2]]
    assert state["param_groups"][1]["lr"] == 0.1
    assert state["param_groups"][0]["betas"] == (0.9, 0.999)


def test_load_state_dict_rejects_mismatches():
    params = make_params()
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    set_grads(params, make_grads()[0])
    optimizer.step()
    state = optimizer.state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="parameters"):
        SGD(params[:2], lr=0.1).load_state_dict(state)
    shuffled = [params[1], params[0], params[2]]
    with pytest.raises(ValueError, match="shape"):
        SGD(shuffled, lr=0.1).load_state_dict(state)


# ---------------------------------------------------------------------------------------------
# clip_grad_norm_
# ---------------------------------------------------------------------------------------------


def test_clip_grad_norm_scales_when_above_max_norm():
    params = make_params()
    grads = make_grads()[1]  # the last parameter has no gradient: skipped
    set_grads(params, grads)
    present = [g for g in grads if g is not None]
    expected = math.sqrt(sum(float((g * g).sum()) for g in present))

    total = clip_grad_norm_(params, max_norm=1.0)
    assert total == pytest.approx(expected, rel=1e-12)
    assert isinstance(total, float)
    for p, g in zip(params, present):
        np.testing.assert_allclose(p.grad, g * 1.0 / (expected + 1e-6), rtol=1e-12)
    clipped = math.sqrt(sum(float((p.grad**2).sum()) for p in params if p.grad is not None))
    assert clipped == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients_alone():
    params = make_params()
    grads = make_grads()[0]
    set_grads(params, grads)
    total = clip_grad_norm_(params, max_norm=1e6)
    assert total > 1.0
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("norm_type", [1.0, 3.0, math.inf])
def test_clip_grad_norm_other_norms(norm_type):
    params = make_params()
    grads = make_grads()[0]
    set_grads(params, grads)
    flat = np.concatenate([g.ravel() for g in grads])
    expected = np.abs(flat).max() if norm_type == math.inf else np.linalg.norm(flat, norm_type)
    total = clip_grad_norm_(params, max_norm=0.5, norm_type=norm_type)
    assert total == pytest.approx(expected, rel=1e-12)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * 0.5 / (expected + 1e-6), rtol=1e-12)


def test_clip_grad_norm_single_tensor_no_grads_and_nonfinite():
    (p,) = make_params()[:1]
    assert clip_grad_norm_(p, 1.0) == 0.0
    p.grad = np.full(p.data.shape, 3.0)
    assert clip_grad_norm_(p, 1.0) == pytest.approx(3.0 * math.sqrt(p.data.size))
    p.grad[0, 0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite=True)


# ---------------------------------------------------------------------------------------------
# Parity with PyTorch (skipped when torch is not installed)
# ---------------------------------------------------------------------------------------------

# Relative to each array's largest entry: on the CPU PyTorch computes `a + alpha * b` and its
# lerp with a fused multiply-add, which rounds once where NumPy rounds twice. The results then
# differ in the last bit, and an entry that has shrunk towards 0 carries the absolute error of
# its larger past, so a purely element-wise relative tolerance would be meaningless there.
TOLERANCE = {np.float32: 1e-6, np.float64: 1e-12}


def assert_close(actual, desired, dtype):
    rtol = TOLERANCE[dtype]
    scale = np.abs(desired).max(initial=0.0)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


def torch_twin(params):
    torch = pytest.importorskip("torch")
    return [torch.tensor(p.data.copy(), requires_grad=True) for p in params]


def torch_optimizer_class(cls):
    torch = pytest.importorskip("torch")
    return {SGD: torch.optim.SGD, Adam: torch.optim.Adam, AdamW: torch.optim.AdamW}[cls]


def torch_scheduler_class(cls):
    torch = pytest.importorskip("torch")
    schedulers = torch.optim.lr_scheduler
    return {
        StepLR: schedulers.StepLR,
        CosineAnnealingLR: schedulers.CosineAnnealingLR,
        OneCycleLR: schedulers.OneCycleLR,
    }[cls]


def set_torch_grads(torch_params, grads):
    torch = pytest.importorskip("torch")
    for p, g in zip(torch_params, grads):
        p.grad = None if g is None else torch.from_numpy(g.copy())


def assert_same_params(params, torch_params, dtype):
    for p, tp in zip(params, torch_params):
        assert p.data.dtype == dtype
        assert_close(p.data, tp.detach().numpy(), dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "optimizer_spec",
    [
        *OPTIMIZERS,
        (SGD, {"lr": 0.1, "momentum": 0.5, "dampening": 0.5}),
        (Adam, {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.2}),
        (AdamW, {"lr": 0.02, "weight_decay": 0.3, "amsgrad": True}),
    ],
    ids=lambda s: f"{s[0].__name__}{s[1]}",
)
def test_optimizers_match_torch(optimizer_spec, dtype):
    cls, kwargs = optimizer_spec
    params = make_params(dtype)
    torch_params = torch_twin(params)
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.03}]
    torch_groups = [{"params": torch_params[:2]}, {"params": torch_params[2:], "lr": 0.03}]
    optimizer = cls(groups, **kwargs)
    torch_optimizer = torch_optimizer_class(cls)(torch_groups, **kwargs)

    for step_grads in make_grads(steps=10, dtype=dtype):
        set_grads(params, step_grads)
        set_torch_grads(torch_params, step_grads)
        optimizer.step()
        torch_optimizer.step()
        assert_same_params(params, torch_params, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "scheduler_spec",
    [
        *SCHEDULERS[1:],
        (OneCycleLR, {"max_lr": [0.05, 0.2], "epochs": 2, "steps_per_epoch": 6}),
        (OneCycleLR, {"max_lr": 0.05, "total_steps": 12, "anneal_strategy": "linear"}),
        (OneCycleLR, {"max_lr": 0.05, "total_steps": 12, "pct_start": 0.5, "div_factor": 5.0}),
        (OneCycleLR, {"max_lr": 0.05, "total_steps": 12, "cycle_momentum": False}),
    ],
    ids=lambda s: f"{s[0].__name__}{s[1]}",
)
@pytest.mark.parametrize("optimizer_spec", OPTIMIZERS[1:], ids=lambda s: s[0].__name__)
def test_schedulers_match_torch(optimizer_spec, scheduler_spec, dtype):
    cls, kwargs = optimizer_spec
    scheduler_cls, scheduler_kwargs = scheduler_spec
    params = make_params(dtype)
    torch_params = torch_twin(params)
    optimizer = cls([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], **kwargs)
    torch_optimizer = torch_optimizer_class(cls)(
        [{"params": torch_params[:2]}, {"params": torch_params[2:], "lr": 0.02}], **kwargs
    )
    scheduler = scheduler_cls(optimizer, **scheduler_kwargs)
    torch_scheduler = torch_scheduler_class(scheduler_cls)(torch_optimizer, **scheduler_kwargs)

    for step_grads in make_grads(steps=10, dtype=dtype):  # OneCycleLR allows total_steps
        assert scheduler.get_last_lr() == torch_scheduler.get_last_lr()
        for group, torch_group in zip(optimizer.param_groups, torch_optimizer.param_groups):
            for key in ("lr", "initial_lr", "momentum", "betas", "max_lr", "min_lr"):
                if key in torch_group:
                    assert group[key] == torch_group[key], key
        set_grads(params, step_grads)
        set_torch_grads(torch_params, step_grads)
        optimizer.step()
        torch_optimizer.step()
        scheduler.step()
        torch_scheduler.step()
        assert_same_params(params, torch_params, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    torch = pytest.importorskip("torch")
    params = make_params(dtype)
    torch_params = torch_twin(params)
    grads = make_grads(dtype=dtype)[1]
    set_grads(params, grads)
    set_torch_grads(torch_params, grads)

    total = clip_grad_norm_(params, max_norm, norm_type)
    torch_total = torch.nn.utils.clip_grad_norm_(torch_params, max_norm, norm_type)
    assert total == pytest.approx(torch_total.item(), rel=TOLERANCE[dtype])
    for p, tp in zip(params, torch_params):
        if tp.grad is None:
            assert p.grad is None
        else:
            assert_close(p.grad, tp.grad.numpy(), dtype)


def test_optimizer_base_class_needs_update():
    class Broken(Optimizer):
        pass

    params = make_params()
    optimizer = Broken(params, {"lr": 0.1})
    set_grads(params, make_grads()[0])
    with pytest.raises(NotImplementedError):
        optimizer.step()
