"""Every Numba kernel against its vectorised NumPy twin, in float32 and float64.

The twins (`*_reference`) share the kernels' signatures. The im2col grid is the one STYLE.md
asks for: strides {1, 2} x padding {0, 1, 2} x kernels {1, 3, 5}, on non-square inputs, with a
batch of 1 and of 2. im2col + matmul is also checked against a naive nested-loop convolution.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scratchnet.kernels import activation as act
from scratchnet.kernels import batchnorm as bn
from scratchnet.kernels import im2col as ic
from scratchnet.kernels import pool
from tests.reference_ops import naive_conv2d

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(7)

# (N, C, H, W), (KH, KW), (sh, sw), (ph, pw)
GRID = [
    ((n, 2, 7, 6), (k, k), (s, s), (p, p))
    for n, k, s, p in itertools.product((1, 2), (1, 3, 5), (1, 2), (0, 1, 2))
]
UNEVEN = [
    ((2, 3, 9, 8), (5, 3), (2, 1), (2, 1)),
    ((1, 2, 5, 11), (3, 1), (1, 3), (0, 2)),
    ((1, 1, 3, 3), (3, 3), (1, 1), (4, 4)),  # windows entirely in the padding
    ((3, 1, 4, 4), (4, 4), (1, 1), (0, 0)),  # one output position
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding", GRID + UNEVEN)
def test_im2col_and_col2im_match_numpy(dtype, shape, kernel, stride, padding):
    x = rng.standard_normal(shape).astype(dtype)
    args = (*kernel, *stride, *padding)
    cols = ic.im2col(x, *args)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, ic.im2col_reference(x, *args))

    dcols = rng.standard_normal(cols.shape).astype(dtype)
    dx = ic.col2im(dcols, *shape, *args)
    assert dx.dtype == dtype and dx.shape == shape
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(dx, ic.col2im_reference(dcols, *shape, *args), rtol=tol, atol=tol)


@pytest.mark.parametrize("shape, kernel, stride, padding", UNEVEN + GRID[::5])
def test_col2im_is_the_adjoint_of_im2col(shape, kernel, stride, padding):
    # <im2col(x), c> = <x, col2im(c)>: col2im is exactly the transpose of the im2col copy.
    args = (*kernel, *stride, *padding)
    x = rng.standard_normal(shape)
    cols = ic.im2col(x, *args)
    c = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * ic.col2im(c, *shape, *args)), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding", GRID[::3] + UNEVEN)
def test_im2col_matmul_equals_naive_convolution(dtype, shape, kernel, stride, padding):
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((4, shape[1], *kernel)).astype(dtype)
    cols = ic.im2col(x, *kernel, *stride, *padding)
    N = shape[0]
    y2 = weight.reshape(4, -1) @ cols
    expected = naive_conv2d(x, weight, None, stride, padding)
    y = y2.reshape(4, N, *expected.shape[2:]).transpose(1, 0, 2, 3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


def test_output_size_formula():
    assert ic.output_size(28, 3, 1, 1) == 28
    assert ic.output_size(7, 3, 2, 0) == 3
    assert ic.output_size(6, 5, 2, 2) == 3


# ---------------------------------------------------------------------------------------------
# max pooling
# ---------------------------------------------------------------------------------------------

POOL_CASES = [
    ((2, 3, 8, 6), (2, 2), (2, 2), (0, 0)),  # the CNN's pool, non-overlapping
    ((2, 3, 7, 9), (2, 2), (2, 2), (0, 0)),  # ... on odd sizes: the last row and column unused
    ((1, 2, 7, 9), (3, 3), (2, 2), (1, 1)),  # overlapping, padded, odd sizes
    ((2, 1, 5, 7), (3, 2), (1, 2), (1, 1)),  # non-square kernel
    ((1, 2, 9, 9), (5, 5), (2, 3), (2, 2)),
    ((2, 2, 4, 5), (1, 1), (1, 1), (0, 0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding", POOL_CASES)
def test_max_pool_kernels_match_numpy(dtype, shape, kernel, stride, padding):
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, :2, :2] = 0.0  # a tie, which both must resolve to the first maximum
    args = (*kernel, *stride, *padding)
    y, argmax = pool.max_pool2d_forward(x, *args)
    y_ref, argmax_ref = pool.max_pool2d_forward_reference(x, *args)
    assert y.dtype == dtype and argmax.dtype == np.int32
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    # Without the indices (a pass that needs no gradient), both give y alone, the same y.
    for forward in (pool.max_pool2d_forward, pool.max_pool2d_forward_reference):
        y_only, no_argmax = forward(x, *args, return_indices=False)
        assert no_argmax is None
        np.testing.assert_array_equal(y_only, y_ref)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = pool.max_pool2d_backward(dy, argmax, x.shape)
    assert dx.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(dx, pool.max_pool2d_backward_reference(dy, argmax, x.shape), tol)


def test_max_pool_picks_the_first_maximum_and_sums_shared_maxima():
    x = np.zeros((1, 1, 3, 3))
    _, argmax = pool.max_pool2d_forward(x, 2, 2, 1, 1, 0, 0)
    # All zeros: every window's gradient goes to its top-left (first) element.
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [3, 4]])

    x[0, 0, 1, 1] = 5.0  # the maximum of all four overlapping windows
    y, argmax = pool.max_pool2d_forward(x, 2, 2, 1, 1, 0, 0)
    np.testing.assert_array_equal(y[0, 0], 5.0)
    dx = pool.max_pool2d_backward(np.arange(1.0, 5.0).reshape(1, 1, 2, 2), argmax, x.shape)
    assert dx[0, 0, 1, 1] == 1 + 2 + 3 + 4 and dx.sum() == 10


def test_max_pool_all_minus_inf_window_points_inside_x():
    # Padding is -inf too; like PyTorch, a window whose values are all -inf picks its first
    # element inside x, never a padding position.
    x = np.full((1, 1, 3, 3), -np.inf)
    y, argmax = pool.max_pool2d_forward(x, 3, 3, 1, 1, 1, 1)
    assert np.all(y == -np.inf)
    expected = [[max(i - 1, 0) * 3 + max(j - 1, 0) for j in range(3)] for i in range(3)]
    np.testing.assert_array_equal(argmax[0, 0], expected)


def test_max_pool_propagates_nan():
    x = np.ones((1, 1, 2, 2), dtype=np.float32)
    x[0, 0, 1, 0] = np.nan
    y, argmax = pool.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 2
    y, _ = pool.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, return_indices=False)
    assert np.isnan(y[0, 0, 0, 0])


def test_max_pool_2x2_planes_with_and_without_nan():
    # The 2x2 scan skips the NaN test; a plane holding a NaN goes through the general scan.
    # Planes of both kinds in one call, and in the NaN planes the rule: the last NaN of a
    # window wins, even when it comes first or a larger number follows it.
    x = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    x[0, 1, 0, 0] = np.nan  # first in its window
    x[0, 1, 2, 2] = x[0, 1, 3, 3] = np.nan  # two NaNs in one window: the last one
    x[1, 2, 5, 6] = np.nan
    x[1, 2, 5, 7] = 100.0  # a larger value after a NaN does not win
    y, argmax = pool.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0)
    y_ref, argmax_ref = pool.max_pool2d_forward_reference(x, 2, 2, 2, 2, 0, 0)
    clean = np.ones((2, 3), dtype=bool)
    clean[0, 1] = clean[1, 2] = False
    np.testing.assert_array_equal(y[clean], y_ref[clean])
    np.testing.assert_array_equal(argmax[clean], argmax_ref[clean])
    assert np.isnan(y[0, 1, 0, 0]) and argmax[0, 1, 0, 0] == 0
    assert np.isnan(y[0, 1, 1, 1]) and argmax[0, 1, 1, 1] == 3 * 8 + 3
    assert np.isnan(y[1, 2, 2, 3]) and argmax[1, 2, 2, 3] == 5 * 8 + 6
    assert np.isnan(y).sum() == 3
    finite = ~np.isnan(y_ref)  # NumPy's argmax takes the first NaN: compare the rest
    np.testing.assert_array_equal(argmax[finite], argmax_ref[finite])


# ---------------------------------------------------------------------------------------------
# ReLU
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 5), (24, 32, 28, 28)])  # one-thread and parallel paths
def test_relu_kernels_match_numpy(dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[:3] = [0.0, -0.0, np.nan]
    y = act.relu_forward(x)
    y_ref = np.empty_like(x)
    act.relu_forward_into_reference(x, y_ref)
    np.testing.assert_array_equal(y, y_ref)  # NaN stays NaN, as np.maximum and torch.relu do
    assert np.isnan(y.flat[2]) and y.dtype == dtype

    dy = rng.standard_normal(shape).astype(dtype)
    dx = act.relu_backward(dy, y)
    dx_ref = np.empty_like(dy)
    act.relu_backward_into_reference(dy, y, dx_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    assert dx.flat[0] == 0 and dx.flat[2] == 0  # no gradient at 0 or through a NaN


def test_relu_backward_accepts_a_non_contiguous_gradient():
    y = act.relu_forward(rng.standard_normal((4, 6)).astype(np.float32))
    dy = rng.standard_normal((6, 4)).astype(np.float32).T
    np.testing.assert_array_equal(act.relu_backward(dy, y), dy * (y > 0))


# ---------------------------------------------------------------------------------------------
# batch norm
# ---------------------------------------------------------------------------------------------

BN_SHAPES = [(4, 3, 10), (1, 2, 49), (64, 5, 1), (2, 3, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_kernels_match_numpy(dtype, shape):
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    close = {"rtol": 1e-5 if dtype == np.float32 else 1e-12, "atol": 1e-6}

    mean, var = bn.channel_mean_var(x)
    mean_ref, var_ref = bn.channel_mean_var_reference(x)
    assert mean.dtype == np.float64
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-12)
    np.testing.assert_allclose(var, var_ref, rtol=1e-12)

    sums = bn.channel_grad_sums(dy, x, mean)
    for got, want in zip(sums, bn.channel_grad_sums_reference(dy, x, mean)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    scale, shift, inv_std, m_dy, m_dy_xhat = (rng.standard_normal(C) for _ in range(5))
    y = bn.normalize(x, mean, scale, shift)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, bn.normalize_reference(x, mean, scale, shift), **close)

    dx = bn.normalize_backward(dy, x, mean, inv_std, scale, m_dy, m_dy_xhat)
    expected = bn.normalize_backward_reference(dy, x, mean, inv_std, scale, m_dy, m_dy_xhat)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, expected, **close)


def test_channel_mean_var_is_accurate_for_a_large_offset():
    # Subtracting the mean before squaring keeps float32 data with mean 1e4 exact enough.
    x = (rng.standard_normal((8, 2, 100)) + 1e4).astype(np.float32)
    _, var = bn.channel_mean_var(x)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0, 2)), rtol=1e-10)


# The kernel wrappers run small inputs on the calling thread
# (scratchnet.runtime.threads.parallel_for): the tests above, on tiny shapes, take that path. These
# shapes are above PARALLEL_MIN_WORK, so the wrappers cut the work into one chunk per thread.
def test_kernels_on_the_parallel_path_match_numpy():
    from scratchnet.runtime.threads import PARALLEL_MIN_WORK

    x = rng.standard_normal((24, 32, 28, 28)).astype(np.float32)
    assert x.size >= PARALLEL_MIN_WORK
    cols = ic.im2col(x, 3, 3, 1, 1, 1, 1)
    np.testing.assert_array_equal(cols, ic.im2col_reference(x, 3, 3, 1, 1, 1, 1))
    back = ic.col2im(cols, 24, 32, 28, 28, 3, 3, 1, 1, 1, 1)
    expected = ic.col2im_reference(cols, 24, 32, 28, 28, 3, 3, 1, 1, 1, 1)
    np.testing.assert_allclose(back, expected, rtol=1e-6, atol=1e-6)

    y, argmax = pool.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0)
    y_ref, argmax_ref = pool.max_pool2d_forward_reference(x, 2, 2, 2, 2, 0, 0)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dx = pool.max_pool2d_backward(y, argmax, x.shape)
    np.testing.assert_array_equal(dx, pool.max_pool2d_backward_reference(y, argmax, x.shape))

    x3 = x.reshape(24, 32, -1)
    mean, var = bn.channel_mean_var(x3)
    mean_ref, var_ref = bn.channel_mean_var_reference(x3)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(var, var_ref, rtol=1e-9)
    scale, shift = rng.standard_normal(32), rng.standard_normal(32)
    np.testing.assert_allclose(
        bn.normalize(x3, mean, scale, shift),
        bn.normalize_reference(x3, mean, scale, shift),
        rtol=1e-5,
        atol=1e-6,
    )


def test_parallel_for_keeps_small_work_on_the_calling_thread():
    import threading

    from scratchnet.runtime.threads import PARALLEL_MIN_WORK, get_num_threads, parallel_for

    calls = []

    def record(lo, hi):
        calls.append((lo, hi, threading.get_ident()))

    parallel_for(record, 100, work=10)
    assert calls == [(0, 100, threading.get_ident())]

    calls.clear()
    parallel_for(record, 100, work=PARALLEL_MIN_WORK)
    assert sorted((lo, hi) for lo, hi, _ in calls)[0][0] == 0
    assert sum(hi - lo for lo, hi, _ in calls) == 100
    assert len(calls) == min(get_num_threads(), 100)
    assert threading.get_ident() in {ident for *_, ident in calls}  # the caller works too


def test_batch_chunks_cover_the_batch():
    from scratchnet.runtime.threads import batch_chunks, map_chunks

    for n in (1, 7, 16, 64, 129):
        chunks = batch_chunks(n)
        assert chunks[0][0] == 0 and chunks[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
        assert map_chunks(lambda lo, hi: hi - lo, chunks) == {
            (lo, hi): hi - lo for lo, hi in chunks
        }


def test_map_chunks_raises_a_workers_error_and_stays_usable():
    from scratchnet.runtime.threads import map_chunks

    def fail_in_second(lo, hi):
        if lo:
            raise ValueError(f"chunk {lo} failed")
        return hi - lo

    with pytest.raises(ValueError, match="chunk 5 failed"):
        map_chunks(fail_in_second, [(0, 5), (5, 9)])
    with pytest.raises(ZeroDivisionError):
        map_chunks(lambda lo, hi: 1 // lo, [(0, 5), (5, 9)])  # the caller's own chunk fails
    assert map_chunks(lambda lo, hi: hi - lo, [(0, 5), (5, 9)]) == {(0, 5): 5, (5, 9): 4}


def test_map_chunks_nested_and_concurrent_calls_fall_back_to_the_caller():
    import threading

    from scratchnet.runtime.threads import map_chunks

    def outer(lo, hi):  # a chunk that cuts its own work again runs the inner chunks itself
        return list(map_chunks(lambda a, b: b - a, [(lo, hi), (hi, hi + 2)]).values())

    assert map_chunks(outer, [(0, 3), (3, 10)]) == {(0, 3): [3, 2], (3, 10): [7, 2]}

    results, errors = [], []

    def caller():
        try:
            for _ in range(50):
                results.append(map_chunks(lambda lo, hi: hi - lo, [(0, 4), (4, 10)]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [{(0, 4): 4, (4, 10): 6}] * 150


def test_pinned_workers_run_on_a_cpu_of_their_own():
    """SCRATCHNET_PIN_WORKERS=1: the first worker runs on the last allowed CPU (Linux only);
    the calling thread keeps every CPU."""
    import json
    import os
    import subprocess
    import sys

    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs Linux and 2 CPUs")
    code = (
        "import json, os\n"
        "from scratchnet.runtime.threads import map_chunks\n"
        "cpus = map_chunks(lambda lo, hi: sorted(os.sched_getaffinity(0)), [(0, 1), (1, 2)])\n"
        "print(json.dumps(list(cpus.values())))"
    )
    env = {**os.environ, "SCRATCHNET_PIN_WORKERS": "1", "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    caller, worker = json.loads(out.stdout)
    allowed = sorted(os.sched_getaffinity(0))
    assert caller == allowed and worker == [allowed[-1]]


@pytest.mark.parametrize("batch", [1, 33])
def test_conv_split_into_chunks_equals_one_chunk(batch, monkeypatch):
    """Conv2dFunction cut into per-thread chunks == the whole batch as one chunk."""
    import scratchnet.nn.conv as conv_module
    from scratchnet.tensor import Tensor

    x = rng.standard_normal((batch, 3, 9, 8))
    weight = rng.standard_normal((4, 3, 3, 3))
    bias = rng.standard_normal(4)
    dy = rng.standard_normal((batch, 4, 9, 8))

    def run() -> list[np.ndarray]:
        leaves = [Tensor(a, requires_grad=True) for a in (x, weight, bias)]
        y = conv_module.conv2d(*leaves, stride=1, padding=1)
        y.backward(dy)
        return [y.data] + [leaf.grad for leaf in leaves]

    monkeypatch.setattr(conv_module, "batch_chunks", lambda n: [(0, n)])
    whole = run()
    thirds = [(0, batch // 3), (batch // 3, 2 * batch // 3), (2 * batch // 3, batch)]
    monkeypatch.setattr(conv_module, "batch_chunks", lambda n: thirds if n > 3 else [(0, n)])
    for got, want in zip(run(), whole):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    naive = naive_conv2d(x, weight, bias, (1, 1), (1, 1))
    np.testing.assert_allclose(whole[0], naive, rtol=1e-10, atol=1e-10)


def test_num_threads_sets_the_callers_chunk_count_in_a_block_and_restores_it():
    import threading

    from scratchnet.runtime.threads import (
        batch_chunks,
        get_num_threads,
        max_num_threads,
        num_threads,
    )

    before = get_num_threads()
    seen_by_another_thread = []
    with num_threads(1):
        assert get_num_threads() == 1 and batch_chunks(64) == [(0, 64)]
        other = threading.Thread(target=lambda: seen_by_another_thread.append(get_num_threads()))
        other.start()
        other.join()
    assert get_num_threads() == before
    assert seen_by_another_thread == [max_num_threads()]  # Numba's count is per thread

    with pytest.raises(RuntimeError), num_threads(1):
        raise RuntimeError("restored on the way out")
    assert get_num_threads() == before
    for bad in (0, max_num_threads() + 1):
        with pytest.raises(ValueError, match=f"between 1 and {max_num_threads()}"):
            num_threads(bad).__enter__()
