"""scratchnet.runtime.startup: what `import scratchnet` does to the process, and what turns it off.

The read-only cases (Numba's cache folder) are in tests/test_readonly_install.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPORT = """
import json, os
import scratchnet
from scratchnet.runtime import startup
from scratchnet.runtime.threads import blas_threads
startup.apply()  # a second call changes nothing
print(json.dumps({
    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
    "blas_threads": blas_threads(),
}))
"""
USER_SETTINGS = (
    "OMP_WAIT_POLICY",
    "NUMBA_CACHE_DIR",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "SCRATCHNET_BLAS_THREADS",
)


def import_scratchnet(**env: str) -> dict:
    """What a fresh `import scratchnet` leaves, with only the given settings in the environment."""
    environ = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    result = subprocess.run(
        [sys.executable, "-c", REPORT], env={**environ, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def defaults() -> dict:
    return import_scratchnet()


def test_openmp_waits_passively(defaults: dict) -> None:
    assert defaults["omp_wait_policy"] == "PASSIVE"


def test_the_blas_runs_on_one_thread(defaults: dict) -> None:
    if defaults["blas_threads"] is None:
        pytest.skip("threadpoolctl cannot see the BLAS")
    assert defaults["blas_threads"] == 1


def test_a_writable_package_keeps_numbas_own_cache(defaults: dict) -> None:
    if not os.access(os.path.dirname(__file__), os.W_OK):
        pytest.skip("this checkout is read-only")
    assert defaults["numba_cache_dir"] is None


def test_the_users_settings_win(tmp_path) -> None:
    settings = {
        "OMP_WAIT_POLICY": "ACTIVE",
        "NUMBA_CACHE_DIR": str(tmp_path),
        "OPENBLAS_NUM_THREADS": "2",
    }
    after = import_scratchnet(**settings)
    assert after["omp_wait_policy"] == "ACTIVE"
    assert after["numba_cache_dir"] == str(tmp_path)
    assert after["blas_threads"] in (2, None)


def test_scratchnet_blas_threads_sets_the_count() -> None:
    after = import_scratchnet(SCRATCHNET_BLAS_THREADS="2")
    if after["blas_threads"] is None:
        pytest.skip("threadpoolctl cannot see the BLAS")
    assert after["blas_threads"] == 2
