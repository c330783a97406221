"""Stochastic gradient descent, optionally with momentum, Nesterov momentum and weight decay."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from scratchnet.optim.optimizer import Optimizer, ParamsT
from scratchnet.tensor import Tensor


class SGD(Optimizer):
    """Stochastic gradient descent, with torch.optim.SGD's update rule.

    For each parameter p with gradient g, at step t = 1, 2, ...:

        g = g + weight_decay * p                      if weight_decay != 0  (L2 penalty)
        if momentum != 0:
            b = g                                     at t = 1
            b = momentum * b + (1 - dampening) * g    at t > 1
            g = g + momentum * b                      if nesterov
            g = b                                     otherwise
        p = p - lr * g

    The momentum buffer b starts as the first gradient itself (not as zero, and without
    dampening), exactly as in PyTorch. Nesterov momentum needs momentum > 0 and dampening = 0.

    Args:
        params: parameters (model.parameters()), (name, parameter) pairs, or param-group dicts.
        lr: learning rate, >= 0 (PyTorch's default, 1e-3).
        momentum: momentum factor mu, >= 0.
        dampening: dampening tau of the momentum.
        weight_decay: L2 penalty lambda, >= 0.
        nesterov: use Nesterov momentum.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        for name in ("momentum", "dampening", "weight_decay"):
            if not isinstance(group[name], numbers.Real):
                raise ValueError(f"Invalid {name} value: {group[name]!r} (expected a number)")
        if group["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {group['momentum']} (expected >= 0)")
        if group["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']} (expected >= 0)")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")

    def _update(
        self, param: Tensor, grad: np.ndarray, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])

        if weight_decay != 0:
            grad = grad + weight_decay * param.data  # a new array: never change param.grad

        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad.copy()
                state["momentum_buffer"] = buf
            else:
                buf *= momentum
                buf += (1 - dampening) * grad
            # Nesterov looks ahead: it steps along the gradient plus the updated momentum.
            grad = grad + momentum * buf if group["nesterov"] else buf

        param.data -= lr * grad
