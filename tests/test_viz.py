"""scratchnet.viz: the DOT text of a graph (nodes, edges, labels, gradients) and its SVG."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import viz


def _nodes(dot: str) -> dict[str, str]:
    """{node id: label} from to_dot's text."""
    return dict(re.findall(r'^  (t\d+) \[label="((?:[^"\\]|\\.)*)"', dot, flags=re.M))


def _edges(dot: str) -> list[tuple[str, str]]:
    return re.findall(r"^  (t\d+) -> (t\d+);", dot, flags=re.M)


def _node_of(nodes: dict[str, str], title: str) -> str:
    """The id of the one node whose label starts with `title`."""
    found = [key for key, label in nodes.items() if label.split("\\n")[0] == title]
    assert len(found) == 1, (title, nodes)
    return found[0]


def test_nodes_edges_and_labels_of_an_expression():
    a = sn.tensor(2.0, requires_grad=True)
    b = sn.tensor(-3.0, requires_grad=True)
    c = a * b
    d = c + 1.5
    dot = viz.to_dot(d, names={"a": a, "b": b})

    assert dot.startswith("digraph scratchnet {") and dot.rstrip().endswith("}")
    nodes = _nodes(dot)
    assert len(nodes) == 5  # a, b, the constant 1.5, Mul and Add
    a_id, b_id = _node_of(nodes, "a"), _node_of(nodes, "b")
    mul, add, const = _node_of(nodes, "Mul"), _node_of(nodes, "Add"), _node_of(nodes, "constant")
    assert sorted(_edges(dot)) == sorted([(a_id, mul), (b_id, mul), (mul, add), (const, add)])

    assert nodes[mul] == "Mul\\n() float32\\nvalue -6"
    assert nodes[add] == "Add\\n() float32\\nvalue -4.5"
    assert nodes[const] == "constant\\n() float32\\nvalue 1.5"
    assert "grad" not in dot  # no backward yet
    assert re.search(rf"^  {add} .*penwidth=2", dot, flags=re.M)  # the output stands out


def test_a_tensor_used_twice_is_one_node_with_two_out_edges():
    a = sn.tensor([1.0, 2.0], requires_grad=True)
    b = a * 3.0
    c = a + b  # a feeds Mul and Add
    dot = viz.to_dot(c, names={"a": a})
    nodes = _nodes(dot)
    a_id = _node_of(nodes, "a")
    assert [src for src, _ in _edges(dot)].count(a_id) == 2
    assert {dst for src, dst in _edges(dot) if src == a_id} == {
        _node_of(nodes, "Mul"),
        _node_of(nodes, "Add"),
    }

    twice = a + a  # one input used twice by one op: two edges, still one node
    dot = viz.to_dot(twice, names={"a": a})
    a_id = _node_of(_nodes(dot), "a")
    assert _edges(dot).count((a_id, _node_of(_nodes(dot), "Add"))) == 2


def test_gradients_are_shown_after_backward():
    sn.manual_seed(0)
    model = sn.nn.Linear(4, 3)
    x = sn.randn(2, 4)
    loss = sn.nn.functional.cross_entropy(model(x), sn.tensor([0, 2]))
    loss.backward(retain_graph=True)

    nodes = _nodes(viz.to_dot(loss, names={**dict(model.named_parameters()), "x": x}))
    weight = nodes[_node_of(nodes, "weight")].split("\\n")
    assert weight[1] == "(3, 4) float32"
    assert weight[2] == f"norm {np.linalg.norm(model.weight.data.astype(np.float64)):.4g}"
    assert weight[3] == f"grad norm {np.linalg.norm(model.weight.grad.astype(np.float64)):.4g}"
    bias = nodes[_node_of(nodes, "bias")].split("\\n")
    assert bias[3] == "grad [" + ", ".join(f"{v:.4g}" for v in model.bias.grad) + "]"
    assert "grad" not in nodes[_node_of(nodes, "x")]  # a constant input gets no gradient
    assert nodes[_node_of(nodes, "LinearFunction")].split("\\n")[1] == "(2, 3) float32"
    assert nodes[_node_of(nodes, "CrossEntropy")].split("\\n")[1] == "() float32"


def test_a_deep_chain_draws_without_recursion():
    x = sn.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    dot = viz.to_dot(y)
    assert len(_nodes(dot)) == 1 + 2 * 5000  # x, and each Add with its constant
    assert len(_edges(dot)) == 2 * 5000


def test_quotes_in_names_are_escaped():
    a = sn.tensor(1.0, requires_grad=True)
    dot = viz.to_dot(a * 2.0, names={'say "hi"': a})
    assert 'label="say \\"hi\\"\\n' in dot


def test_to_dot_rejects_what_is_not_a_tensor():
    with pytest.raises(TypeError, match="to_dot: expected a Tensor, got ndarray"):
        viz.to_dot(np.ones(3))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_writes_an_svg(tmp_path):
    a = sn.tensor(2.0, requires_grad=True)
    y = (a * a).sum()
    y.backward(retain_graph=True)
    path = viz.render(y, tmp_path / "graph.svg", names={"a": a})
    svg = path.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert svg.count('class="node"') == 3  # a, Mul, Sum
    assert ">grad 4<" in svg


def test_render_without_dot_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Graphviz's `dot` is not installed"):
        viz.render(sn.tensor(1.0), tmp_path / "graph.svg")
    assert not (tmp_path / "graph.svg").exists()
