"""Everything `import scratchnet` does to the process, in one place, applied once.

scratchnet/__init__.py calls `apply()` before it imports anything else. In order:

1. malloc tuning (scratchnet/runtime/allocator.py). glibc keeps freed memory for the next
   arrays instead of handing it back to the kernel and faulting it in again: a CNN training
   step at batch 128 went from 94 to 62 ms. Applied first, before any array exists.
   Off: SCRATCHNET_MALLOC_TUNING=0, or glibc's own MALLOC_MMAP_THRESHOLD_ /
   MALLOC_TRIM_THRESHOLD_.

2. The OpenMP wait policy: OMP_WAIT_POLICY=PASSIVE. Numba runs prange loops (left only in the
   augmentation kernel) on an OpenMP pool whose idle workers, by default, spin for
   milliseconds after each parallel kernel, on the very cores the other threads need; passive
   waiting hands the cores back at once. It must be set before the OpenMP runtime starts,
   that is before the first parallel kernel runs.
   Off: set OMP_WAIT_POLICY yourself (any value wins).

3. Where Numba caches the compiled kernels (every kernel is `njit(cache=True)`). Numba writes
   beside the source, in the package's __pycache__ folders, or in ~/.cache/numba; with neither
   writable (a read-only install, user nobody, AWS Lambda where only /tmp is writable) it
   refuses to define a cached function, and `import scratchnet` died. Decided here, before any
   kernel module is imported:
   - NUMBA_CACHE_DIR already set: left alone;
   - the package's __pycache__ folders writable: nothing changes (Numba's default);
   - else NUMBA_CACHE_DIR = the first writable of $XDG_CACHE_HOME/scratchnet/numba,
     ~/.cache/scratchnet/numba, and <temp folder>/scratchnet-numba-<uid> (tempfile's choice:
     $TMPDIR, /tmp, ...). The temp folder is private (mode 700, owned by this user), since the
     cache holds code that is loaded and run; if someone else holds that name, a fresh private
     folder is used for this process and removed at exit;
   - nothing writable at all: scratchnet's kernels compile without the cache, at every start
     (~6 s), and one warning line says so. Numba has no switch for that, so its
     `Dispatcher.enable_caching` is wrapped to skip scratchnet's own functions; other
     libraries' functions are left to Numba.
   Off: set NUMBA_CACHE_DIR.

4. The BLAS's threads: one (scratchnet/runtime/threads.py, `configure_default`). OpenBLAS's
   idle workers spin, and with the BLAS on every core a CNN step took 1.0 s instead of 0.2 s;
   scratchnet runs its own chunks on its own threads instead. Needs NumPy loaded (threadpoolctl
   finds the BLAS NumPy loaded), so it comes last.
   Off: set OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or MKL_NUM_THREADS, or choose the count with
   SCRATCHNET_BLAS_THREADS.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from scratchnet.runtime import allocator

PACKAGE_DIR = Path(__file__).resolve().parents[1]
NO_CACHE_WARNING = (
    "scratchnet: no writable folder for Numba's cache, so the kernels compile at every start; "
    "set NUMBA_CACHE_DIR to a writable folder to keep them"
)

_applied = False


def apply() -> None:
    """Apply the four import-time settings above; later calls do nothing."""
    global _applied
    if _applied:
        return
    _applied = True
    allocator.tune_malloc()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _place_numba_cache()

    import numpy  # noqa: F401  (loads the BLAS that configure_default resizes)

    from scratchnet.runtime.threads import configure_default

    configure_default()


def _place_numba_cache() -> None:
    if os.environ.get("NUMBA_CACHE_DIR") or _in_tree_cache_writable(PACKAGE_DIR):
        return
    folder = _user_cache_dir() or _temp_cache_dir()
    if folder is None:
        _skip_caching_scratchnet_kernels()
        logging.getLogger("scratchnet").warning(NO_CACHE_WARNING)
        return
    os.environ["NUMBA_CACHE_DIR"] = folder
    if "numba" in sys.modules:  # imported before scratchnet: its config has read the environment
        from numba.core import config

        config.reload_config()


def _in_tree_cache_writable(package_dir: Path) -> bool:
    """True if Numba can cache beside every source folder of the package, as it does by default.

    Numba writes to <folder>/__pycache__, creating it when missing.
    """
    for folder, subfolders, files in os.walk(package_dir):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        if not any(name.endswith(".py") for name in files):
            continue
        pycache = os.path.join(folder, "__pycache__")
        target = pycache if os.path.isdir(pycache) else folder
        if not os.access(target, os.W_OK | os.X_OK):
            return False
    return True


def _writable(folder: str) -> bool:
    """Create folder if needed and check that a file can be written in it (as Numba does)."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def _user_cache_dir() -> str | None:
    """$XDG_CACHE_HOME/scratchnet/numba or ~/.cache/scratchnet/numba, if writable."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "scratchnet", "numba")
    return folder if _writable(folder) else None


def _temp_cache_dir() -> str | None:
    """A folder of this user's own in the temporary folder, or None if there is none."""
    try:
        temp = tempfile.gettempdir()
    except FileNotFoundError:  # "No usable temporary directory found"
        return None
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = os.path.join(temp, f"scratchnet-numba-{uid if uid is not None else 'user'}")
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    if _private(folder, uid) and _writable(folder):
        return folder
    # Someone else's folder (or a symlink) under our name: never load code from it.
    try:
        fresh = tempfile.mkdtemp(prefix="scratchnet-numba-")
    except OSError:
        return None
    atexit.register(shutil.rmtree, fresh, ignore_errors=True)
    return fresh


def _private(folder: str, uid: int | None) -> bool:
    """A real folder that only this user can write to."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o022:
        return False
    return uid is None or info.st_uid == uid


def _skip_caching_scratchnet_kernels() -> None:
    """Make `njit(cache=True)` on scratchnet's functions compile without Numba's disk cache.

    Numba looks for a cache folder when the decorator runs (Dispatcher.enable_caching) and
    raises if none is writable. A dispatcher left without it keeps its NullCache: it compiles
    in memory, as with cache=False.
    """
    from numba.core.dispatcher import Dispatcher

    enable_caching = Dispatcher.enable_caching

    def enable_caching_except_scratchnet(self: Dispatcher) -> None:
        if not self.py_func.__module__.startswith("scratchnet."):
            enable_caching(self)

    Dispatcher.enable_caching = enable_caching_except_scratchnet
