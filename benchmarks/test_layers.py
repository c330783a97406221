"""Every layer of the CNN at its real shapes, batch 64, forward and backward: scratchnet vs torch.

Each layer is built in both frameworks with the same weights and the same input. The timed
framework's result is checked against the other's (untimed), so no benchmark can time a no-op.
A backward benchmark builds the graph once (untimed) and runs backward(dy, retain_graph=True)
with the gradients reset before each round, in both frameworks alike.

FLOPs are counted analytically: 2 per multiply-add for convolutions and linear layers; for the
memory-bound layers, the arithmetic operations per element written out in each formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import scratchnet.nn as nn
import scratchnet.nn.functional as F
from benchmarks.conftest import run_benchmark, to_numpy
from scratchnet.tensor import Tensor

BATCH = 64


@dataclass(frozen=True)
class Layer:
    name: str
    x_shape: tuple[int, ...]
    make: Any  # () -> (scratchnet module, torch module)
    forward_flops: float
    backward_flops: float
    input_grad: bool = True


def conv_flops(n: int, c: int, oc: int, h: int, w: int, k: int = 3) -> float:
    """2 * N * OC * OH * OW * C * KH * KW (stride 1, padding 1: OH = H, OW = W)."""
    return 2.0 * n * oc * h * w * c * k * k


def _conv(c: int, oc: int) -> Any:
    def make() -> tuple[Any, Any]:
        ours = nn.Conv2d(c, oc, 3, padding=1)
        theirs = torch.nn.Conv2d(c, oc, 3, padding=1)
        _copy_params(ours, theirs)
        return ours, theirs

    return make


def _bn(c: int) -> Any:
    def make() -> tuple[Any, Any]:
        return nn.BatchNorm2d(c), torch.nn.BatchNorm2d(c)

    return make


def _linear(i: int, o: int) -> Any:
    def make() -> tuple[Any, Any]:
        ours, theirs = nn.Linear(i, o), torch.nn.Linear(i, o)
        _copy_params(ours, theirs)
        return ours, theirs

    return make


def _copy_params(ours: Any, theirs: Any) -> None:
    with torch.no_grad():
        for name, param in ours.named_parameters():
            getattr(theirs, name).copy_(torch.from_numpy(param.data))


def _bn_elements(c: int, h: int) -> float:
    return float(BATCH * c * h * h)


def _conv_layer(name: str, c: int, oc: int, h: int, input_grad: bool = True) -> Layer:
    """A 3x3 convolution over (BATCH, c, h, h). Backward: dweight costs as much as the forward,
    and dx (when the input needs a gradient) as much again."""
    flops = conv_flops(BATCH, c, oc, h, h)
    backward = 2 * flops if input_grad else flops
    return Layer(name, (BATCH, c, h, h), _conv(c, oc), flops, backward, input_grad=input_grad)


def _max_pool_layer(name: str, c: int, h: int) -> Layer:
    """Max-pool 2x2 over (BATCH, c, h, h): 3 comparisons per output forward, one addition per
    output backward."""
    outputs = BATCH * c * (h // 2) ** 2

    def make() -> tuple[Any, Any]:
        return nn.MaxPool2d(2), torch.nn.MaxPool2d(2)

    return Layer(name, (BATCH, c, h, h), make, 3 * outputs, outputs)


LAYERS = [
    # conv1 sees the image, which needs no gradient: its backward is dweight and dbias only.
    _conv_layer("conv1", 1, 32, 28, input_grad=False),
    _conv_layer("conv2", 32, 64, 14),
    _conv_layer("conv3", 64, 128, 7),
    # BatchNorm, training mode. Forward: sum, squared deviations, (x - mean) * k + b: 7 per
    # element. Backward: sum(dy), sum(dy * (x - mean)), then the dx formula: 10 per element.
    Layer("bn1", (BATCH, 32, 28, 28), _bn(32), 7 * _bn_elements(32, 28), 10 * _bn_elements(32, 28)),
    Layer("bn2", (BATCH, 64, 14, 14), _bn(64), 7 * _bn_elements(64, 14), 10 * _bn_elements(64, 14)),
    Layer("bn3", (BATCH, 128, 7, 7), _bn(128), 7 * _bn_elements(128, 7), 10 * _bn_elements(128, 7)),
    _max_pool_layer("pool1", 32, 28),
    _max_pool_layer("pool2", 64, 14),
    # Global average pool: one addition per input forward, one multiplication per input back.
    Layer(
        "avgpool",
        (BATCH, 128, 7, 7),
        lambda: (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1)),
        BATCH * 128 * 49,
        BATCH * 128 * 49,
    ),
    Layer("fc1", (BATCH, 128), _linear(128, 64), 2 * BATCH * 128 * 64, 4 * BATCH * 128 * 64),
    Layer("fc2", (BATCH, 64), _linear(64, 10), 2 * BATCH * 64 * 10, 4 * BATCH * 64 * 10),
]


def _setup(layer: Layer) -> dict[str, Any]:
    """Both frameworks' module, input and a graph-building forward, with shared numbers."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer.x_shape).astype(np.float32)
    ours, theirs = layer.make()
    ours.train()
    theirs.train()
    x_ours = Tensor(x, requires_grad=layer.input_grad)
    x_theirs = torch.from_numpy(x.copy()).requires_grad_(layer.input_grad)
    return {"x": x, "modules": (ours, theirs), "inputs": (x_ours, x_theirs), "rng": rng}


