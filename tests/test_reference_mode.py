"""Reading mode (scratchnet.set_reference_mode): the NumPy twins, im2col and one chunk.

The CNN's outputs and every parameter gradient in reading mode match the fast path, and no
Numba kernel, Winograd layer or worker thread runs while it is on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import scratchnet as sn
from scratchnet.autograd import relative_error
from scratchnet.mnist.models import CNNClassifier
from scratchnet.nn import conv, winograd
from scratchnet.runtime import threads


@pytest.fixture(autouse=True)
def _fast_path_after_each_test():
    yield
    sn.set_reference_mode(False)


def _run_cnn(dtype: Any, batch: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Logits, every parameter's gradient and the input's gradient of one training step.

    The same weights and input each call (seeded); no dropout, so that the two runs match.
    """
    sn.manual_seed(0)
    model = CNNClassifier(dropout_rate=0.0).to(dtype)
    model.train()  # batch norm's training path: batch statistics and the long backward
    rng = np.random.default_rng(0)
    x = sn.tensor(rng.normal(size=(batch, 1, 28, 28)).astype(dtype), requires_grad=True)
    target = sn.tensor(rng.integers(0, 10, size=batch))
    logits = model(x)
    loss = sn.nn.functional.cross_entropy(logits, target)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    return logits.data, grads, x.grad


def _uses_winograd(batch: int) -> bool:
    """Whether the fast path takes Winograd for the CNN's conv2 at this batch size."""
    return conv.choose_algorithm((batch, 32, 14, 14), (64, 32, 3, 3), (1, 1)) == "winograd"


@pytest.mark.parametrize(("dtype", "tol"), [(np.float32, 1e-4), (np.float64, 1e-10)])
def test_cnn_outputs_and_gradients_match_the_fast_path(dtype, tol):
    batch = 32  # enough for Winograd, two chunks and PARALLEL_MIN_WORK in the fast path
    assert _uses_winograd(batch)
    fast_logits, fast_grads, fast_dx = _run_cnn(dtype, batch)

    with sn.reference_mode_enabled():
        assert not _uses_winograd(batch)
        ref_logits, ref_grads, ref_dx = _run_cnn(dtype, batch)
    assert not sn.reference_mode()  # the block restored the fast path

    assert ref_logits.dtype == dtype
    assert relative_error(ref_logits, fast_logits) < tol
    assert relative_error(ref_dx, fast_dx) < tol
    assert sorted(ref_grads) == sorted(fast_grads) and len(ref_grads) == 16
    for name in fast_grads:
        if name.startswith("conv") and name.endswith(".bias"):
            # A bias before a training-mode batch norm has a zero gradient (the norm removes
            # each channel's mean): both paths give rounding noise, small against the weight's.
            scale = np.abs(fast_grads[name.replace("bias", "weight")]).max()
            assert np.abs(ref_grads[name]).max() < tol * scale, name
            assert np.abs(fast_grads[name]).max() < tol * scale, name
            continue
        assert relative_error(ref_grads[name], fast_grads[name]) < tol, name


def _forbid(what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{what} ran in reading mode")

    return refuse


def test_no_numba_kernel_winograd_or_worker_thread_runs(monkeypatch):
    """Every Numba dispatcher in scratchnet's modules, the Winograd layer and the workers raise."""
    patched = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("scratchnet") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, CPUDispatcher):
                monkeypatch.setattr(module, attr, _forbid(f"{name}.{attr}"))
                patched += 1
    assert patched >= 10  # the kernels of im2col, pooling, batch norm, ReLU and Winograd
    monkeypatch.setattr(winograd.Winograd3x3Function, "forward", _forbid("Winograd3x3Function"))
    monkeypatch.setattr(threads, "_Worker", _forbid("a worker thread"))
    monkeypatch.setattr(threads, "_workers", [])

    sn.set_reference_mode(True)
    logits, grads, dx = _run_cnn(np.float32, 32)
    assert np.isfinite(logits).all() and np.isfinite(dx).all()
    assert all(np.abs(g).sum() > 0 for g in grads.values())

    # The same patches make the fast path fail: the check above can fail.
    sn.set_reference_mode(False)
    with pytest.raises(AssertionError, match="ran in reading mode"):
        _run_cnn(np.float32, 32)


def test_chunk_helpers_run_one_chunk_on_the_calling_thread():
    seen: list[tuple[int, int, str]] = []

    def record(lo: int, hi: int) -> None:
        seen.append((lo, hi, threading.current_thread().name))

    with sn.reference_mode_enabled():
        assert threads.batch_chunks(1000, min_chunk=1) == [(0, 1000)]
        threads.parallel_for(record, 1000, work=threads.PARALLEL_MIN_WORK * 4)
        threads.map_chunks(record, [(0, 500), (500, 1000)])  # chunks a fast forward kept
    main = threading.current_thread().name
    assert seen == [(0, 1000, main), (0, 500, main), (500, 1000, main)]


def test_the_switch_and_its_block():
    assert not sn.reference_mode()
    sn.set_reference_mode(True)
    assert sn.reference_mode()
    with sn.reference_mode_enabled(False):
        assert not sn.reference_mode()
    assert sn.reference_mode()
    sn.set_reference_mode(False)
    with pytest.raises(RuntimeError), sn.reference_mode_enabled():
        raise RuntimeError("an error inside the block")
    assert not sn.reference_mode()


@pytest.mark.parametrize(("value", "expected"), [("1", "True"), ("0", "False")])
def test_scratchnet_reference_is_read_at_import(value, expected):
    code = "import scratchnet as sn; print(sn.reference_mode())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "SCRATCHNET_REFERENCE": value},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == expected
