"""Weight initialisation, drawing from the same distributions as torch.nn.init.

fan_in and fan_out of a weight of shape (out, in, *kernel) are in * prod(kernel) and
out * prod(kernel).
"""

from __future__ import annotations

import math

import numpy as np

# One generator for every layer's default initialisation, reseeded by scratchnet.manual_seed.
_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator behind default initialisations (and dropout masks)."""
    global _rng
    _rng = np.random.default_rng(seed)


def get_rng() -> np.random.Generator:
    return _rng


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"fan_in and fan_out need a weight with 2 or more dimensions, got {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    if nonlinearity in ("linear", "conv2d", "sigmoid", "identity"):
        return 1.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "tanh":
        return 5.0 / 3
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def kaiming_uniform(
    shape: tuple[int, ...], a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> np.ndarray:
    """U(-bound, bound), bound = gain * sqrt(3 / fan): PyTorch's default for Linear and Conv."""
    fan_in, fan_out = _fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return _rng.uniform(-bound, bound, size=shape).astype(np.float32)


def kaiming_normal(
    shape: tuple[int, ...], a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> np.ndarray:
    """N(0, std**2), std = gain / sqrt(fan)."""
    fan_in, fan_out = _fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return (_rng.standard_normal(size=shape) * std).astype(np.float32)


def normal(shape: tuple[int, ...], mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    return (_rng.standard_normal(size=shape) * std + mean).astype(np.float32)


def uniform(shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    return _rng.uniform(low, high, size=shape).astype(np.float32)


def fan_in_bias_bound(weight_shape: tuple[int, ...]) -> float:
    """PyTorch's default bias bound for Linear and Conv: 1 / sqrt(fan_in)."""
    fan_in, _ = _fans(weight_shape)
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
