"""The engine's behaviour: graph building, accumulation, broadcasting, deep graphs, no_grad."""

import sys

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import Tensor


def test_float32_by_default_and_float64_kept():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.zeros(3)).dtype == np.float64
    a = Tensor(np.ones(3), requires_grad=True)
    b = (a * 2 + 1).exp().log() / 3 - a
    assert b.dtype == np.float64
    f = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    g = ((f * 2.5) @ np.ones((3, 2), dtype=np.float32)).mean()
    assert g.dtype == np.float32
    g.backward()
    assert f.grad.dtype == np.float32


def test_attributes():
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert t.shape == (2, 3)
    assert t.requires_grad
    assert t.grad is None
    assert isinstance(t.data, np.ndarray)


def test_tensor_used_twice_gets_summed_gradient():
    a = Tensor(np.array([1.5, -2.0]), requires_grad=True)
    b = a + a
    c = b + b
    c.backward(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(a.grad, [4.0, 4.0])


def test_diamond_graph():
    # y = a*a + exp(a): dy/da = 2a + exp(a)
    a = Tensor(np.array([0.3, -1.2]), requires_grad=True)
    y = (a * a + a.exp()).sum()
    y.backward()
    np.testing.assert_allclose(a.grad, 2 * a.data + np.exp(a.data))


def test_gradients_accumulate_across_backward_calls():
    a = Tensor(np.array([2.0]), requires_grad=True)
    (a * 3).sum().backward()
    (a * 3).sum().backward()
    np.testing.assert_array_equal(a.grad, [6.0])


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3, 4), (4,)), ((3, 4), (1, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((), (2, 2))],
)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_broadcast_gradients_reduce_to_input_shape(shape_a, shape_b, op):
    rng = np.random.default_rng(0)
    a = Tensor(rng.uniform(1, 2, shape_a), requires_grad=True)
    b = Tensor(rng.uniform(1, 2, shape_b), requires_grad=True)
    y = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[op]
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    assert a.grad.shape == a.shape
    assert b.grad.shape == b.shape
    # d(sum(dy * y))/da against numpy with explicit broadcasting
    A, B = np.broadcast_arrays(a.data, b.data)
    expected_a = {"add": dy, "sub": dy, "mul": dy * B, "div": dy / B}[op]
    expected_b = {"add": dy, "sub": -dy, "mul": dy * A, "div": -dy * A / B**2}[op]
    np.testing.assert_allclose(a.grad, _sum_to(expected_a, a.shape))
    np.testing.assert_allclose(b.grad, _sum_to(expected_b, b.shape))


def _sum_to(x, shape):
    while x.ndim > len(shape):
        x = x.sum(0)
    for i, n in enumerate(shape):
        if n == 1:
            x = x.sum(i, keepdims=True)
    return x


def test_deep_chain_does_not_hit_recursion_limit():
    depth = max(10_000, sys.getrecursionlimit() * 3)
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(depth):
        y = y + 0.0
    y.backward()
    assert x.grad == 1.0


def test_no_grad_builds_no_graph():
    a = Tensor(np.ones(2), requires_grad=True)
    with sn.no_grad():
        b = a * 2
    assert not b.requires_grad
    assert b.grad_fn is None
    assert sn.is_grad_enabled()

    @sn.no_grad()
    def f(t):
        return t * 3

    assert not f(a).requires_grad


def test_backward_on_non_scalar_without_gradient_is_an_error():
    a = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (a * 2).backward()


def test_backward_without_requires_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(1)).sum().backward()


def test_backward_gradient_shape_checked():
    a = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(ValueError, match="shape"):
        (a * 2).backward(np.ones(3))


def test_graph_freed_after_backward():
    a = Tensor(np.ones(2), requires_grad=True)
    b = a * 2
    c = b.sum()
    c.backward()
    assert c.grad_fn is None and b.grad_fn is None


def test_integer_and_bool_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype"):
        Tensor(np.array([True]), requires_grad=True)
    labels = Tensor(np.arange(3))
    with pytest.raises(RuntimeError, match="got int64"):
        labels.requires_grad = True
    with pytest.raises(RuntimeError, match="floating point"):
        labels.requires_grad_()


def test_matmul_shape_mismatch_is_clear():
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        a @ b


def test_reshape_mismatch_is_clear():
    with pytest.raises(RuntimeError, match=r"reshape: shape \[4, 2\] is invalid .* \(6,\)"):
        Tensor(np.ones(6)).reshape(4, 2)


def test_item_and_repr():
    t = Tensor(np.array([[2.5]]))
    assert t.item() == 2.5
    assert "tensor(" in repr(t)


def test_operators_and_methods_route_to_the_ops_functions():
    """scratchnet.ops adds Tensor's operators (tensor.py cannot import it): each one is there, and
    each one builds the node of its Function."""
    from scratchnet import ops

    a = Tensor(np.array([[1.0, -2.0], [3.0, 4.0]]), requires_grad=True)
    expected = {
        ops.Add: (a + 1, 1 + a),
        ops.Sub: (a - 1, 1 - a),
        ops.Mul: (a * 2, 2 * a),
        ops.Div: (a / 2, 2 / a),
        ops.MatMul: (a @ a, np.eye(2) @ a),
        ops.Neg: (-a,),
        ops.Index: (a[0],),
        ops.Exp: (a.exp(),),
        ops.Softmax: (a.softmax(0),),
        ops.Log: (a.log(),),
        ops.ReLU: (a.relu(),),
        ops.LogSoftmax: (a.log_softmax(1),),
        ops.Sum: (a.sum(1),),
        ops.Mean: (a.mean(),),
        ops.Reshape: (a.reshape(4), a.view(1, 4), a.flatten()),
        ops.Permute: (a.T, a.transpose(1, 0), a.permute(1, 0), a.t(), a.mT),
    }
    for fn, outputs in expected.items():
        for out in outputs:
            assert out.grad_fn.fn is fn
    np.testing.assert_array_equal(a.relu().data, [[1.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(a.softmax(1).data.sum(1), [1.0, 1.0])


def test_a_fresh_process_importing_only_the_tensor_module_has_the_operators():
    import subprocess

    code = "from scratchnet.tensor import Tensor; print((Tensor([2.0]) * 3).relu().item())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "6.0"
