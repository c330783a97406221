"""The computation graph behind a tensor, drawn with Graphviz (as micrograd's trace_graph).

`to_dot(y)` walks back from y through each tensor's creator (`y.grad_fn`: the Function that made
it and its inputs, `ctx.parents`) and writes one DOT node per tensor and one edge per use:

    leaf / constant / Function name     what made the tensor
    shape and dtype
    value (a few elements) or norm      ||x|| = sqrt(sum(x**2)) of a larger tensor
    grad (a few elements) or grad norm  once backward() has set .grad

An edge runs from each input to the tensor its Function made, so the picture reads like the
forward pass and backward() walks it against the arrows. A tensor used twice is one node with
two out-edges: backward() sums the two gradients that come back along them.

backward() frees the graph as it goes (each `grad_fn` is dropped once used, as in PyTorch), so a
graph drawn after backward needs `backward(retain_graph=True)`. Only leaves keep a `.grad`.

`render(y, "graph.svg")` runs Graphviz's `dot` (Debian's `graphviz` package; `make graphviz`
installs it) to turn the text into a picture.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from scratchnet.tensor import Tensor

__all__ = ["render", "to_dot"]

# Tensors of at most this many elements show their values; larger ones show their norm.
MAX_VALUES = 4

_FILL = {"op": "white", "leaf": "lightblue", "constant": "gray90"}


def to_dot(tensor: Tensor, names: Mapping[str, Tensor] | None = None) -> str:
    """The graph that made `tensor`, as Graphviz DOT text.

    `names` labels tensors by name, as torchviz's `params=`: for example
    `dict(model.named_parameters())`, or `{"x": x, "loss": loss}`.

    The walk is an explicit stack (as backward's topological order), so a graph of 10,000
    nodes draws as well as one of ten.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    name_of = {id(t): name for name, t in (names or {}).items()}

    # Every tensor once, in the order the walk meets it: the output first.
    seen: dict[int, Tensor] = {}
    stack = [tensor]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        if node.grad_fn is not None:
            stack.extend(p for p in reversed(node.grad_fn.parents) if id(p) not in seen)

    node_ids = {key: f"t{i}" for i, key in enumerate(seen)}
    lines = [
        "digraph scratchnet {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
    ]
    for key, node in seen.items():
        lines.append(_node_line(node, node_ids[key], name_of.get(key), node is tensor))
    for key, node in seen.items():
        if node.grad_fn is not None:  # one edge per use of an input, so x + x draws two
            lines.extend(f"  {node_ids[id(p)]} -> {node_ids[key]};" for p in node.grad_fn.parents)
    return "\n".join([*lines, "}"]) + "\n"


def _node_line(t: Tensor, node_id: str, name: str | None, is_root: bool) -> str:
    if t.grad_fn is not None:
        kind, title = "op", t.grad_fn.fn.__name__
    elif t.requires_grad:
        kind, title = "leaf", "leaf"
    else:
        kind, title = "constant", "constant"
    if name is not None:
        title = f"{name} = {title}" if kind == "op" else name

    lines = [title, f"{tuple(t.shape)} {t.dtype}", _describe("value", t.data)]
    if t.grad is not None:
        lines.append(_describe("grad", t.grad))
    label = "\\n".join(_escape(line) for line in lines)
    border = ", penwidth=2" if is_root else ""
    return f'  {node_id} [label="{label}", fillcolor="{_FILL[kind]}"{border}];'


def _describe(what: str, array: np.ndarray) -> str:
    """The values of a small array, or the norm of a larger one."""
    if array.size <= MAX_VALUES:
        values = np.array2string(
            np.asarray(array), separator=", ", formatter={"float_kind": lambda v: f"{v:.4g}"}
        )
        return f"{what} {values}"
    norm = float(np.linalg.norm(np.asarray(array, dtype=np.float64).ravel()))
    return f"norm {norm:.4g}" if what == "value" else f"{what} norm {norm:.4g}"


def _escape(text: str) -> str:
    """A string safe inside a DOT double-quoted label."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render(
    tensor: Tensor,
    path: str | Path,
    format: str = "svg",
    names: Mapping[str, Tensor] | None = None,
) -> Path:
    """Draw the graph behind `tensor` into `path` (svg, png, pdf, ...) with Graphviz's `dot`."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "render: Graphviz's `dot` is not installed (Debian: apt-get install graphviz, or "
            "`make graphviz`); to_dot(tensor) gives the DOT text without it"
        )
    path = Path(path)
    result = subprocess.run(
        [dot, f"-T{format}", "-o", str(path)],
        input=to_dot(tensor, names),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"render: dot -T{format} failed: {result.stderr.strip()}")
    return path
