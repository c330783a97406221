"""Reading mode: every layer through its plain NumPy formula, on the calling thread.

scratchnet's fast path is built for speed: 3x3 convolutions go through Winograd's tile
transforms, the loops are Numba kernels, and the work is cut into chunks over worker threads.
A learner who steps into conv2d's forward in a debugger would land in those, not in the
im2col + matrix product that the docstrings teach. Reading mode turns all three off:

    convolution   im2col + one matrix product ("auto" never picks Winograd)
    kernels       each wrapper in scratchnet/kernels/ calls its NumPy twin (`*_reference`)
    threads       map_chunks and parallel_for run one chunk, on the calling thread

The results are the fast path's to rounding (tests/test_reference_mode.py checks the CNN's
outputs and gradients), only slower. Switch it on with

    scratchnet.set_reference_mode(True)            for the rest of the process
    with scratchnet.reference_mode_enabled(): ...  for one block
    SCRATCHNET_REFERENCE=1                         in the environment, read at import

The switch is one flag for the whole process (not per thread, unlike grad mode): it is for
reading and debugging, and a layer's forward and backward must take the same path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_enabled = os.environ.get("SCRATCHNET_REFERENCE", "0") == "1"


def reference_mode() -> bool:
    """True when layers run their plain NumPy twins, im2col and one chunk (reading mode)."""
    return _enabled


def set_reference_mode(enabled: bool) -> None:
    """Turn reading mode on or off for the whole process."""
    global _enabled
    _enabled = bool(enabled)


@contextlib.contextmanager
def reference_mode_enabled(enabled: bool = True) -> Iterator[None]:
    """Run this block in reading mode (or out of it, with enabled=False), then restore it."""
    previous = _enabled
    set_reference_mode(enabled)
    try:
        yield
    finally:
        set_reference_mode(previous)
