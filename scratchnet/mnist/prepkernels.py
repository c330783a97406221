"""The loops of the picture preparation (scratchnet.mnist.imageprep), each beside its NumPy twin.

    middle_levels     the one or two levels in the middle of a list of 8-bit levels (a median)
    level_box         the bounding box of the pixels whose level is in [low, high]
    lookup            each pixel's level looked up in a table of the 256 levels
    mask_transitions  a mask's area and its ink/paper transitions along rows, columns and
                      both diagonals (imageprep.stroke_width's counts)

NumPy computes each with a pass over the picture per comparison, mask and reduction; the
loops here make one or two. Measured (min of 500 calls, load 5.6): the box of the load
test's 280x280 canvas 0.053 ms in NumPy, 0.016 here; the transitions of its 182x129 crop
0.090 ms in NumPy, 0.019 here. Their results are integers, the same whichever computes them.
Each name is a wrapper that calls the loop (`_<name>_kernel`), or its twin (`<name>_reference`)
in reading mode (scratchnet.set_reference_mode), as scratchnet's kernels do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.runtime.mode import reference_mode


@njit(nogil=True, cache=True)
def _middle_levels_kernel(levels):
    """(lower, upper) middle of the 1-D uint8 array levels, sorted: the values at ranks
    (n - 1) // 2 and n // 2 (the same one when n is odd), from a histogram of the 256
    levels instead of a sort."""
    counts = np.zeros(256, dtype=np.int64)
    for level in levels:
        counts[level] += 1
    lower_rank = (levels.size - 1) // 2
    upper_rank = levels.size // 2
    lower = upper = 0
    seen = 0  # pixels below the current level
    for level in range(256):
        if seen <= lower_rank < seen + counts[level]:
            lower = level
        if seen <= upper_rank < seen + counts[level]:
            upper = level
        seen += counts[level]
    return lower, upper


def middle_levels_reference(levels):
    """NumPy twin of _middle_levels_kernel."""
    ordered = np.sort(levels)
    return int(ordered[(levels.size - 1) // 2]), int(ordered[levels.size // 2])


def middle_levels(levels: np.ndarray) -> tuple[int, int]:
    """_middle_levels_kernel, or its NumPy twin in reading mode."""
    if reference_mode():
        return middle_levels_reference(levels)
    return _middle_levels_kernel(levels)


@njit(nogil=True, cache=True)
def _level_box_kernel(levels, low, high):
    """(top, bottom, left, right), bottom and right exclusive, of the pixels of the 2-D
    uint8 array levels with low <= level <= high; (0, 0, 0, 0) when there are none.

    Each row is first counted whole, a loop without branches that vectorises; only rows
    with such pixels are then scanned from each end, and only as far as the box so far."""
    height, width = levels.shape
    span = high - low
    top, bottom, left, right = height, 0, width, 0
    for y in range(height):
        row = levels[y]
        hits = 0
        for x in range(width):
            hits += np.uint8(row[x] - low) <= span  # one test: below low wraps past span
        if hits == 0:
            continue
        top = min(top, y)
        bottom = y + 1
        x = 0
        while x < left and not np.uint8(row[x] - low) <= span:
            x += 1
        left = min(left, x)
        x = width - 1
        while x >= right and not np.uint8(row[x] - low) <= span:
            x -= 1
        right = max(right, x + 1)
    if bottom == 0:
        return 0, 0, 0, 0
    return top, bottom, left, right


def level_box_reference(levels, low, high):
    """NumPy twin of _level_box_kernel."""
    inside = (levels >= low) & (levels <= high)
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def level_box(levels: np.ndarray, low: int, high: int) -> tuple[int, int, int, int]:
    """_level_box_kernel, or its NumPy twin in reading mode."""
    if reference_mode():
        return level_box_reference(levels, low, high)
    return _level_box_kernel(levels, low, high)


@njit(nogil=True, cache=True)
def _lookup_kernel(table, levels):
    """table[levels]: the float32 value of each pixel of the 2-D uint8 array levels."""
    height, width = levels.shape
    out = np.empty((height, width), dtype=np.float32)
    for y in range(height):
        for x in range(width):
            out[y, x] = table[levels[y, x]]
    return out


def lookup_reference(table, levels):
    """NumPy twin of _lookup_kernel."""
    return table[levels]


def lookup(table: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """_lookup_kernel, or its NumPy twin in reading mode."""
    if reference_mode():
        return lookup_reference(table, levels)
    return _lookup_kernel(table, levels)


@njit(nogil=True, cache=True)
def _mask_transitions_kernel(mask):
    """(area, n0, n90, n45, n135) of a 2-D boolean mask with paper all around it: its
    count of True pixels, and of the neighbouring pairs that differ along rows (n0),
    columns (n90), the down-right diagonal (n45) and the down-left one (n135).

    The mask is copied into a frame one pixel wider on every side (paper), so that each
    pair is counted at its lower or right pixel without a test for the edges."""
    height, width = mask.shape
    m = np.zeros((height + 2, width + 2), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            m[y + 1, x + 1] = mask[y, x]
    area = n0 = n90 = n45 = n135 = 0
    for y in range(1, height + 2):
        here = m[y]
        up = m[y - 1]
        for x in range(1, width + 2):
            area += here[x]
            n0 += here[x] ^ here[x - 1]
            n90 += here[x] ^ up[x]
            n45 += here[x] ^ up[x - 1]
            n135 += here[x - 1] ^ up[x]  # the pair (y, x - 1) and (y - 1, x)
    return area, n0, n90, n45, n135


def mask_transitions_reference(mask):
    """NumPy twin of _mask_transitions_kernel: the mask padded with paper, each neighbour a
    shift."""
    m = np.pad(mask, 1)
    n0 = np.count_nonzero(m[:, 1:] != m[:, :-1])
    n90 = np.count_nonzero(m[1:, :] != m[:-1, :])
    n45 = np.count_nonzero(m[1:, 1:] != m[:-1, :-1])
    n135 = np.count_nonzero(m[1:, :-1] != m[:-1, 1:])
    return int(np.count_nonzero(mask)), int(n0), int(n90), int(n45), int(n135)


def mask_transitions(mask: np.ndarray) -> tuple[int, int, int, int, int]:
    """_mask_transitions_kernel, or its NumPy twin in reading mode."""
    if reference_mode():
        return mask_transitions_reference(mask)
    return _mask_transitions_kernel(mask)
