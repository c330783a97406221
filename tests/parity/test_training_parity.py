"""Training parity: scratchnet and PyTorch, from the same initial weights and the same batches.

Each model trains for one epoch on 10,000 training images in batches of 100, that is 100 Adam
steps (lr 1e-3), dropout off, float32, both frameworks fed by scratchnet's DataLoader.

The linear model is a convex problem: the two runs stay within float32 rounding of each other.

The CNN is not, and its float32 runs drift apart. Its head starts at N(0, 0.01), so early on
the conv layers get gradients of 1e-8 .. 1e-6, the size of Adam's eps. Adam divides each
gradient element by its own running size, so float32 rounding in such elements (torch's
float32 batch-norm backward alone is ~7e-5 off the exact gradient, see test_models_parity.py)
turns into visible parameter differences, which training then amplifies. torch drifts as far
from itself. Measured once: six torch runs, from scratchnet's initial weights and from five
copies multiplied elementwise by (1 + 1e-7 * N(0, 1)), end this epoch with losses 1.2613 ..
1.2663 and test accuracies 50.86% .. 55.29% (standard deviation 1.7 points); scratchnet, from
the unperturbed weights, lands inside that spread (losses 2e-3 .. 4e-3 apart, accuracies 0.2
.. 1.5 points apart over successive versions of its kernels). So for the CNN the bounds on
weights and accuracy are loose, and the tight checks are the loss at every step and, in
float64, where rounding is 1e-16, the trajectories themselves
(test_float64_trajectories_stay_together).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

import reference  # noqa: E402
import scratchnet.nn.functional as F  # noqa: E402
from reference.convert import load_state_into  # noqa: E402
from reference.train import ScratchnetView  # noqa: E402
from scratchnet import Tensor, manual_seed, optim  # noqa: E402
from scratchnet.mnist import models  # noqa: E402
from scratchnet.mnist.data import DataLoader, normalize, train_val_split  # noqa: E402
from scratchnet.mnist.inference import logits as predict_logits  # noqa: E402

STEPS = 100
LR = 1e-3
NAMES = {"linear": "LinearClassifier", "cnn": "CNNClassifier"}


def relative_errors(ours: dict, theirs: dict, steps: int) -> dict[str, float]:
    """Per state_dict entry: max |a - b| / max |b| (num_batches_tracked compared exactly).

    A conv bias (followed by batch norm) has a gradient of exactly 0 in theory, so Adam walks
    it on rounding noise in both frameworks: its error is measured against the scale of its
    conv's weight. The BN running means follow those biases; they are reported apart."""
    errors = {}
    for key, value in ours.items():
        if key.endswith("num_batches_tracked"):
            assert int(value) == int(theirs[key]) == steps, key
            continue
        scale = np.abs(theirs[key]).max()
        if key.startswith("conv") and key.endswith("bias"):
            scale = np.abs(theirs[key.replace("bias", "weight")]).max()
        errors[key] = float(np.abs(value - theirs[key]).max() / scale)
    return errors


def torch_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def twins(name: str, dtype: type) -> tuple[Any, torch.nn.Module]:
    """scratchnet's freshly initialised model (seed 0) and its torch twin with its weights."""
    manual_seed(0)
    ours = models.build_model(name, dropout_rate=0.0)
    theirs = reference.build_model(name, dropout_rate=0.0)
    load_state_into(theirs, ours.state_dict(), "scratchnet's initial weights")
    if dtype == np.float64:
        ours.double()
        theirs.double()
    return ours, theirs


def subset_loader(mnist, batch_size: int) -> DataLoader:
    """The first 10,000 images of the training split, shuffled with seed 0."""
    train_idx, _ = train_val_split(len(mnist.train_images), 6000, seed=0)
    subset = train_idx[:10_000]
    return DataLoader(mnist.train_images[subset], mnist.train_labels[subset], batch_size, seed=0)


