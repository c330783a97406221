"""Draw the two computation graphs that README.md shows, into docs/ (needs Graphviz's `dot`).

.venv/bin/python docs/make_graphs.py
"""

from pathlib import Path

import scratchnet as sn
from scratchnet import viz

DOCS = Path(__file__).resolve().parent


def expression() -> None:
    """A tiny expression in which `a` is used twice: e = (a * b + a) * 2."""
    a = sn.tensor(2.0, requires_grad=True)
    b = sn.tensor(-3.0, requires_grad=True)
    e = (a * b + a) * 2
    e.backward(retain_graph=True)  # keep the graph, to draw it with its gradients
    viz.render(e, DOCS / "graph-expression.svg", names={"a": a, "b": b, "e": e})


def linear_step() -> None:
    """One Linear + cross-entropy step on a batch of two 4-feature inputs and three classes."""
    sn.manual_seed(0)
    model = sn.nn.Linear(4, 3)
    x = sn.randn(2, 4)
    target = sn.tensor([0, 2])
    loss = sn.nn.functional.cross_entropy(model(x), target)
    loss.backward(retain_graph=True)
    names = {**dict(model.named_parameters()), "x": x, "loss": loss}
    viz.render(loss, DOCS / "graph-linear-step.svg", names=names)


if __name__ == "__main__":
    expression()
    linear_step()
    print(f"wrote {DOCS / 'graph-expression.svg'} and {DOCS / 'graph-linear-step.svg'}")
