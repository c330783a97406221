"""Tracing, as torch.jit.trace: record what one forward pass computes, then replay just that.

A forward pass through Modules does more than arithmetic. Every layer checks its arguments and
picks an algorithm, every operation builds a Context and wraps its output in a Tensor, and the
model's own Python runs between them. For a training batch that is noise; for one image, the
server's case, it is about a third of the time. A trace keeps only the arithmetic. While
`trace` runs the module once, Function.apply appends each operation it applies to a list:

    ops[k] = (Function, inputs, options, output)

Each input is either the output of an earlier operation (or the module's input), or a
constant: a parameter, a buffer, a number. The replay calls each Function's own forward on
NumPy arrays, in order, and returns the last value:

    value[0] = x.data
    value[k + 1] = Function_k.forward(ctx, *(value[i] or constant.data), **options_k)

It runs the same forward code on the same arrays, so it gives the same output to the bit.
What it leaves out was decided at trace time: argument checks, the choice between im2col and
Winograd, shapes computed from the input (the target shape of a flatten). So a trace holds
for one input shape and dtype, and TracedModule keeps one per shape, tracing each new shape on
its first call (as torch.compile recompiles).

Constant tensors are read again at every replay (`constant.data`), and arrays given as
options (BatchNorm's running statistics) are the same arrays, so the trace sees updates made in
place or through `.data`. A layer replaced by a new one, or a buffer replaced by a new array,
needs a new trace: call `trace` again. What a trace cannot see, as in torch.jit.trace, is a
value the forward computed outside any Function (from `x.data`, say), which would be frozen as
a constant, and Python control flow that depends on the data. Each new trace is therefore
checked against the module on a second, random input; a shape whose trace disagrees runs
through the module itself, after a warning.

The replay is for inference. Under grad mode (no graph is recorded), in training mode
(dropout draws a new mask each call) and in reading mode (runtime/mode.py), TracedModule runs
the module itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnet.nn.module import Module
from scratchnet.runtime.mode import reference_mode
from scratchnet.tensor import Context, Function, Tensor, is_grad_enabled, no_grad, recording


@dataclass(frozen=True)
class Step:
    """One operation of a trace: value[k + 1] = forward(ctx, *inputs, **options).

    sources[i] is the index of an earlier value, or None for a constant (constants[i]).
    release lists the values that no later step reads: the replay drops them after this one.
    """

    function: type[Function]
    sources: tuple[int | None, ...]
    constants: tuple[Tensor | None, ...]
    options: dict[str, Any]
    release: tuple[int, ...]


class Trace:
    """The operations one call of a module applied to an input of one shape and dtype."""

    def __init__(self, steps: list[Step], output: int) -> None:
        self.steps = steps
        self.output = output  # the index of the value the module returned

    @classmethod
    def record(cls, module: Module, x: Tensor) -> tuple[Trace, Tensor]:
        """Run module(x) once under no_grad, recording its operations: (trace, output)."""
        with no_grad(), recording() as ops:
            out = module(x)
        if not isinstance(out, Tensor):
            raise TypeError(
                f"trace: {type(module).__name__} returned {type(out).__name__}; a traced "
                f"module must return one Tensor"
            )
        index = {id(x): 0}  # which value each tensor the module made is
        steps: list[tuple[type[Function], list[int | None], list[Tensor | None], dict]] = []
        for function, inputs, options, output in ops:
            sources = [index.get(id(t)) for t in inputs]
            constants = [t if s is None else None for t, s in zip(inputs, sources)]
            steps.append((function, sources, constants, options))
            index[id(output)] = len(steps)
        if id(out) not in index:
            raise TypeError(
                f"trace: {type(module).__name__} returned a tensor that no operation made "
                f"from its input"
            )
        output = index[id(out)]
        last_use = {output: len(steps)}  # the output is kept to the end
        for k, (_, sources, _, _) in enumerate(steps):
            for s in sources:
                if s is not None:
                    last_use[s] = k
        released: dict[int, list[int]] = {}
        for value, k in last_use.items():
            if value != 0:  # value 0 is the caller's input: not ours to drop
                released.setdefault(k, []).append(value)
        trace = cls(
            [
                Step(fn, tuple(s), tuple(c), opts, tuple(released.get(k, ())))
                for k, (fn, s, c, opts) in enumerate(steps)
            ],
            output,
        )
        return trace, out

    def run(self, x: np.ndarray) -> np.ndarray:
        """Replay the operations on the array x: the module's output for input x."""
        values: list[Any] = [x] + [None] * len(self.steps)
        for k, step in enumerate(self.steps):
            ctx = Context(step.function, (), False)
            ctx.needs_input_grad = (False,) * len(step.sources)
            arrays = [
                values[s] if s is not None else c.data for s, c in zip(step.sources, step.constants)
            ]
            values[k + 1] = step.function.forward(ctx, *arrays, **step.options)
            for v in step.release:
                values[v] = None
        return values[self.output]


class TracedModule(Module):
    """module, replayed from one trace per input shape and dtype when no graph is needed.

    Calls under grad mode, in training mode or in reading mode run module itself, so the
    TracedModule can stand wherever module did. `module` is the traced module.
    """

    def __init__(self, module: Module) -> None:
        super().__init__()
        self.module = module
        self.training = module.training
        # Two threads tracing the same new shape at once each record their own ops (recording
        # is per thread) and store equal traces: no lock is needed.
        self._traces: dict[tuple[tuple[int, ...], str], Trace | None] = {}

    def forward(self, x: Tensor) -> Tensor:
        if self.module.training or is_grad_enabled() or reference_mode():
            return self.module(x)
        if not isinstance(x, Tensor):
            x = Tensor(x)
        key = (tuple(x.shape), x.dtype.str)
        trace = self._traces.get(key, False)
        if trace is False:
            return self._trace(x, key)
        if trace is None:  # this shape's trace disagreed with the module
            return self.module(x)
        return Tensor(trace.run(x.data))

    def _trace(self, x: Tensor, key: tuple[tuple[int, ...], str]) -> Tensor:
        """Trace module on x (its first call with this shape and dtype), checked on a second
        input, and module(x)."""
        trace, out = Trace.record(self.module, x)
        check = np.random.default_rng(0).standard_normal(x.shape).astype(x.dtype) * 2 + 0.5
        with no_grad():
            expected = self.module(Tensor(check)).data
        got = trace.run(check)
        scale = float(np.abs(expected).max()) if expected.size else 0.0
        if got.shape != expected.shape or not np.allclose(
            got, expected, rtol=1e-5, atol=1e-6 * max(scale, 1.0), equal_nan=True
        ):
            warnings.warn(
                f"trace: {type(self.module).__name__}'s trace for input shape {key[0]} does "
                f"not reproduce it on another input (a value computed outside the operations, "
                f"or control flow on the data?): that shape runs the module itself",
                RuntimeWarning,
                stacklevel=3,
            )
            trace = None
        self._traces[key] = trace
        return out

    def extra_repr(self) -> str:
        return f"traced shapes: {[shape for shape, _ in self._traces]}"


def trace(module: Module) -> TracedModule:
    """module wrapped to replay traces of its forward pass, as torch.jit.trace does.

    Unlike torch.jit.trace this takes no example input: each input shape is traced on its
    first call under no_grad() in eval mode. See this file's docstring for what a trace
    keeps and what it cannot see.
    """
    if not isinstance(module, Module):
        raise TypeError(f"trace: expected a Module, got {type(module).__name__}")
    return TracedModule(module)