def train_all(models_: dict[str, Any], loader: DataLoader, steps: int, dtype: type) -> dict:
    """Adam steps on the same batches for each model ("ours", "torch", ...); their losses."""
    optimizers = {
        key: optim.Adam(list(m.parameters()), lr=LR)
        if key == "ours"
        else torch.optim.Adam(m.parameters(), lr=LR)
        for key, m in models_.items()
    }
    seconds = dict.fromkeys(models_, 0.0)
    losses: dict[str, list[float]] = {key: [] for key in models_}
    for step, (x, y) in enumerate(loader, 1):
        x = x.astype(dtype)
        for key, model in models_.items():
            start = time.perf_counter()
            if key == "ours":
                loss = F.cross_entropy(model(Tensor(x)), y)
            else:
                loss = TF.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
            optimizers[key].zero_grad()
            loss.backward()
            optimizers[key].step()
            seconds[key] += time.perf_counter() - start
            losses[key].append(loss.item())
        if step == steps:
            break
    return {"losses": {k: np.array(v) for k, v in losses.items()}, "seconds": seconds}


@pytest.fixture(scope="module", params=["linear", "cnn"])
def epoch(request, mnist) -> dict:
    """One epoch (100 steps) of scratchnet ("ours") and torch from the same weights."""
    name = request.param
    loader = subset_loader(mnist, batch_size=100)
    assert len(loader) == STEPS
    ours, theirs = twins(name, np.float32)
    runs = {"ours": ours, "torch": theirs}
    result = train_all(runs, loader, STEPS, np.float32)
    result.update(name=name, models=runs)
    return result


def zero_gradient(key: str) -> bool:
    """The conv biases (whose gradient is exactly 0) and the BN running means that follow them."""
    return (key.startswith("conv") and key.endswith("bias")) or key.endswith("running_mean")


def test_parameters_after_100_adam_steps(epoch, parity_errors):
    name, losses, runs = epoch["name"], epoch["losses"], epoch["models"]
    errors = relative_errors(runs["ours"].state_dict(), torch_state(runs["torch"]), STEPS)
    weights = {k: v for k, v in errors.items() if not zero_gradient(k)}
    walked = [v for k, v in errors.items() if zero_gradient(k)]
    gap = float((np.abs(losses["ours"] - losses["torch"]) / losses["torch"]).max())
    row = f"{NAMES[name]}, 100 Adam steps"
    parity_errors.record(f"{row}: weights, BN vars", "float32", max(weights.values()))
    if walked:
        parity_errors.record(f"{row}: conv biases, BN means", "float32", max(walked))
    parity_errors.record(f"{row}: loss at each step", "float32", gap)

    worst = max(weights, key=weights.get)
    seconds = epoch["seconds"]
    parity_errors.note(
        f"{NAMES[name]}, 100 Adam steps (float32): largest weight difference "
        f"{weights[worst]:.1e} ({worst}), last loss {losses['ours'][-1]:.5f} (scratchnet) / "
        f"{losses['torch'][-1]:.5f} (torch), {seconds['ours']:.1f} s / {seconds['torch']:.1f} s"
    )
    # Measured: linear 6e-7 and 3e-7; CNN 1.8e-1 (bn1.bias) and 2e-3 .. 4e-3 (see the docstring).
    weight_tol, loss_tol = {"linear": (1e-4, 1e-5), "cnn": (0.5, 1e-2)}[name]
    assert weights[worst] < weight_tol, f"{worst} differs by {weights[worst]:.2e}"
    assert gap < loss_tol, f"the losses differ by {gap:.2e} (relative) at some step"


def test_test_accuracy_after_one_epoch(epoch, mnist, parity_errors):
    """Linear: within 0.3 points. CNN: within 6 points, 3.5 standard deviations of torch's own
    accuracy when its initial weights move by one part in 1e7 (see the module docstring)."""
    x_test = normalize(mnist.test_images)
    y_test = mnist.test_labels
    ours = predict_logits(epoch["models"]["ours"], x_test).argmax(1)
    theirs = predict_logits(ScratchnetView(epoch["models"]["torch"]), x_test).argmax(1)
    accuracy = {"ours": 100 * (ours == y_test).mean(), "torch": 100 * (theirs == y_test).mean()}
    parity_errors.note(
        f"{NAMES[epoch['name']]}, 1 epoch on 10,000 images: test accuracy "
        f"{accuracy['ours']:.2f}% (scratchnet) / {accuracy['torch']:.2f}% (torch); the same "
        f"prediction for {100 * (ours == theirs).mean():.2f}% of the test images"
    )
    tolerance = {"linear": 0.3, "cnn": 6.0}[epoch["name"]]
    assert abs(accuracy["ours"] - accuracy["torch"]) < tolerance


