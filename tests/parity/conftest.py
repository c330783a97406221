"""Fixtures of the parity tests: a session-wide table of the largest relative errors measured.

Every comparison with PyTorch records its error under a row (an operation, an optimizer or a
model) and a column (the dtype, or what was compared). At the end of the session the table is
printed, grouped by section; run `pytest tests/parity -s` to see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

OPERATIONS = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "exp",
    "log",
    "pow",
    "sqrt",
    "abs",
    "sign",
    "clamp",
    "maximum",
    "minimum",
    "where",
    "matmul",
    "sum",
    "mean",
    "max",
    "min",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "max indices",
    "min indices",
    "var",
    "std",
    "prod",
    "logsumexp",
    "cat",
    "stack",
    "split",
    "chunk",
    "gather",
    "masked_fill",
    "pad",
    "reshape",
    "view",
    "flatten",
    "unsqueeze",
    "squeeze",
    "transpose",
    "permute",
    "t",
    "T",
    "mT",
    "expand",
    "repeat",
    "index",
    "clone",
    "to",
    "comparisons",
    "relu",
    "sigmoid",
    "tanh",
    "softplus",
    "leaky_relu",
    "elu",
    "gelu",
    "gelu, tanh",
    "relu6",
    "hardswish",
    "silu",
    "mish",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "linear",
    "conv2d",
    "conv2d, groups/dilation",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "batch_norm",
    "batch_norm, 2 values/channel",
    "dropout",
]


def _is_optimizer(row: str) -> bool:
    return row.startswith(("optim", "sched"))


def _is_model(row: str) -> bool:
    return "Classifier " in row and "steps" not in row


def _is_training(row: str) -> bool:
    return "steps" in row or row.startswith("reference.train")


SECTIONS: list[tuple[str, Callable[[str], bool]]] = [
    ("operations: forward and the gradient of every input", OPERATIONS.__contains__),
    ("optimizers and schedulers: the parameters after N steps", _is_optimizer),
    ("models from the same weights: one forward and backward", _is_model),
    ("training from the same weights and batches", _is_training),
    ("checkpoints", lambda row: True),
]

COLUMN_NOTES = {
    "sn32 vs t64": "scratchnet float32 against torch float64 (the exact answer)",
    "t32 vs t64": "torch float32 against torch float64",
    "lr/momentum": "the lr and momentum (or beta1) a scheduler writes, at every step",
}


class ErrorTable:
    """The largest relative error seen for each (row, column)."""

    def __init__(self) -> None:
        self.errors: dict[str, dict[str, float]] = {}
        self.notes: list[str] = []

    def record(self, row: str, column: str, error: float) -> float:
        columns = self.errors.setdefault(row, {})
        columns[column] = max(columns.get(column, 0.0), float(error))
        return float(error)

    def note(self, text: str) -> None:
        """A line printed under the table (a measurement that is not a relative error)."""
        self.notes.append(text)

    def render(self) -> str:
        if not self.errors:
            return "\n".join(self.notes)
        columns = [c for c in ("float64", "float32") if any(c in r for r in self.errors.values())]
        for row in self.errors.values():
            columns.extend(c for c in row if c not in columns)
        width = max(len(row) for row in self.errors) + 2
        cell = max(12, *(len(c) + 2 for c in columns))
        lines = ["largest relative error against PyTorch, max|a - b| / max(|a|, |b|)"]
        lines += [f"  {c}: {COLUMN_NOTES[c]}" for c in columns if c in COLUMN_NOTES]
        lines.append(f"{'':{width}}" + "".join(f"{c:>{cell}}" for c in columns))

        placed: set[str] = set()
        for title, belongs in SECTIONS:
            rows = [r for r in self.errors if r not in placed and belongs(r)]
            if title.startswith("operations"):
                rows.sort(key=OPERATIONS.index)
            if not rows:
                continue
            lines.append(f"-- {title}")
            for name in rows:
                row = self.errors[name]
                cells = "".join(
                    f"{row[c]:>{cell}.1e}" if c in row else f"{'-':>{cell}}" for c in columns
                )
                lines.append(f"{name:{width}}{cells}")
            placed.update(rows)
        return "\n".join([*lines, "", *self.notes])


@pytest.fixture(scope="session", autouse=True)
def torch_on_one_thread() -> Iterator[None]:
    """Run torch on one thread while the parity tests run: they step it beside scratchnet in
    one process, and the comparisons do not depend on its thread count.

    On two threads each torch operation ends at an OpenMP barrier, which waits for a time
    slice whenever another process holds the other core. Measured within a minute, with one
    other busy process (load 2.5), one CNN step at batch 32 took 660-710 ms on two threads and
    40-65 ms on one (README, Performance).
    """
    try:
        import torch
    except ImportError:  # the tests that need torch skip themselves
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def parity_errors() -> Iterator[ErrorTable]:
    table = ErrorTable()
    yield table
    if table.errors or table.notes:
        print("\n\n" + table.render())
