"""Optimizer: the base class of SGD, Adam and AdamW, with PyTorch's param_groups and state_dict.

An optimizer holds a list of parameter groups. Each group is a dict with the key "params" (a list
of Tensors) and one entry per hyper-parameter ("lr", "momentum", "betas", ...). A value missing
from a group is filled in from the optimizer's defaults, so

    SGD([{"params": backbone}, {"params": head, "lr": 0.1}], lr=0.01, momentum=0.9)

trains the head ten times faster than the backbone. Schedulers change `group["lr"]` between
steps; the optimizer reads the group's values afresh at every `step()`.

Per-parameter state (momentum buffers, Adam's moments) lives in `self.state[param]`, a dict that
each optimizer fills lazily at the parameter's first step. A parameter whose `.grad` is None is
skipped: it is neither updated nor given state.

`state_dict()` refers to parameters by their position (0, 1, 2, ... over all groups in order),
as PyTorch does, so a checkpoint can be loaded into a fresh optimizer built over a fresh model:

    {"state": {0: {"step": 5, "exp_avg": ndarray, "exp_avg_sq": ndarray}, 1: {...}},
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1]}]}

Its leaves are NumPy arrays, Python scalars and short lists/tuples of scalars
(scratchnet/checkpoint.py saves it beside the model's weights).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from scratchnet.tensor import Tensor, enable_grad

ParamsT = Iterable[Tensor] | Iterable[tuple[str, Tensor]] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class of all optimizers.

    Subclasses pass their hyper-parameter defaults to `__init__`, check them in
    `_check_hyperparameters` and implement `_update(param, grad, group, state)`, which changes
    `param.data` in place for one parameter that has a gradient.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                "params should be an iterable of Tensors or dicts (for example "
                "model.parameters()), but got a single Tensor: wrap it in a list"
            )
        if isinstance(params, set):
            raise TypeError(
                "optimizer parameters must be an ordered collection (a list), not a set: "
                "the order of a set changes between runs and state_dict() relies on it"
            )
        self._check_hyperparameters(defaults)
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []

        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    # -- hyper-parameters --------------------------------------------------------------------

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an invalid value (negative lr, beta outside [0, 1), ...)."""
        lr = group.get("lr", 0.0)
        if not isinstance(lr, numbers.Real) or math.isnan(lr) or lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr!r} (expected a number >= 0)")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (missing ones default).

        Useful for fine-tuning: unfreeze a layer and add it to the optimizer mid-training.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        param_group = dict(param_group)
        params = param_group.get("params")
        if params is None:
            raise ValueError("a parameter group needs a 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters must be an ordered collection (a list), not a set: "
                "the order of a set changes between runs and state_dict() relies on it"
            )
        params = list(params)

        # model.named_parameters() gives (name, param) pairs: keep the names, as PyTorch does.
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names and len(names) != len(params):
            raise ValueError("either all parameters of a group have names or none has")
        if names:
            param_group["param_names"] = names
        param_group["params"] = params

        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError(
                    f"an optimizer can only optimize Tensors, but got {type(param).__name__}"
                )
            if param.data.dtype not in (np.float32, np.float64):
                raise TypeError(
                    f"an optimizer can only optimize float32/float64 Tensors, got {param.dtype}"
                )
            if not param.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (it has a grad_fn)")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains the same parameter twice")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")

        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        self._check_hyperparameters(param_group)
        self.param_groups.append(param_group)

    # -- the update --------------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: set them to None (the default) or fill them with zeros.

        With None, the next step() skips parameters that receive no new gradient; with zeros,
        it updates them with a zero gradient (which still moves them under momentum or decay).
        """
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient, once. Returns closure() if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = _checked_grad(param)
                state = self.state.setdefault(param, {})
                self._update(param, grad, group, state)
        return loss

    def _update(
        self, param: Tensor, grad: np.ndarray, group: dict[str, Any], state: dict[str, Any]
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define _update()")

    # -- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Return {"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}.

        Parameters are referred to by their position over all groups in order. Arrays are
        copies, so the returned dict does not change when training continues.
        """
        index_of: dict[int, int] = {}
        packed_groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            for param in group["params"]:
                index_of[id(param)] = len(index_of)
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            packed_groups.append(packed)

        packed_state = {}
        for param, param_state in self.state.items():
            if param_state:
                packed_state[index_of[id(param)]] = {
                    k: v.copy() if isinstance(v, np.ndarray) else v for k, v in param_state.items()
                }
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict() from an optimizer built over parameters of the same shapes.

        Hyper-parameters (including a scheduler's "initial_lr") come from the state_dict; the
        parameters stay this optimizer's own. State arrays are copied and cast to the dtype of
        the parameter they belong to. Keys may be ints or (after JSON) strings of ints.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"loaded parameter group {i} has {len(saved['params'])} parameters, "
                    f"this optimizer's group has {len(group['params'])}"
                )
        param_of = {
            int(saved_index): param
            for group, saved in zip(self.param_groups, saved_groups)
            for saved_index, param in zip(saved["params"], group["params"])
        }

        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, saved_state in state_dict["state"].items():
            index = int(key)
            if index not in param_of:
                raise ValueError(f"state for parameter {index}, which no group contains")
            param = param_of[index]
            new_state[param] = {
                name: _cast_state_value(name, value, param, index)
                for name, value in saved_state.items()
            }

        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new_group = {k: _from_json(k, copy.deepcopy(v)) for k, v in saved.items()}
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                new_group["param_names"] = group["param_names"]
            self._check_hyperparameters(new_group)
            new_groups.append(new_group)

        self.state = new_state
        self.param_groups = new_groups

    # -- display -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _checked_grad(param: Tensor) -> np.ndarray:
    """The parameter's gradient as an array of the parameter's dtype and shape."""
    grad = np.asarray(param.grad)
    if grad.shape != param.data.shape:
        raise ValueError(
            f"gradient of shape {grad.shape} for a parameter of shape {param.data.shape}"
        )
    return grad.astype(param.data.dtype, copy=False)


def _cast_state_value(name: str, value: Any, param: Tensor, index: int) -> Any:
    if name == "step":
        return int(np.asarray(value).item())
    if isinstance(value, np.ndarray):
        array = np.array(value, dtype=param.data.dtype)  # a copy, in the parameter's dtype
        if array.shape != param.data.shape:
            raise ValueError(
                f"state {name!r} of parameter {index} has shape {array.shape}, "
                f"but the parameter has shape {param.data.shape}"
            )
        return array
    return value


def _from_json(key: str, value: Any) -> Any:
    """Undo what a JSON round trip does to a param group: betas come back as a list."""
    if key == "betas" and isinstance(value, list):
        return tuple(value)
    return value
