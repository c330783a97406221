"""Tensor semantics as PyTorch's: dims, shape ops, 0-d tensors, comparisons, conversions,
in-place writes and the version counter that guards backward against them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import Tensor
from scratchnet.autograd import gradient_error

RNG = np.random.default_rng(0)


def grad_error(fn, *shapes):
    arrays = [RNG.standard_normal(shape) for shape in shapes]
    return gradient_error(fn, arrays)


# -- transpose, permute, t, T, mT -----------------------------------------------------------


def test_transpose_swaps_two_dims():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Tensor(x).transpose(0, 1).data, x.T)
    y = np.arange(24.0).reshape(2, 3, 4)
    for dim0, dim1 in [(0, 1), (-1, 0), (2, -2), (1, 1)]:
        expected = np.swapaxes(y, dim0, dim1)
        np.testing.assert_array_equal(Tensor(y).transpose(dim0, dim1).data, expected)
        np.testing.assert_array_equal(sn.transpose(Tensor(y), dim0, dim1).data, expected)


@pytest.mark.parametrize("dims", [(-1, 0), (0, 2), (1, -1)])
def test_transpose_gradient_with_negative_dims(dims):
    assert grad_error(lambda a: a.transpose(*dims) * 1.0, (2, 3, 4)) < 1e-8


def test_permute_t_T_and_mT():
    y = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(Tensor(y).permute(2, 0, 1).data, y.transpose(2, 0, 1))
    np.testing.assert_array_equal(Tensor(y).permute((-1, 0, 1)).data, y.transpose(2, 0, 1))
    np.testing.assert_array_equal(Tensor(y).T.data, y.transpose(2, 1, 0))
    np.testing.assert_array_equal(Tensor(y).mT.data, y.transpose(0, 2, 1))
    m = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Tensor(m).t().data, m.T)
    assert Tensor(np.arange(3.0)).t().shape == (3,)
    assert grad_error(lambda a: a.permute(1, 2, 0), (2, 3, 4)) < 1e-8
    assert grad_error(lambda a: a.mT, (2, 3, 4)) < 1e-8
    assert grad_error(lambda a: a.T, (2, 3, 4)) < 1e-8


def test_bad_dims_name_the_op_the_dim_and_the_shape():
    x = Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match=r"transpose: dim 2 .* shape \(2, 3\) .*\[-2, 1\]"):
        x.transpose(0, 2)
    with pytest.raises(IndexError, match=r"unsqueeze: dim 4 .* shape \(2, 3, 1\)"):
        x.unsqueeze(4)
    with pytest.raises(IndexError, match=r"size: dim -3"):
        x.size(-3)
    with pytest.raises(IndexError, match=r"flatten: dim 5"):
        x.flatten(5)
    with pytest.raises(IndexError, match="flatten: start_dim 1 comes after end_dim 0"):
        x.flatten(1, 0)
    with pytest.raises(RuntimeError, match=r"permute: the number of dims \(3\)"):
        x.permute(0, 1, 2)
    with pytest.raises(RuntimeError, match=r"permute: dims .* repeat"):
        x.permute(0, -2)
    with pytest.raises(RuntimeError, match=r"t: expects a tensor with <= 2 dimensions"):
        Tensor(np.zeros((2, 3, 4))).t()
    with pytest.raises(RuntimeError, match="mT: needs at least 2 dims"):
        _ = Tensor(np.zeros(3)).mT
    with pytest.raises(TypeError, match="transpose: dim must be an int"):
        x.transpose(0, 1.0)


# -- shape ops ------------------------------------------------------------------------------


def test_unsqueeze_and_squeeze():
    x = Tensor(np.zeros((2, 1, 3, 1)))
    assert x.unsqueeze(0).shape == (1, 2, 1, 3, 1)
    assert x.unsqueeze(-1).shape == (2, 1, 3, 1, 1)
    assert x.unsqueeze(-5).shape == (1, 2, 1, 3, 1)
    assert x.squeeze().shape == (2, 3)
    assert x.squeeze(1).shape == (2, 3, 1)
    assert x.squeeze(-1).shape == (2, 1, 3)
    assert x.squeeze(0).shape == (2, 1, 3, 1)  # not of size 1: left alone, as in torch
    assert x.squeeze((1, 3)).shape == (2, 3)
    assert sn.unsqueeze(sn.tensor(2.0), 0).shape == (1,)
    assert sn.squeeze(Tensor(np.zeros((1, 1)))).shape == ()
    assert grad_error(lambda a: a.unsqueeze(1).squeeze(-1), (3, 4, 1)) < 1e-8


def test_expand_and_expand_as():
    x = np.arange(3.0).reshape(3, 1)
    y = Tensor(x).expand(2, -1, 4)
    np.testing.assert_array_equal(y.data, np.broadcast_to(x, (2, 3, 4)))
    assert Tensor(x).expand((3, 5)).shape == (3, 5)
    assert Tensor(x).expand_as(Tensor(np.zeros((2, 3, 2)))).shape == (2, 3, 2)
    assert grad_error(lambda a: a.expand(2, 3, 4), (3, 1)) < 1e-8
    assert grad_error(lambda a: a.expand(-1, 5, 2), (2, 1, 2)) < 1e-8
    with pytest.raises(RuntimeError, match=r"expand: the expanded size 4 must match .* 3"):
        Tensor(x).expand(4, 2)
    with pytest.raises(RuntimeError, match="expand: -1 is not allowed for a new leading dim"):
        Tensor(x).expand(-1, 3, 2)
    with pytest.raises(RuntimeError, match=r"expand: the number of sizes \(1\)"):
        Tensor(x).expand(3)


def test_repeat():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Tensor(x).repeat(2, 2).data, np.tile(x, (2, 2)))
    np.testing.assert_array_equal(Tensor(x).repeat(3, 1, 2).data, np.tile(x, (3, 1, 2)))
    assert grad_error(lambda a: a.repeat(2, 3), (2, 3)) < 1e-8
    assert grad_error(lambda a: a.repeat(2, 1, 3), (2, 2)) < 1e-8
    with pytest.raises(RuntimeError, match=r"repeat: needs one non-negative count per dim"):
        Tensor(x).repeat(2)


def test_flatten_view_and_reshape_with_negative_dims():
    x = Tensor(np.zeros((2, 3, 4, 5)))
    assert x.flatten().shape == (120,)
    assert x.flatten(1).shape == (2, 60)
    assert x.flatten(-3, -2).shape == (2, 12, 5)
    assert x.flatten(-1).shape == (2, 3, 4, 5)
    assert sn.tensor(1.0).flatten().shape == (1,)
    assert x.view(-1, 5).shape == (24, 5)
    assert x.reshape(6, -1).shape == (6, 20)
    assert x.view_as(Tensor(np.zeros((4, 30)))).shape == (4, 30)
    with pytest.raises(RuntimeError, match=r"reshape: shape \[-1, -1\] is invalid"):
        x.view(-1, -1)
    assert grad_error(lambda a: a.flatten(-2) * 1.0, (2, 3, 2)) < 1e-8


# -- 0-d tensors ----------------------------------------------------------------------------


def test_zero_dim_tensors_stay_zero_dim_through_every_op():
    x = sn.tensor(3.0)
    assert x.shape == () and x.dtype == np.float32
    y = sn.tensor(0.5)
    results = {
        "add": x + y,
        "sub": x - 1,
        "mul": 2 * x,
        "div": x / y,
        "neg": -x,
        "exp": x.exp(),
        "log": x.log(),
        "relu": x.relu(),
        "sum": x.sum(),
        "mean": x.mean(),
        "reshape": x.reshape(()),
        "transpose": x.transpose(0, -1),
        "T": x.T,
        "permute": x.permute(),
        "squeeze": x.squeeze(),
        "clone": x.clone(),
        "double": x.double(),
        "index": x[()],
        "expand": x.expand(()),
        "repeat": x.repeat(()),
    }
    for name, result in results.items():
        assert result.shape == (), f"{name} gave shape {result.shape}"


@pytest.mark.parametrize(
    "op",
    [
        lambda a: a.relu(),
        lambda a: a * a,
        lambda a: a.exp(),
        lambda a: a.sum(),
        lambda a: a.transpose(0, 0),
        lambda a: a.clone(),
        lambda a: a.unsqueeze(0).squeeze(0),
    ],
)
def test_zero_dim_backward_keeps_the_shape(op):
    x = sn.tensor(1.5, requires_grad=True)
    op(x).backward()
    assert x.grad.shape == ()
    assert gradient_error(op, [np.array(1.5)]) < 1e-8


def test_tensor_infers_dtypes_as_torch():
    assert sn.tensor(3).dtype == np.int64
    assert sn.tensor([1.0, 2]).dtype == np.float32
    assert sn.tensor(True).dtype == np.bool_
    assert sn.tensor(np.zeros(2)).dtype == np.float64
    assert Tensor([1, 2]).dtype == np.float32  # torch.Tensor: always float
    assert Tensor(np.array([True, False])).dtype == np.bool_
    with pytest.raises(TypeError, match="tensor: unsupported dtype <U1"):
        Tensor(np.array(["a"]))


def test_iterating_and_len():
    assert [t.item() for t in Tensor(np.array([1.0, 2.0]))] == [1.0, 2.0]
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(sn.tensor(1.0))
    with pytest.raises(TypeError, match="len"):
        len(sn.tensor(1.0))


# -- size, numel, dim -----------------------------------------------------------------------


def test_size_numel_dim():
    x = Tensor(np.zeros((2, 3, 4)))
    assert x.size() == (2, 3, 4) and isinstance(x.size(), tuple)
    assert x.size() == x.shape and isinstance(x.shape, sn.Size)
    assert x.size(1) == 3 and x.size(-1) == 4
    assert x.numel() == 24 and x.size().numel() == 24
    assert x.dim() == 3 and x.ndim == 3
    assert sn.tensor(1.0).size() == () and sn.tensor(1.0).numel() == 1
    assert Tensor(np.zeros((0, 3))).numel() == 0


# -- comparisons ----------------------------------------------------------------------------


def test_comparisons_give_bool_tensors_without_gradient():
    a = Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    b = Tensor(np.array([[2.0], [1.0]]))
    cases = {
        (a < b): np.less,
        (a <= b): np.less_equal,
        (a > b): np.greater,
        (a >= b): np.greater_equal,
        (a == b): np.equal,
        (a != b): np.not_equal,
    }
    for result, ufunc in cases.items():
        assert isinstance(result, Tensor) and result.dtype == np.bool_
        assert not result.requires_grad and result.shape == (2, 3)
        np.testing.assert_array_equal(result.data, ufunc(a.data, b.data))
    np.testing.assert_array_equal((2.0 < a).data, [[False, False, True]])  # noqa: SIM300
    np.testing.assert_array_equal((a.eq(2.0)).data, [[False, True, False]])
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        np.testing.assert_array_equal(getattr(a, name)(b).data, getattr(sn, name)(a, b).data)
    assert sn.equal(a, a.clone()) and not a.equal(b)
    with pytest.raises(RuntimeError, match=r"lt: shapes \(1, 3\) and \(2,\) do not broadcast"):
        _ = a < Tensor(np.zeros(2))


def test_comparison_with_a_number_uses_the_tensors_dtype():
    # 0.1 in float32 is above the float64 0.1: torch compares in the tensor's dtype.
    x = Tensor(np.array([0.1], dtype=np.float32))
    assert (x == 0.1).item() and not (x > 0.1).item()


def test_tensors_stay_hashable_by_identity():
    a, b = Tensor(np.ones(2)), Tensor(np.ones(2))
    assert len({a, b}) == 2 and {a: 1}[a] == 1
    assert hash(a) != hash(b)


def test_a_bool_tensor_indexes():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = x[x > 0]
    np.testing.assert_array_equal(y.data, [1.0, 3.0])
    y.backward(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 2.0])


# -- conversions ----------------------------------------------------------------------------


def test_numpy_and_python_conversions():
    t = Tensor(np.array([[2.5]]))
    assert np.asarray(t) is t.data
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.array(t, copy=True) is not t.data
    assert float(t) == 2.5 and int(t) == 2 and bool(t) and t.item() == 2.5
    assert not bool(Tensor(np.array([0.0])))
    assert isinstance(sn.tensor(3).item(), int)
    for convert in (float, int, bool):
        with pytest.raises(RuntimeError, match="with 2 elements"):
            convert(Tensor(np.ones(2)))
    with pytest.raises(RuntimeError, match="with 0 elements cannot be converted"):
        Tensor(np.ones(0)).item()


def test_dtype_conversions_are_differentiable_between_floats():
    x = Tensor(np.array([1.5, -2.0], dtype=np.float32), requires_grad=True)
    assert x.to(np.float32) is x and x.float() is x
    y = x.double()
    assert y.dtype == np.float64 and y.requires_grad
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, 2 * x.data)
    assert x.to(sn.float64, copy=True).dtype == np.float64
    assert x.to("cpu") is x and x.to(Tensor(np.zeros(1))).dtype == np.float64
    labels = x.long()
    assert labels.dtype == np.int64 and not labels.requires_grad
    np.testing.assert_array_equal(labels.data, [1, -2])
    assert x.to(sn.bool).dtype == np.bool_
    with pytest.raises(TypeError, match="to: float16 is not supported"):
        x.to(np.float16)
    with pytest.raises(TypeError, match="to: 'gpu' is not a dtype"):
        x.to("gpu")


def test_clone_copies_and_detach_shares():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = x.clone()
    assert c.requires_grad and not np.shares_memory(c.data, x.data)
    d = x.detach()
    assert not d.requires_grad and np.shares_memory(d.data, x.data)
    assert gradient_error(lambda a: a.clone() * a, [np.array([1.0, -3.0])]) < 1e-8


def test_import_scratchnet_gives_its_subpackages():
    code = (
        "import scratchnet as sn\n"
        "m = sn.nn.Linear(2, 1)\n"
        "opt = sn.optim.Adam(m.parameters(), lr=0.1)\n"
        "sn.nn.functional.relu(sn.tensor([1.0]))\n"
        "print(type(opt).__name__, sn.autograd.gradcheck.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Adam", "gradcheck"]


# -- in place and the version counter -------------------------------------------------------


def test_in_place_writes_outside_the_graph():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.zero_() is x and not x.data.any()
    x.fill_(2.0)
    x[0, 1] = 5.0
    x[1] = Tensor(np.array([7.0, 8.0, 9.0]))
    x[x > 6] = 0.0
    np.testing.assert_array_equal(x.data, [[2.0, 5.0, 2.0], [0.0, 0.0, 0.0]])
    assert x._version == 5
    with pytest.raises(ValueError, match=r"__setitem__: cannot assign a value of shape \(2,\)"):
        x[0] = np.ones(2)
    with pytest.raises(IndexError, match="__setitem__"):
        x[5] = 1.0
    with pytest.raises(RuntimeError, match=r"fill_: .* clone\(\) it"):
        Tensor(np.ones(2)).expand(3, 2).fill_(0.0)


def test_in_place_on_a_leaf_that_requires_grad_needs_no_grad():
    w = Tensor(np.ones(3), requires_grad=True)
    for write in (lambda: w.zero_(), lambda: w.fill_(1.0), lambda: w.__setitem__(0, 2.0)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
            write()
    with sn.no_grad():
        w[0] = 2.0
        w.fill_(3.0)
    np.testing.assert_array_equal(w.data, [3.0, 3.0, 3.0])
    y = w * 2
    with pytest.raises(RuntimeError, match="inside the graph are not supported"):
        y.zero_()


def test_backward_after_an_input_it_needs_was_written_raises():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x = Tensor(np.array([3.0, 4.0]))
    y = (w * x).sum()  # Mul keeps x for dw = dy * x
    x[0] = 10.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation: Mul kept"):
        y.backward()


def test_backward_after_an_input_it_does_not_need_was_written_works():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x = Tensor(np.array([3.0, 4.0]))
    y = (w + x).sum()  # Add keeps no input
    x.fill_(0.0)
    y.backward()
    np.testing.assert_array_equal(w.grad, [1.0, 1.0])


def test_writing_an_output_that_backward_needs_raises():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = x.relu()  # ReLU keeps y
    with sn.no_grad():
        y.fill_(1.0)
    with pytest.raises(RuntimeError, match="ReLU kept a tensor of shape \\(2,\\) at version 0"):
        y.sum().backward()


def test_writing_the_base_of_a_view_is_seen_through_the_view():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x = Tensor(np.arange(4.0))
    view = x.reshape(2, 2)[0]
    y = (w * view).sum()
    x.zero_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    detached = w.detach()
    z = (w * w).sum()
    with sn.no_grad():
        detached[1] = 0.0  # the same memory as w, so the same counter
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


def test_an_optimizer_step_between_two_backwards_still_trains():
    model = sn.nn.Linear(3, 1)
    opt = sn.optim.SGD(model.parameters(), lr=0.1)
    x = Tensor(RNG.standard_normal((8, 3)).astype(np.float32))
    target = Tensor(np.zeros((8, 1), dtype=np.float32))
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = ((model(x) - target) * (model(x) - target)).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
