"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from scratchnet.optim.optimizer import Optimizer, ParamsT
from scratchnet.tensor import Tensor


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with torch.optim.Adam's update rule.

    For each parameter p with gradient g, at step t = 1, 2, ..., with m = v = 0 at the start:

        g = g + weight_decay * p                      (L2 penalty, inside the moments)
        m = beta1 * m + (1 - beta1) * g               first moment
        v = beta2 * v + (1 - beta2) * g * g           second moment
        m_hat = m / (1 - beta1 ** t)                  bias corrections
        v_hat = v / (1 - beta2 ** t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    eps is added after the bias correction of v. Folding the corrections into the step size
    instead (lr * sqrt(1 - beta2**t) / (1 - beta1**t)) would scale eps too and no longer match
    PyTorch. With amsgrad, sqrt(v_hat) uses vmax = max(vmax, v) (the largest v seen so far).

    In code, as in PyTorch: m moves towards g with m += (1 - beta1) * (g - m) (torch's lerp), and
    the step is p += (-step_size * m) / denom with step_size = lr / (1 - beta1 ** t) and
    denom = sqrt(v) / sqrt(1 - beta2 ** t) + eps.

    Args:
        params: parameters (model.parameters()), (name, parameter) pairs, or param-group dicts.
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1): decay rates of the two moments.
        eps: added to the denominator for numerical stability, >= 0.
        weight_decay: L2 penalty lambda, >= 0 (for decoupled decay, use AdamW).
        amsgrad: use the AMSGrad variant.
        decoupled_weight_decay: decay the weights directly, as AdamW does.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": _as_betas(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if "betas" in param_group:
            param_group = {**param_group, "betas": _as_betas(param_group["betas"])}
        super().add_param_group(param_group)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        eps, weight_decay = group["eps"], group["weight_decay"]
        if not isinstance(eps, numbers.Real) or eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps!r} (expected a number >= 0)")
        if not isinstance(weight_decay, numbers.Real) or weight_decay < 0.0:
            raise ValueError(
                f"Invalid weight_decay value: {weight_decay!r} (expected a number >= 0)"
            )
        betas = _as_betas(group["betas"])
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta} (expected [0, 1))")

    def _update(
        self, param: Tensor, grad: np.ndarray, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])

        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param.data)
            state["exp_avg_sq"] = np.zeros_like(param.data)
        state["step"] += 1
        step = state["step"]
        exp_avg = state["exp_avg"]
        exp_avg_sq = state["exp_avg_sq"]

        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param.data *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param.data  # a new array: never change param.grad

        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5

        if group["amsgrad"]:
            max_exp_avg_sq = state.setdefault("max_exp_avg_sq", np.zeros_like(param.data))
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
        else:
            denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
        param.data += (-step_size * exp_avg) / denom


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, as torch.optim.AdamW.

    For each parameter p with gradient g, at step t = 1, 2, ...:

        p = p - lr * weight_decay * p                 decay first, outside the moments
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    The decay is computed as p = p * (1 - lr * weight_decay), as in PyTorch. Unlike Adam's L2
    penalty, it never passes through m and v, so every weight shrinks at the same rate whatever
    the size of its gradients. Note the default weight_decay of 1e-2.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # AdamW always decouples, even when the state comes from an Adam checkpoint.
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def _as_betas(betas: Any) -> tuple[float, float]:
    """betas as a tuple of two numbers (a JSON round trip turns the tuple into a list)."""
    if isinstance(betas, np.ndarray):
        betas = betas.tolist()
    if (
        not isinstance(betas, tuple | list)
        or len(betas) != 2
        or not all(isinstance(b, numbers.Real) for b in betas)
    ):
        raise ValueError(f"Invalid betas: {betas!r} (expected a pair (beta1, beta2))")
    return (betas[0], betas[1])
