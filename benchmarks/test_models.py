"""Whole models: the training step, batch inference and single-image latency, vs torch.

The models are scratchnet.mnist.models and their torch twins in reference/models.py, with the same
weights (copied by state_dict key). A training step is forward, cross-entropy, zero_grad,
backward and an Adam step, in training mode (dropout and batch statistics on). Inference runs
in eval mode under no_grad.

FLOPs, counted analytically (2 per multiply-add; the elementwise layers are left out, they
add well under 1%):
    CNN forward   per image: conv1 0.45 M + conv2 7.23 M + conv3 7.23 M + fc 0.02 M = 14.9 M
    CNN training  per image: forward + 2 x forward for dx and dweight, less conv1's dx
                             (its input is the image)                             = 44.3 M
    linear forward per image 2 * 784 * 10 = 15.7 k; training 3x that, less dx     = 31.4 k
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import scratchnet
from benchmarks.conftest import run_benchmark
from benchmarks.test_layers import conv_flops
from reference import models as reference
from reference.convert import state_dict_to_torch
from scratchnet import optim
from scratchnet.mnist.models import CNNClassifier, LinearClassifier
from scratchnet.nn.functional import cross_entropy
from scratchnet.tensor import Tensor, no_grad

CNN_FORWARD_FLOPS = (
    conv_flops(1, 1, 32, 28, 28)
    + conv_flops(1, 32, 64, 14, 14)
    + conv_flops(1, 64, 128, 7, 7)
    + 2 * (128 * 64 + 64 * 10)
)
CNN_STEP_FLOPS = 3 * CNN_FORWARD_FLOPS - conv_flops(1, 1, 32, 28, 28)
LINEAR_FORWARD_FLOPS = 2 * 784 * 10
LINEAR_STEP_FLOPS = 2 * LINEAR_FORWARD_FLOPS  # forward + dweight (no dx: the input is data)

MODELS = {
    "cnn": (CNNClassifier, reference.CNNClassifier, CNN_FORWARD_FLOPS, CNN_STEP_FLOPS),
    "linear": (
        LinearClassifier,
        reference.LinearClassifier,
        LINEAR_FORWARD_FLOPS,
        LINEAR_STEP_FLOPS,
    ),
}


def _pair(name: str) -> tuple[Any, Any]:
    scratchnet.manual_seed(0)
    ours_cls, theirs_cls = MODELS[name][:2]
    ours = ours_cls()
    theirs = theirs_cls()
    theirs.load_state_dict(state_dict_to_torch(ours.state_dict()))
    return ours, theirs


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("batch", [64, 128])
@pytest.mark.parametrize("model_name", ["cnn", "linear"])
def test_train_step(benchmark: Any, framework: str, model_name: str, batch: int) -> None:
    benchmark.group = f"train step {model_name} batch {batch}"
    x, target = _images(batch)
    ours, theirs = _pair(model_name)
    if framework == "scratchnet":
        ours.train()
        opt = optim.Adam(list(ours.parameters()), lr=1e-3)

        def step() -> Any:
            loss = cross_entropy(ours(Tensor(x)), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

        params = [p.data for p in ours.parameters()]
    else:
        theirs.train()
        topt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
        xt, tt = torch.from_numpy(x), torch.from_numpy(target)

        def step() -> Any:
            loss = torch.nn.functional.cross_entropy(theirs(xt), tt)
            topt.zero_grad()
            loss.backward()
            topt.step()
            return loss.item()

        params = [p.detach().numpy() for p in theirs.parameters()]

    before = [p.copy() for p in params]
    # Three untimed steps: torch builds its oneDNN primitives and both allocators warm up.
    flops = batch * MODELS[model_name][3]
    loss = run_benchmark(
        benchmark, step, framework=framework, flops=flops, rounds=25, warmup_rounds=3
    )
    benchmark.extra_info["images"] = batch
    assert np.isfinite(loss) and 0 < loss < 10
    assert all(not np.array_equal(a, b) for a, b in zip(before, params)), "no parameter moved"


def _predictor(framework: str, ours: Any, theirs: Any) -> Any:
    ours.eval()
    theirs.eval()
    if framework == "scratchnet":

        def predict(x: np.ndarray) -> np.ndarray:
            with no_grad():
                return ours(Tensor(x)).data
    else:

        def predict(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return theirs(torch.from_numpy(x)).numpy()

    return predict


def _time_inference(
    benchmark: Any, framework: str, model_name: str, images: int, seed: int, rounds: int
) -> None:
    """Times `framework` predicting `images` images; its logits must match the other's."""
    benchmark.group = f"inference {model_name} {images} image{'s' if images > 1 else ''}"
    ours, theirs = _pair(model_name)
    predict = _predictor(framework, ours, theirs)
    x, _ = _images(images, seed=seed)
    flops = images * MODELS[model_name][2]
    logits = run_benchmark(
        benchmark, lambda: predict(x), framework=framework, flops=flops, rounds=rounds
    )
    benchmark.extra_info["images"] = images
    assert logits.shape == (images, 10)
    other = _predictor("torch" if framework == "scratchnet" else "scratchnet", ours, theirs)
    np.testing.assert_allclose(logits, other(x), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("model_name", ["cnn", "linear"])
def test_inference_batch_1000(benchmark: Any, framework: str, model_name: str) -> None:
    _time_inference(benchmark, framework, model_name, images=1000, seed=1, rounds=7)


@pytest.mark.parametrize("model_name", ["cnn", "linear"])
def test_inference_single_image(benchmark: Any, framework: str, model_name: str) -> None:
    _time_inference(benchmark, framework, model_name, images=1, seed=2, rounds=300)


@pytest.mark.benchmark(group="ceiling")
def test_ceiling(benchmark: Any) -> None:
    """The machine's matmul ceiling: float32 2048^3 with NumPy's BLAS on every core."""
    from threadpoolctl import threadpool_limits

    from benchmarks.conftest import THREADS

    rng = np.random.default_rng(3)
    a = rng.standard_normal((2048, 2048)).astype(np.float32)
    b = rng.standard_normal((2048, 2048)).astype(np.float32)
    with threadpool_limits(limits=THREADS, user_api="blas"):
        c = run_benchmark(benchmark, lambda: a @ b, framework="numpy", flops=2 * 2048**3, rounds=5)
    benchmark.extra_info["blas_threads"] = THREADS
    np.testing.assert_allclose(c[:2, :2], a[:2] @ b[:, :2], rtol=1e-4, atol=1e-3)
