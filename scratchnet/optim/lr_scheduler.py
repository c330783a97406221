"""Learning-rate schedulers: StepLR, CosineAnnealingLR and OneCycleLR, as in torch.optim.

A scheduler rewrites `group["lr"]` of its optimizer's param groups each time `step()` is called
(after `optimizer.step()`, once per epoch or once per batch, depending on the schedule):

    scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(optimizer)
        scheduler.step()

Construction already takes one step (to epoch 0): it stores each group's starting lr as
`group["initial_lr"]`, and `base_lrs` holds these values. `last_epoch` counts the steps taken.
StepLR and CosineAnnealingLR change the current lr by a factor each step (PyTorch's "chainable"
form), so the values below are the same as PyTorch's up to the last bit.

To resume: build the optimizer and the scheduler as at the start, then call
`optimizer.load_state_dict(...)` and `scheduler.load_state_dict(...)`, in that order.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from scratchnet.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses compute the next lr of every param group in `get_lr()`."""

    # Attributes saved by state_dict(); subclasses add their hyper-parameters.
    _state_keys: tuple[str, ...] = ("base_lrs", "last_epoch", "_step_count", "_last_lr")

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer

        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when "
                        "resuming a scheduler with last_epoch >= 0: load the optimizer's "
                        "state_dict first"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch

        # The initial step moves last_epoch from -1 to 0 and sets the epoch-0 lr.
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self) -> list[float]:
        """The lr of each param group for epoch `last_epoch` (already incremented by step())."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch (or batch) and write the new lr into each param group."""
        self._step_count += 1
        self.last_epoch += 1
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr: list[float] = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The lr of each param group set by the latest step()."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's position and settings: Python scalars and lists of floats only."""
        state = {}
        for key in self._state_keys:
            value = getattr(self, key)
            state[key] = list(value) if isinstance(value, list) else value
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state_dict() (the optimizer's param groups are restored by the optimizer)."""
        unknown = set(state_dict) - set(self._state_keys)
        if unknown:
            raise ValueError(
                f"unexpected keys {sorted(unknown)} in the state dict of {type(self).__name__}"
            )
        for key, value in state_dict.items():
            setattr(self, key, list(value) if isinstance(value, list | tuple) else value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.get_last_lr()})"


