"""Factories: torch's sizes, default dtypes and values; the random ones follow manual_seed."""

import numpy as np
import pytest

import scratchnet as sn

RANDOM = [sn.rand, sn.randn, lambda *size, **kw: sn.randint(0, 10, size, **kw)]


@pytest.mark.parametrize("size", [(2, 3), ((2, 3),), ([2, 3],), ((),), ((0, 4),)])
def test_sizes_as_ints_or_one_sequence(size):
    expected = np.zeros(size[0] if len(size) == 1 else size).shape
    for factory in (sn.zeros, sn.ones, sn.empty, sn.rand, sn.randn):
        assert factory(*size).shape == expected, factory.__name__
    assert sn.full(expected, 1.5).shape == expected


def test_values_and_default_dtypes_are_torchs():
    assert sn.zeros(2, 2).dtype == np.float32 and not sn.zeros(2).data.any()
    np.testing.assert_array_equal(sn.ones(3).data, [1, 1, 1])
    assert sn.full((2,), 7).dtype == np.int64
    assert sn.full((2,), True).dtype == np.bool_
    assert sn.full((2,), 0.5).dtype == np.float32
    np.testing.assert_array_equal(sn.eye(2, 3).data, [[1, 0, 0], [0, 1, 0]])
    assert sn.eye(3).shape == (3, 3) and sn.eye(3).dtype == np.float32
    assert sn.randint(5, (4,)).dtype == np.int64


@pytest.mark.parametrize(
    "args, expected, dtype",
    [
        ((5,), [0, 1, 2, 3, 4], np.int64),
        ((2, 8, 3), [2, 5], np.int64),
        ((5, 0, -2), [5, 3, 1], np.int64),
        ((0.0, 1.0, 0.25), [0, 0.25, 0.5, 0.75], np.float32),
        ((1, 2.5), [1.0, 2.0], np.float32),
        ((3, 3), [], np.int64),
    ],
)
def test_arange(args, expected, dtype):
    got = sn.arange(*args)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.data, expected)


def test_linspace_includes_both_ends_exactly():
    got = sn.linspace(-1.0, 0.7, 7, dtype=np.float64)
    assert got.data[0] == -1.0 and got.data[-1] == 0.7
    np.testing.assert_allclose(got.data, np.linspace(-1.0, 0.7, 7), rtol=1e-15)
    assert sn.linspace(0, 1, 1).data.tolist() == [0.0]
    assert sn.linspace(0, 1, 0).shape == (0,)


def test_like_forms_take_size_and_dtype():
    x = sn.tensor(np.ones((2, 3), dtype=np.float64))
    for factory in (sn.zeros_like, sn.ones_like, sn.empty_like, sn.rand_like, sn.randn_like):
        y = factory(x)
        assert y.shape == (2, 3) and y.dtype == np.float64, factory.__name__
    assert sn.full_like(x, 4).data.tolist() == [[4.0] * 3] * 2
    assert sn.zeros_like(x, dtype=np.float32).dtype == np.float32
    labels = sn.randint_like(sn.tensor(np.zeros(50, dtype=np.int64)), 3, 6)
    assert labels.dtype == np.int64 and set(labels.data.tolist()) <= {3, 4, 5}
    assert set(sn.randint_like(labels, 2).data.tolist()) == {0, 1}


@pytest.mark.parametrize("factory", RANDOM)
def test_random_factories_follow_manual_seed(factory):
    sn.manual_seed(3)
    a = factory(4, 5)
    sn.manual_seed(3)
    b = factory(4, 5)
    c = factory(4, 5)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(b.data, c.data)


def test_random_distributions():
    sn.manual_seed(0)
    u, z = sn.rand(10_000), sn.randn(10_000, dtype=np.float64)
    assert u.dtype == np.float32 and u.data.min() >= 0 and u.data.max() < 1
    assert abs(u.data.mean() - 0.5) < 0.02
    assert z.dtype == np.float64 and abs(z.data.mean()) < 0.05 and abs(z.data.std() - 1) < 0.05
    ints = sn.randint(-2, 3, (1000,))
    assert set(ints.data.tolist()) == {-2, -1, 0, 1, 2}


def test_requires_grad():
    w = sn.randn(3, 2, requires_grad=True)
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad, 2 * w.data)
    with pytest.raises((TypeError, RuntimeError), match="float"):
        sn.arange(3, requires_grad=True)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: sn.zeros(2, -1), ValueError, r"zeros: negative dimension -1"),
        (lambda: sn.ones(2.5), TypeError, "ones: size must be ints"),
        (lambda: sn.randn(2, dtype=np.int64), TypeError, "randn: needs a floating dtype"),
        (lambda: sn.rand_like(sn.tensor(np.zeros(2, np.int64))), TypeError, "floating"),
        (lambda: sn.arange(0, 5, 0), ValueError, "step must be nonzero"),
        (lambda: sn.arange(5, 0, 1), ValueError, "other way"),
        (lambda: sn.linspace(0, 1, -3), ValueError, "linspace: steps"),
        (lambda: sn.randint(5, 5, (2,)), ValueError, "empty"),
        (lambda: sn.randint(5), TypeError, "randint"),
        (lambda: sn.zeros(2, dtype="nonsense"), TypeError, "not a dtype"),
    ],
)
def test_bad_arguments_get_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
