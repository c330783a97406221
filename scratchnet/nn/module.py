"""Module and Parameter: the stateful side of scratchnet.nn, named as in PyTorch.

A Module owns Parameters (tensors that an optimizer updates), buffers (state that is saved but
not trained, such as BatchNorm's running statistics) and child Modules. Their dotted names
(`conv1.weight`, `bn1.running_mean`) are the keys of `state_dict()`, the same keys PyTorch
gives the same module tree, so checkpoints can move between the two frameworks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from scratchnet.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a module's trainable weight: requires_grad is True by default."""

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model.

    Assigning a Parameter, a Module or (through register_buffer) an array to an attribute
    registers it under that attribute's name, in assignment order.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration ------------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() was called: "
                "call super().__init__() first"
            )
        if isinstance(value, Parameter) or (
            value is None and name in self.__dict__.get("_none_params", ())
        ):
            registry = self._parameters
        elif isinstance(value, Module):
            registry = self._modules
        else:
            registry = None
        for other in (self._parameters, self._buffers, self._modules):
            if other is not registry:
                other.pop(name, None)
        if registry is not None:
            registry[name] = value  # a replacement keeps its place, as in PyTorch
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self.__dict__.get("_none_params", set()).discard(name)
        object.__delattr__(self, name)

    def add_module(self, name: str, module: Module) -> None:
        """Register module as the child `name`, with PyTorch's checks: a child's name is a
        state_dict key part, so it has no dot, and it must not hide an attribute or method."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module (adding {name!r})")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"a module name must be a non-empty string without '.', got {name!r}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists in {type(self).__name__}")
        setattr(self, name, module)

    def register_buffer(self, name: str, array: np.ndarray | None) -> None:
        """Keep an array in state_dict() without training it (BatchNorm's running_mean)."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register a Parameter, or None for an optional one such as a disabled bias."""
        if param is None:
            self.__dict__.setdefault("_none_params", set()).add(name)
        setattr(self, name, param)

    # -- forward -----------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- traversal ---------------------------------------------------------------------------

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) of this module and, with recurse, of every submodule."""
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is not None:
                    yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, np.ndarray]]:
        """(dotted name, buffer) of this module and, with recurse, of every submodule."""
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buf

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    # -- modes and gradients -----------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Training mode: BatchNorm uses batch statistics and Dropout drops."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: BatchNorm uses running statistics and Dropout does nothing."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- state -------------------------------------------------------------------------------

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Every parameter and buffer as an np.ndarray (a copy), under its dotted name."""
        state: OrderedDict[str, np.ndarray] = OrderedDict()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, param in module._parameters.items():
                if param is not None:
                    state[prefix + name] = param.data.copy()
            for name, buf in module._buffers.items():
                if buf is not None:
                    state[prefix + name] = np.array(buf, copy=True)
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers, checking keys and shapes first.

        With strict=True a missing or unexpected key is an error. A wrong shape is always an
        error. Nothing is changed unless every check passes.
        """
        own: dict[str, tuple[Module, str, bool]] = {}
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, param in module._parameters.items():
                if param is not None:
                    own[prefix + name] = (module, name, True)
            for name, buf in module._buffers.items():
                if buf is not None:
                    own[prefix + name] = (module, name, False)

        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        arrays = {}
        for key, (module, name, _) in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = np.asarray(value.data if isinstance(value, Tensor) else value)
            current = getattr(module, name)
            current_shape = current.shape
            if value.shape != current_shape:
                problems.append(
                    f"{key}: the checkpoint has shape {value.shape}, the model expects "
                    f"{current_shape}"
                )
            arrays[key] = value
        if problems:
            raise ValueError(
                f"error loading state_dict into {type(self).__name__}: " + "; ".join(problems)
            )

        for key, value in arrays.items():
            module, name, is_param = own[key]
            if is_param:
                param = getattr(module, name)
                param.data = value.astype(param.dtype, copy=True)
            else:
                current = getattr(module, name)
                module.register_buffer(name, value.astype(current.dtype, copy=True))

    def to(self, dtype: Any) -> Module:
        """Cast floating parameters and buffers to dtype (np.float32 or np.float64)."""
        dtype = np.dtype(dtype)
        for module in self.modules():
            for param in module._parameters.values():
                if param is not None:
                    param.data = param.data.astype(dtype)
            for name, buf in list(module._buffers.items()):
                if buf is not None and buf.dtype.kind == "f":
                    module.register_buffer(name, buf.astype(dtype))
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    # -- printing ----------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            for name, child in self._modules.items():
                child_repr = repr(child).replace("\n", "\n  ")
                lines.append(f"  ({name}): {child_repr}")
            lines.append(")")
            return "\n".join(lines)
        return lines[0] + ")"
