"""Winograd F(4x4, 3x3): the transforms' algebra, every kernel against its NumPy twin, the
kernels' transposes, and the layer against im2col, in float64 to rounding and in float32 at the
CNN's shapes.

The largest relative error of each check is recorded in GRAD_ERRORS and printed at the end of
the module with `pytest -s`.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import scratchnet.nn.functional as F
import scratchnet.nn.winograd as winograd_module
from scratchnet import Tensor, nn
from scratchnet.kernels import winograd as wg
from scratchnet.kernels.winograd import AT, BT, NB, G
from scratchnet.nn.conv import Conv2dFunction, choose_algorithm
from scratchnet.nn.winograd import Winograd3x3Function
from scratchnet.runtime.threads import num_threads
from tests.gradcheck import ErrorLog, gradcheck, relative_error

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(4433)
GRAD_ERRORS = ErrorLog()
record = GRAD_ERRORS.record

TILE_COUNTS = [(1, 1), (2, 3), (4, 4)]  # (tiles_h, tiles_w)
CHANNELS = [1, 3]


def tol(dtype) -> float:
    return 1e-5 if dtype == np.float32 else 1e-13


def dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b))


def close_dots(left: float, right: float, rel: float = 1e-12) -> bool:
    return abs(left - right) <= rel * max(abs(left), abs(right), 1e-300)


# ---------------------------------------------------------------------------------------------
# The algebra
# ---------------------------------------------------------------------------------------------


def test_one_dimensional_identity_is_the_3_tap_correlation():
    for _ in range(20):
        d, g = rng.standard_normal(6), rng.standard_normal(3)
        y = AT @ ((G @ g) * (BT @ d))
        direct = np.array([g @ d[i : i + 3] for i in range(4)])
        np.testing.assert_allclose(y, direct, rtol=1e-14, atol=1e-14)


def test_two_dimensional_identity_is_the_3x3_correlation():
    d, g = rng.standard_normal((6, 6)), rng.standard_normal((3, 3))
    Y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
    direct = np.array([[np.sum(g * d[i : i + 3, j : j + 3]) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(Y, direct, rtol=1e-13, atol=1e-13)


def test_num_tiles_covers_the_output():
    assert [wg.num_tiles(n) for n in (1, 3, 4, 5, 7, 8, 9, 14, 28)] == [1, 1, 1, 2, 2, 2, 3, 4, 7]


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_transform_is_G_w_GT(dtype):
    w = rng.standard_normal((5, 3, 3, 3)).astype(dtype)
    U = wg.weight_transform(w)
    assert U.shape == (36, 5, 3) and U.dtype == dtype
    expected = np.einsum("ak,bl,ockl->aboc", G, G, w.astype(np.float64)).reshape(36, 5, 3)
    np.testing.assert_allclose(U, expected, rtol=tol(dtype), atol=tol(dtype))


# ---------------------------------------------------------------------------------------------
# Kernels against their NumPy twins (the layout's last axis is always NB)
# ---------------------------------------------------------------------------------------------


# The input side works on the layer's (n, C, H, W) input and its gradient: 6-wide tiles 4 apart,
# shifted by the padding (top, left) and cut to (H, W), with H + top and W + left at most 4 *
# tiles + 2, as in the layer; short chunks (n < NB).
# (tiles_h, tiles_w, n, H, W, top, left)
INPUT_CASES = [
    (1, 1, NB, 4, 4, 1, 1),
    (2, 3, 5, 7, 10, 1, 1),
    (4, 4, 1, 14, 14, 1, 1),
    (2, 2, NB, 6, 5, 0, 2),
    (3, 3, 3, 10, 13, 2, 0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", CHANNELS)
@pytest.mark.parametrize("tiles_h, tiles_w, n, H, W, top, left", INPUT_CASES)
def test_input_transform_matches_numpy(dtype, C, tiles_h, tiles_w, n, H, W, top, left):
    x = rng.standard_normal((n, C, H, W)).astype(dtype)
    got = np.full((36, C, tiles_h * tiles_w * NB), np.nan, dtype=dtype)
    want = np.empty_like(got)
    wg.input_transform_into(x, top, left, tiles_h, tiles_w, got)
    wg.input_transform_into_reference(x, top, left, tiles_h, tiles_w, want)
    np.testing.assert_allclose(got, want, rtol=tol(dtype), atol=tol(dtype) * 10)
    # The first tile by hand: BT @ d @ BT.T, d the 6x6 of sample 0, channel 0 at (-top, -left)
    d = np.zeros((6, 6))
    rows, cols = min(6 - top, H), min(6 - left, W)
    d[top : top + rows, left : left + cols] = x[0, 0, :rows, :cols]
    tile = (BT @ d @ BT.T).reshape(36)
    np.testing.assert_allclose(got[:, 0, 0], tile, rtol=tol(dtype), atol=tol(dtype) * 10)
    lanes = got.reshape(36, C, tiles_h * tiles_w, NB)
    assert np.all(lanes[..., n:] == 0)  # a short chunk's missing samples


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", CHANNELS)
@pytest.mark.parametrize("tiles_h, tiles_w, n, H, W, top, left", INPUT_CASES)
def test_input_transform_adjoint_matches_numpy(dtype, C, tiles_h, tiles_w, n, H, W, top, left):
    dV = rng.standard_normal((36, C, tiles_h * tiles_w * NB)).astype(dtype)
    got = np.full((n, C, H, W), np.nan, dtype=dtype)
    want = np.empty_like(got)
    wg.input_transform_adjoint_into(dV, tiles_h, tiles_w, top, left, got)
    wg.input_transform_adjoint_into_reference(dV, tiles_h, tiles_w, top, left, want)
    np.testing.assert_allclose(got, want, rtol=tol(dtype), atol=tol(dtype) * 10)
    # The first tile by hand: B @ v @ B.T, v the 6x6 of sample 0, channel 0, placed at
    # (-top, -left); only the rows and columns that neither the padding nor tile 2 touch.
    v = dV[:, 0, 0].astype(np.float64).reshape(6, 6)
    tile = BT.T @ v @ BT
    rows, cols = min(4, H + top) - top, min(4, W + left) - left
    np.testing.assert_allclose(
        got[0, 0, :rows, :cols], tile[top : top + rows, left : left + cols], rtol=tol(dtype)
    )


# The output side works on the layer's (n, C, OH, OW) arrays: outputs cut where the last
# tiles stick out (OH, OW not multiples of 4), short chunks (n < NB).
OUTPUT_CASES = [(1, 1, NB, 4, 4), (2, 3, 5, 7, 10), (4, 4, 1, 14, 13), (2, 2, NB, 8, 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", CHANNELS)
@pytest.mark.parametrize("tiles_h, tiles_w, n, OH, OW", OUTPUT_CASES)
def test_output_transform_matches_numpy(dtype, C, tiles_h, tiles_w, n, OH, OW):
    M = rng.standard_normal((36, C, tiles_h * tiles_w * NB)).astype(dtype)
    bias = rng.standard_normal(C).astype(dtype)
    got = np.full((n, C, OH, OW), np.nan, dtype=dtype)
    want = np.empty_like(got)
    wg.output_transform_into(M, tiles_h, tiles_w, bias, got)
    wg.output_transform_into_reference(M, tiles_h, tiles_w, bias, want)
    np.testing.assert_allclose(got, want, rtol=tol(dtype), atol=tol(dtype) * 10)
    # A tile by hand: AT @ m @ AT.T + bias, m the 6x6 of the last tile's last sample
    th, tw, c = tiles_h - 1, tiles_w - 1, C - 1
    m = M[:, c, (th * tiles_w + tw) * NB + n - 1].astype(np.float64).reshape(6, 6)
    tile = AT @ m @ AT.T + bias[c]
    i, j = 4 * th, 4 * tw
    expected = tile[: OH - i, : OW - j]
    np.testing.assert_allclose(got[n - 1, c, i:, j:], expected, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", CHANNELS)
@pytest.mark.parametrize("tiles_h, tiles_w, n, OH, OW", OUTPUT_CASES)
def test_output_transform_adjoint_matches_numpy(dtype, C, tiles_h, tiles_w, n, OH, OW):
    dy = rng.standard_normal((n, C, OH, OW)).astype(dtype)
    got = np.full((36, C, tiles_h * tiles_w * NB), np.nan, dtype=dtype)
    want = np.empty_like(got)
    wg.output_transform_adjoint_into(dy, tiles_h, tiles_w, got)
    wg.output_transform_adjoint_into_reference(dy, tiles_h, tiles_w, want)
    np.testing.assert_allclose(got, want, rtol=tol(dtype), atol=tol(dtype) * 10)
    lanes = got.reshape(36, C, tiles_h * tiles_w, NB)
    assert np.all(lanes[..., n:] == 0)  # a short chunk's missing samples


# ---------------------------------------------------------------------------------------------
# Each backward transform is the transpose of its forward one: <L a, b> = <a, L^T b>
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tiles_h, tiles_w, n, H, W, top, left", INPUT_CASES)
def test_input_transform_adjoint_is_its_transpose(tiles_h, tiles_w, n, H, W, top, left):
    C = 3
    x = rng.standard_normal((n, C, H, W))
    v = rng.standard_normal((36, C, tiles_h * tiles_w * NB))
    V = np.empty_like(v)
    wg.input_transform_into(x, top, left, tiles_h, tiles_w, V)
    dx = np.empty_like(x)
    wg.input_transform_adjoint_into(v, tiles_h, tiles_w, top, left, dx)
    assert close_dots(dot(V, v), dot(x, dx))


@pytest.mark.parametrize("tiles_h, tiles_w, n, OH, OW", OUTPUT_CASES)
def test_output_transform_adjoint_is_its_transpose(tiles_h, tiles_w, n, OH, OW):
    C = 3
    M = rng.standard_normal((36, C, tiles_h * tiles_w * NB))
    e = rng.standard_normal((n, C, OH, OW))
    y = np.empty_like(e)
    wg.output_transform_into(M, tiles_h, tiles_w, np.zeros(C), y)
    dM = np.empty_like(M)
    wg.output_transform_adjoint_into(e, tiles_h, tiles_w, dM)
    assert close_dots(dot(y, e), dot(M, dM))


def test_weight_transform_adjoint_is_its_transpose():
    w = rng.standard_normal((4, 5, 3, 3))
    dU = rng.standard_normal((36, 4, 5))
    dweight = wg.weight_transform_adjoint(dU)
    assert dweight.shape == w.shape
    assert close_dots(dot(wg.weight_transform(w), dU), dot(w, dweight))


# ---------------------------------------------------------------------------------------------
# The layer: Winograd == im2col in float64
# ---------------------------------------------------------------------------------------------

# (N, C, OC, H, W, padding): output sizes H + 2 ph - 2 by W + 2 pw - 2
LAYER_CASES = [
    (1, 1, 2, 7, 7, (1, 1)),  # 7x7, a single sample and a single channel
    (5, 3, 4, 9, 11, (1, 1)),  # 9x11
    (16, 8, 4, 14, 14, (1, 1)),  # 14x14, exactly one chunk of NB samples
    (17, 4, 3, 9, 13, (0, 0)),  # 7x11, padding 0, a chunk of 16 and one of 1
    (37, 2, 5, 6, 5, (2, 2)),  # 8x7, padding 2, chunks of 16, 16 and 5
    (3, 2, 2, 3, 3, (0, 0)),  # a 1x1 output: one tile, 15 of its 16 outputs unused
    (2, 3, 4, 5, 8, (0, 2)),  # 3x10, padding only along W
]


def both_algorithms(x, w, b, padding, dy, requires=(True, True, True)):
    """[y, dx, dweight, dbias] from each algorithm, on fresh leaves."""
    results = []
    for algorithm in ("winograd", "im2col"):
        leaves = [
            None if a is None else Tensor(a, requires_grad=r) for a, r in zip((x, w, b), requires)
        ]
        y = F.conv2d(*leaves, padding=padding, algorithm=algorithm)
        y.backward(dy)
        results.append([y.data] + [None if t is None else t.grad for t in leaves])
    return results


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("N, C, OC, H, W, padding", LAYER_CASES)
def test_winograd_equals_im2col(N, C, OC, H, W, padding, with_bias):
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((OC, C, 3, 3))
    b = rng.standard_normal(OC) if with_bias else None
    OH, OW = H + 2 * padding[0] - 2, W + 2 * padding[1] - 2
    dy = rng.standard_normal((N, OC, OH, OW))
    winograd, im2col = both_algorithms(x, w, b, padding, dy)
    assert winograd[0].shape == (N, OC, OH, OW)
    for name, got, want in zip(("y", "dx", "dweight", "dbias"), winograd, im2col):
        if want is None:
            assert got is None
            continue
        assert got.shape == want.shape
        assert record(f"winograd-im2col {name}", relative_error(got, want)) < 1e-10, name


def test_winograd_weight_grad_only():
    # The first layer's case: the image wants no gradient.
    x, w = rng.standard_normal((17, 8, 9, 9)), rng.standard_normal((4, 8, 3, 3))
    b = rng.standard_normal(4)
    dy = rng.standard_normal((17, 4, 9, 9))
    winograd, im2col = both_algorithms(x, w, b, (1, 1), dy, requires=(False, True, True))
    assert winograd[1] is None and im2col[1] is None  # x.grad
    for i in (0, 2, 3):  # y, dweight, dbias
        assert relative_error(winograd[i], im2col[i]) < 1e-10


def test_winograd_input_grad_only():
    x, w = rng.standard_normal((17, 8, 7, 10)), rng.standard_normal((4, 8, 3, 3))
    dy = rng.standard_normal((17, 4, 7, 10))
    winograd, im2col = both_algorithms(x, w, None, (1, 1), dy, requires=(True, False, False))
    assert winograd[2] is None and im2col[2] is None
    for got, want in zip(winograd[:2], im2col[:2]):
        assert relative_error(got, want) < 1e-10


def test_gradcheck_winograd():
    arrays = [
        rng.standard_normal((2, 2, 5, 6)),
        rng.standard_normal((3, 2, 3, 3)),
        rng.standard_normal(3),
    ]

    def fn(x, w, b):
        return F.conv2d(x, w, b, padding=1, algorithm="winograd")

    assert record("winograd (gradcheck)", gradcheck(fn, arrays, seed=11)) < 1e-6


# ---------------------------------------------------------------------------------------------
# float32 at the CNN's shapes, against float64 truth
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("C, OC, size", [(32, 64, 14), (64, 128, 7)])
def test_float32_accuracy_at_the_cnn_shapes(C, OC, size):
    N = 32
    bound = 1 / np.sqrt(C * 9)  # the layer's default initialisation
    x = rng.standard_normal((N, C, size, size))
    w = rng.uniform(-bound, bound, (OC, C, 3, 3))
    b = rng.uniform(-bound, bound, OC)
    dy = rng.standard_normal((N, OC, size, size))
    truth = both_algorithms(x, w, b, (1, 1), dy)[1]  # float64 im2col

    leaves = [Tensor(a.astype(np.float32), requires_grad=True) for a in (x, w, b)]
    y = F.conv2d(*leaves, padding=1, algorithm="winograd")
    assert y.dtype == np.float32
    y.backward(dy.astype(np.float32))
    got = [y.data] + [t.grad for t in leaves]
    assert all(g.dtype == np.float32 for g in got)
    names = ("y", "dx", "dweight", "dbias")
    errors = {
        name: record(f"winograd f32 {name} {C}->{OC}", relative_error(g, t))
        for name, g, t in zip(names, got, truth)
    }
    assert errors["y"] < 1e-5, errors
    assert max(errors.values()) < 1e-4, errors


# ---------------------------------------------------------------------------------------------
# Chunks and threads
# ---------------------------------------------------------------------------------------------


def winograd_run(x, w, b, dy):
    leaves = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    y = F.conv2d(*leaves, padding=1, algorithm="winograd")
    y.backward(dy)
    return [y.data] + [t.grad for t in leaves]


def test_split_into_chunks_equals_one_chunk(monkeypatch):
    """Winograd3x3Function cut into chunks that are not multiples of NB == one chunk."""
    batch = 37
    x = rng.standard_normal((batch, 8, 9, 8))
    w = rng.standard_normal((4, 8, 3, 3))
    b = rng.standard_normal(4)
    dy = rng.standard_normal((batch, 4, 9, 8))

    monkeypatch.setattr(winograd_module, "batch_chunks", lambda n, min_chunk=8: [(0, n)])
    whole = winograd_run(x, w, b, dy)
    thirds = [(0, 10), (10, 29), (29, batch)]
    monkeypatch.setattr(winograd_module, "batch_chunks", lambda n, min_chunk=8: thirds)
    split = winograd_run(x, w, b, dy)
    np.testing.assert_array_equal(split[1], whole[1])  # dx: per sample, the same arithmetic
    for got, want in zip(split, whole):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_two_threads_equal_one_thread():
    batch = 37  # two chunks on two threads (at least NB samples each): 18 and 19
    x = rng.standard_normal((batch, 8, 9, 8))
    w = rng.standard_normal((4, 8, 3, 3))
    b = rng.standard_normal(4)
    dy = rng.standard_normal((batch, 4, 9, 8))
    with num_threads(1):
        assert len(winograd_module.batch_chunks(batch, min_chunk=NB)) == 1
        one = winograd_run(x, w, b, dy)
    with num_threads(2):
        assert len(winograd_module.batch_chunks(batch, min_chunk=NB)) == 2
        two = winograd_run(x, w, b, dy)
    np.testing.assert_array_equal(two[1], one[1])
    for got, want in zip(two, one):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# The API: choosing the algorithm, errors, the module
# ---------------------------------------------------------------------------------------------


def test_choose_algorithm():
    assert choose_algorithm((32, 32, 14, 14), (64, 32, 3, 3), (1, 1)) == "winograd"
    assert choose_algorithm((8, 8, 7, 7), (16, 8, 3, 3), (1, 1)) == "winograd"
    assert choose_algorithm((32, 1, 28, 28), (32, 1, 3, 3), (1, 1)) == "im2col"  # C = 1
    assert choose_algorithm((32, 7, 28, 28), (32, 7, 3, 3), (1, 1)) == "im2col"  # C < 8
    assert choose_algorithm((1, 32, 14, 14), (64, 32, 3, 3), (1, 1)) == "im2col"  # N = 1
    assert choose_algorithm((7, 32, 14, 14), (64, 32, 3, 3), (1, 1)) == "im2col"  # N < 8
    assert choose_algorithm((32, 32, 14, 14), (64, 32, 5, 5), (1, 1)) == "im2col"
    assert choose_algorithm((32, 32, 14, 14), (64, 32, 3, 5), (1, 1)) == "im2col"
    assert choose_algorithm((32, 32, 14, 14), (64, 32, 3, 3), (2, 2)) == "im2col"
    assert choose_algorithm((32, 32, 14, 14), (64, 32, 3, 3), (1, 2)) == "im2col"


def test_auto_uses_the_chosen_function():
    w = Tensor(rng.standard_normal((4, 8, 3, 3)), requires_grad=True)
    big = F.conv2d(Tensor(rng.standard_normal((8, 8, 6, 6))), w, padding=1)
    small = F.conv2d(Tensor(rng.standard_normal((1, 8, 6, 6))), w, padding=1)
    assert big.grad_fn.fn is Winograd3x3Function
    assert small.grad_fn.fn is Conv2dFunction


def test_winograd_errors():
    x = Tensor(np.zeros((2, 3, 8, 8)))
    w3, w5 = Tensor(np.zeros((4, 3, 3, 3))), Tensor(np.zeros((4, 3, 5, 5)))
    needs = r"winograd algorithm needs a 3x3 kernel and stride 1"
    with pytest.raises(ValueError, match=needs + r", got kernel \(3, 3\) and stride \(2, 2\)"):
        F.conv2d(x, w3, stride=2, algorithm="winograd")
    with pytest.raises(ValueError, match=needs + r", got kernel \(5, 5\) and stride \(1, 1\)"):
        F.conv2d(x, w5, algorithm="winograd")
    with pytest.raises(ValueError, match=r"conv2d: algorithm must be one of .*'fft'"):
        F.conv2d(x, w3, algorithm="fft")
    with pytest.raises(ValueError, match=r"algorithm must be one of .*'bogus'"):
        nn.Conv2d(3, 4, 3, algorithm="bogus")


def test_module_algorithm_repr_and_switch():
    auto = nn.Conv2d(8, 16, 3, padding=1)
    assert auto.algorithm == "auto" and "algorithm" not in repr(auto)
    fixed = nn.Conv2d(8, 16, 3, padding=1, algorithm="winograd")
    assert repr(fixed) == (
        "Conv2d(8, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), algorithm='winograd')"
    )

    x = Tensor(rng.standard_normal((8, 8, 7, 7)).astype(np.float32))
    y_auto = auto(x)
    assert y_auto.grad_fn.fn is Winograd3x3Function
    auto.algorithm = "im2col"
    assert "algorithm='im2col'" in repr(auto)
    y_im2col = auto(x)
    assert y_im2col.grad_fn.fn is Conv2dFunction
    np.testing.assert_allclose(y_auto.data, y_im2col.data, rtol=1e-4, atol=1e-5)

    auto.algorithm = "bogus"
    with pytest.raises(ValueError, match=r"Conv2d: algorithm must be one of"):
        auto(x)


teardown_module = GRAD_ERRORS.print_table