def _grads(module: Any, x: Any) -> list[np.ndarray]:
    leaves = [x] if x.requires_grad else []
    leaves += list(module.parameters())
    return [to_numpy(leaf.grad) for leaf in leaves]


def _reset(module: Any, x: Any) -> None:
    x.grad = None
    for p in module.parameters():
        p.grad = None


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_forward(benchmark: Any, framework: str, layer: Layer) -> None:
    benchmark.group = f"layer {layer.name} forward"
    s = _setup(layer)
    index = 0 if framework == "scratchnet" else 1
    module, x = s["modules"][index], s["inputs"][index]
    y = run_benchmark(
        benchmark, lambda: module(x), framework=framework, flops=layer.forward_flops, rounds=40
    )
    other = s["modules"][1 - index](s["inputs"][1 - index])
    np.testing.assert_allclose(to_numpy(y), to_numpy(other), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_backward(benchmark: Any, framework: str, layer: Layer) -> None:
    benchmark.group = f"layer {layer.name} backward"
    s = _setup(layer)
    ys = [module(x) for module, x in zip(s["modules"], s["inputs"])]
    dy = s["rng"].standard_normal(ys[0].shape).astype(np.float32)
    dys = (dy, torch.from_numpy(dy))
    index = 0 if framework == "scratchnet" else 1
    module, x, y = s["modules"][index], s["inputs"][index], ys[index]

    run_benchmark(
        benchmark,
        lambda: y.backward(dys[index], retain_graph=True),
        framework=framework,
        flops=layer.backward_flops,
        rounds=40,
        setup=lambda: _reset(module, x),
    )
    ys[1 - index].backward(dys[1 - index])
    for ours, theirs in zip(
        _grads(module, x), _grads(s["modules"][1 - index], s["inputs"][1 - index])
    ):
        np.testing.assert_allclose(ours, theirs, rtol=2e-3, atol=2e-3)


# Cross-entropy over the CNN's logits: max, subtract, exp, sum (4 per logit) forward; softmax
# minus one-hot, scaled (3 per logit) backward.
CE_LOGITS = (BATCH, 10)


def _ce_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal(CE_LOGITS).astype(np.float32), rng.integers(0, 10, BATCH)


@pytest.mark.benchmark(group="layer cross_entropy forward")
def test_cross_entropy_forward(benchmark: Any, framework: str) -> None:
    logits, target = _ce_inputs()
    if framework == "scratchnet":
        x, t = Tensor(logits, requires_grad=True), target

        def fn() -> Any:
            return F.cross_entropy(x, t)
    else:
        x, t = torch.from_numpy(logits).requires_grad_(), torch.from_numpy(target)

        def fn() -> Any:
            return torch.nn.functional.cross_entropy(x, t)

    loss = run_benchmark(benchmark, fn, framework=framework, flops=4 * logits.size, rounds=200)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target))
    assert abs(float(to_numpy(loss)) - float(expected)) < 1e-5


@pytest.mark.benchmark(group="layer cross_entropy backward")
def test_cross_entropy_backward(benchmark: Any, framework: str) -> None:
    logits, target = _ce_inputs()
    if framework == "scratchnet":
        x = Tensor(logits, requires_grad=True)
        loss = F.cross_entropy(x, target)
    else:
        x = torch.from_numpy(logits.copy()).requires_grad_()
        loss = torch.nn.functional.cross_entropy(x, torch.from_numpy(target))

    def reset() -> None:
        x.grad = None

    run_benchmark(
        benchmark,
        lambda: loss.backward(retain_graph=True),
        framework=framework,
        flops=3 * logits.size,
        rounds=200,
        setup=reset,
    )
    ref = torch.from_numpy(logits.copy()).requires_grad_()
    torch.nn.functional.cross_entropy(ref, torch.from_numpy(target)).backward()
    np.testing.assert_allclose(to_numpy(x.grad), ref.grad.numpy(), atol=1e-6)