class StepLR(LRScheduler):
    """Multiply the lr by gamma every step_size epochs.

        lr(epoch) = base_lr * gamma ** (epoch // step_size)

    computed as PyTorch does, one factor at a time: lr = lr * gamma when epoch is a nonzero
    multiple of step_size, unchanged otherwise.
    """

    _state_keys = (*LRScheduler._state_keys, "step_size", "gamma")

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if not isinstance(step_size, numbers.Integral) or step_size <= 0:
            raise ValueError(f"step_size must be a positive integer, got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]


class CosineAnnealingLR(LRScheduler):
    """Anneal the lr from base_lr to eta_min along half a cosine over T_max epochs.

        lr(epoch) = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2

    After T_max epochs the cosine goes on, so the lr climbs back to base_lr at 2 * T_max (there
    are no restarts). As in PyTorch, each step applies the ratio of consecutive values

        lr = eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max))
                                       / (1 + cos(pi * (epoch - 1) / T_max))

    except at epoch = T_max + 1 (mod 2 * T_max), where that ratio would divide by zero and
    lr = lr + (base_lr - eta_min) * (1 - cos(pi / T_max)) / 2 is used instead.
    """

    _state_keys = (*LRScheduler._state_keys, "T_max", "eta_min")

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        if not isinstance(T_max, numbers.Real) or T_max <= 0:
            raise ValueError(f"T_max must be positive, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        epoch, T_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [group["lr"] for group in groups]
        if (epoch - 1 - T_max) % (2 * T_max) == 0:
            return [
                group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
                for base_lr, group in zip(self.base_lrs, groups)
            ]
        ratio = (1 + math.cos(math.pi * epoch / T_max)) / (
            1 + math.cos(math.pi * (epoch - 1) / T_max)
        )
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2018): warm up to max_lr, then anneal far below start.

    Call step() once per batch, total_steps times in all. Each group gets

        initial_lr = max_lr / div_factor
        min_lr     = initial_lr / final_div_factor

    and at step t the lr moves between phase end points, with pct = the fraction of the phase
    done and anneal(start, end, pct) = end + (start - end) / 2 * (1 + cos(pi * pct)) for 'cos',
    or start + (end - start) * pct for 'linear':

        two phases (default):           three phases (three_phase=True):
          0 .. a:  initial_lr -> max_lr     0 .. a:  initial_lr -> max_lr
          a .. T:  max_lr -> min_lr         a .. b:  max_lr -> initial_lr
                                            b .. T:  initial_lr -> min_lr

    with a = pct_start * total_steps - 1, b = 2 * pct_start * total_steps - 2, T = total_steps - 1.

    With cycle_momentum (the default), the momentum moves the opposite way, from max_momentum
    down to base_momentum while the lr rises, and back up while it falls (in the third phase it
    stays at max_momentum). It is written into group["momentum"] for SGD and into beta1 of
    group["betas"] for Adam and AdamW. Note that this overrides the momentum given to the
    optimizer: SGD(momentum=0) runs with momentum 0.85 .. 0.95.
    """

    _state_keys = (
        *LRScheduler._state_keys,
        "total_steps",
        "pct_start",
        "anneal_strategy",
        "three_phase",
        "cycle_momentum",
        "use_beta1",
    )

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer

        if total_steps is not None:
            if not isinstance(total_steps, numbers.Integral) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, numbers.Integral) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, numbers.Integral) or steps_per_epoch <= 0:
                raise ValueError(
                    f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}"
                )
            self.total_steps = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, numbers.Real) or not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self.pct_start = float(pct_start)
        self.anneal_strategy = anneal_strategy
        self.three_phase = bool(three_phase)

        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, group_max_lr in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = group_max_lr / div_factor
                group["max_lr"] = group_max_lr
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = "betas" in optimizer.defaults
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and not self.use_beta1:
                raise ValueError(
                    "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
                )
            max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for group, max_m, base_m in zip(
                    optimizer.param_groups, max_momentums, base_momentums
                ):
                    _set_momentum(group, max_m, self.use_beta1)
                    group["max_momentum"] = max_m
                    group["base_momentum"] = base_m

        super().__init__(optimizer, last_epoch)

    def _phases(self) -> list[dict[str, Any]]:
        """(end_step, the group keys to anneal from and to) for each phase, as in PyTorch."""
        n, pct = self.total_steps, self.pct_start
        if self.three_phase:
            return [
                _phase(float(pct * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(
                    float(2 * pct * n) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"
                ),
                _phase(n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        return [
            _phase(float(pct * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            _phase(n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
        ]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(
                f"Tried to step {step_num} times. "
                f"The specified number of total steps is {self.total_steps}"
            )
        phases = self._phases()
        lrs = []
        for group in self.optimizer.param_groups:
            # Find the phase that contains step_num (the last one takes everything after it).
            start_step = 0.0
            for i, phase in enumerate(phases):
                end_step = phase["end_step"]
                if step_num <= end_step or i == len(phases) - 1:
                    pct = (step_num - start_step) / (end_step - start_step)
                    break
                start_step = end_step
            lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
            if self.cycle_momentum:
                start, end = group[phase["start_momentum"]], group[phase["end_momentum"]]
                _set_momentum(group, self._anneal(start, end, pct), self.use_beta1)
        return lrs


def _phase(
    end_step: float, start_lr: str, end_lr: str, start_momentum: str, end_momentum: str
) -> dict[str, Any]:
    return {
        "end_step": end_step,
        "start_lr": start_lr,
        "end_lr": end_lr,
        "start_momentum": start_momentum,
        "end_momentum": end_momentum,
    }


def _per_group(name: str, optimizer: Optimizer, value: Any) -> list[Any]:
    """One value per param group: a list is checked for length, a scalar is repeated."""
    if isinstance(value, list | tuple):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. {name} has "
                f"{len(value)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return list(value)
    return [value] * len(optimizer.param_groups)


def _set_momentum(group: dict[str, Any], momentum: float, use_beta1: bool) -> None:
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum
