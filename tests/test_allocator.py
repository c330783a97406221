"""scratchnet.runtime.allocator: glibc's malloc keeps freed memory for the next arrays."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scratchnet.runtime import allocator

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None


def run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.pop("SCRATCHNET_MALLOC_TUNING", None)
    result = subprocess.run(
        [sys.executable, "-c", code], env={**environ, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc only")
def test_glibc_accepts_the_settings():
    assert (
        run("from scratchnet.runtime.allocator import tune_malloc; print(tune_malloc())") == "True"
    )


def test_the_environment_wins():
    code = "from scratchnet.runtime.allocator import tune_malloc; print(tune_malloc())"
    assert run(code, MALLOC_MMAP_THRESHOLD_="131072") == "False"
    assert run(code, MALLOC_TRIM_THRESHOLD_="131072") == "False"
    assert run(code, SCRATCHNET_MALLOC_TUNING="0") == "False"


@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc only")
def test_freed_arrays_are_reused_without_page_faults():
    """Allocate arrays of a training step's sizes (0.2 to 13 MB), free them, repeat: after the
    first round, no new page faults. glibc's defaults fault the memory in again each round."""
    code = """
import resource
import numpy as np
import scratchnet
sizes = [3_211_264, 802_816, 1_605_632, 50_176, 401_408, 3_211_264, 2_359_296]
def step():
    arrays = [np.ones(n, np.float32) for n in sizes]
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    tuned, default = int(run(code)), int(run(code, SCRATCHNET_MALLOC_TUNING="0"))
    assert tuned < 100, tuned
    assert default > 10 * max(tuned, 10), (tuned, default)


def test_constants_are_glibcs():
    assert allocator.M_TRIM_THRESHOLD == -1 and allocator.M_MMAP_THRESHOLD == -3
    assert allocator.MMAP_THRESHOLD == 32 * 1024 * 1024  # glibc's largest accepted value


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_release_free_memory_hands_the_held_memory_back():
    """With the trim threshold at 1 GB, freed arrays stay in the process until
    release_free_memory() hands them back."""
    code = """
import numpy as np
import scratchnet
from scratchnet.runtime.allocator import release_free_memory
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 // 2**20
arrays = [np.ones(2_000_000, np.float32) for _ in range(50)]  # 400 MB in blocks of 8 MB
peak = rss_mb()
del arrays
held = rss_mb()
released = release_free_memory()
print(peak, held, rss_mb(), released)
"""
    peak, held, after, released = run(code).split()
    assert int(held) > int(peak) - 50, (peak, held)  # the tuning keeps the freed memory
    assert int(after) < int(held) - 300, (held, after)
    assert released == "True"


def test_release_free_memory_is_a_no_op_elsewhere(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator.release_free_memory() is False