def test_float64_trajectories_stay_together(mnist, parity_errors):
    """10 Adam steps of the CNN in float64 (batches of 16): the same training, to rounding."""
    ours, theirs = twins("cnn", np.float64)
    train_all({"ours": ours, "torch": theirs}, subset_loader(mnist, 16), 10, np.float64)
    errors = relative_errors(ours.state_dict(), torch_state(theirs), 10)
    worst = max(errors, key=errors.get)
    parity_errors.record("CNNClassifier, 10 Adam steps: all", "float64", errors[worst])
    assert errors[worst] < 1e-8, f"{worst} differs by {errors[worst]:.2e}"


# 625 training steps in each framework: 40-90 s on a quiet machine, 275 s beside a training
# run (load 4.7), the longest test of `make test`. The optimizer, the schedule and weight
# decay are each held to torch step by step in test_optim_parity.py; this is the long run.
@pytest.mark.slow
def test_cnn_recipe_epoch_accuracy_within_half_a_point(mnist, parity_errors):
    """The CNN, past its chaotic start: one epoch of the default recipe (AdamW, OneCycle with
    peak lr 0.006, weight decay 5e-4; dropout and augmentation off) on 20,000 images in batches
    of 32, from the same weights and batches. The two test accuracies differ by less than 0.5
    points.

    Measured once: torch against itself, from weights moved by one part in 1e7, spreads with a
    standard deviation of 0.15 points at this setting (94.2% .. 94.6% over four runs), so the
    bound is about three of torch's own standard deviations. scratchnet was 0.18 points away on
    one machine, and 0.39 (94.36% against 94.75%) on another on 2026-12-01, which failed the
    0.3-point bound this test used to have. Both runs are deterministic, so on one machine this
    test gives the same answer every time.
    """
    import reference.train as reference_train
    from scratchnet.mnist.training import RECIPES, TrainConfig, make_optimizer, make_scheduler

    values = dict(RECIPES["cnn"], epochs=1, batch_size=32, dropout=0.0, augment=False)
    cfg = TrainConfig(model="cnn", **values)
    train_idx, _ = train_val_split(len(mnist.train_images), 6000, seed=0)
    subset = train_idx[:20_000]
    loader = DataLoader(mnist.train_images[subset], mnist.train_labels[subset], 32, seed=0)
    ours, theirs = twins("cnn", np.float32)
    our_opt = make_optimizer(cfg, list(ours.parameters()))
    our_sched = make_scheduler(cfg, our_opt, len(loader))
    their_opt = make_optimizer(cfg, list(theirs.parameters()), reference_train.TORCH)
    their_sched = make_scheduler(cfg, their_opt, len(loader), reference_train.TORCH)
    ours.train()
    theirs.train()
    for x, y in loader:
        loss = F.cross_entropy(ours(Tensor(x)), y)
        our_opt.zero_grad()
        loss.backward()
        our_opt.step()
        our_sched.step()
        torch_loss = TF.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        their_opt.zero_grad()
        torch_loss.backward()
        their_opt.step()
        their_sched.step()

    x_test = normalize(mnist.test_images)
    y_test = mnist.test_labels
    our_pred = predict_logits(ours, x_test).argmax(1)
    their_pred = predict_logits(ScratchnetView(theirs), x_test).argmax(1)
    ours_acc = 100 * (our_pred == y_test).mean()
    torch_acc = 100 * (their_pred == y_test).mean()
    parity_errors.note(
        f"CNNClassifier, default recipe, 1 epoch on 20,000 images: test accuracy "
        f"{ours_acc:.2f}% (scratchnet) / {torch_acc:.2f}% (torch)"
    )
    assert abs(ours_acc - torch_acc) < 0.5
