"""Winograd's minimal filtering F(4x4, 3x3): the tile transforms of a fast 3x3 convolution.

Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). In one dimension,
4 outputs of a 3-tap correlation, y[i] = g[0] d[i] + g[1] d[i+1] + g[2] d[i+2] for i = 0..3,
need 12 multiplications done directly and only 6 this way:

    y = AT @ ((G @ g) * (BT @ d))          d: 6 inputs, g: 3 taps, y: 4 outputs

In two dimensions, for a 6x6 input tile d and a 3x3 filter g, the 4x4 output tile is

    Y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T

36 multiplications instead of 144. A convolution layer sums this over its input channels. With
U = G g G.T for every (out channel o, in channel c) and V = BT d BT.T for every (in channel c,
tile t), the sum over c is, for each of the 36 positions xi of the 6x6 transformed tile, a
matrix product:

    M[xi] = U[xi] @ V[xi]          (OC, C) @ (C, tiles) -> (OC, tiles)

and each output tile is AT @ M @ AT.T. The convolution's multiplications are now 36 matrix
products, 4x fewer flops than im2col's one product (2.25x fewer when 49 of every 64 outputs are
kept, as at 7x7 and 14x14).

This file holds the kernels that move data between image tiles and the transformed domain:
the input transform (BT), the output transform (AT), and their transposes (B = BT.T and
A = AT.T), which the backward pass needs. The layer (scratchnet/nn/winograd.py,
Winograd3x3Function) composes them with the matrix products.

Layout: the kernels work on a chunk of NB samples with the batch innermost, `(C, H, W, NB)`,
so the loops over the batch are contiguous and vectorise. A transformed array is
`(36, C, tiles * NB)`, column index (th, tw, n). The kernels read and write the layer's own
(n, C, H, W) arrays, a chunk of n <= NB samples, through small buffers in that layout (a
zero-padded plane of one channel, a tile): the input transform reads the input, the output
transform writes the output, and their adjoints read the upstream gradient and write the
input's gradient.

Each kernel has a NumPy twin (`*_reference`, the same signature) that writes the same
transform with the matrices and einsum: the oracle in tests/test_winograd.py.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Points 0, 1, -1, 2, -2 and infinity (Lavin and Gray, section 4.2).
BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=np.float64,
)
G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=np.float64,
)
AT = np.array(
    [
        [1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 0],
        [0, 1, 1, 4, 4, 0],
        [0, 1, -1, 8, -8, 1],
    ],
    dtype=np.float64,
)
ALPHA = 6  # transformed tile size: m + r - 1 = 4 + 3 - 1
TILE = 4  # outputs per tile along each axis (m)
# Samples per chunk, the kernels' innermost loop. A constant, so that the compiler turns each
# of those loops into exactly one 16-lane SIMD operation. 16 samples also keep a chunk's
# transformed arrays in the L2 cache for the matrix products that follow.
NB = 16


def num_tiles(out_size: int) -> int:
    """Tiles of TILE outputs that cover out_size outputs (the last one may stick out)."""
    return -(-out_size // TILE)


# GG[a * 6 + b, k * 3 + l] = G[a, k] * G[b, l]: both sides of G @ g @ G.T at once, so that the
# weight transform of all (o, c) is one matrix product with K = 9. Two tensordots with K = 3
# and a transposing copy took longer: conv3's 128 x 64 filters, float32, one thread, 725 ->
# 277 us, and the adjoint 1395 -> 307 us.
GG = np.kron(G, G)


def weight_transform(weight: np.ndarray) -> np.ndarray:
    """U[a * 6 + b, o, c] = (G @ weight[o, c] @ G.T)[a, b]: (OC, C, 3, 3) -> (36, OC, C).

    As one product: U = GG @ weight.reshape(OC * C, 9).T, viewed as (36, OC, C).
    """
    OC, C = weight.shape[:2]
    taps = weight.reshape(OC * C, 9)
    return (GG.astype(weight.dtype) @ taps.T).reshape(ALPHA * ALPHA, OC, C)


def weight_transform_adjoint(dU: np.ndarray) -> np.ndarray:
    """dweight[o, c] = G.T @ dU[:, o, c] (as 6x6) @ G: the transpose of weight_transform.

    As one product: dweight = dU.reshape(36, OC * C).T @ GG, viewed as (OC, C, 3, 3).
    """
    _, OC, C = dU.shape
    dtaps = dU.reshape(ALPHA * ALPHA, OC * C).T @ GG.astype(dU.dtype)
    return dtaps.reshape(OC, C, 3, 3)


# float32 constants: an int literal would turn every float32 product into float64.
TWO, FOUR, FIVE, EIGHT = np.float32(2), np.float32(4), np.float32(5), np.float32(8)


@njit(cache=True)
def _bt(d0, d1, d2, d3, d4, d5):
    """BT @ d: the input transform along one axis (6 -> 6)."""
    return (
        FOUR * d0 - FIVE * d2 + d4,
        -FOUR * d1 - FOUR * d2 + d3 + d4,
        FOUR * d1 - FOUR * d2 - d3 + d4,
        -TWO * d1 - d2 + TWO * d3 + d4,
        TWO * d1 - d2 - TWO * d3 + d4,
        FOUR * d1 - FIVE * d3 + d5,
    )


@njit(cache=True)
def _b(v0, v1, v2, v3, v4, v5):
    """BT.T @ v: the input transform's transpose (6 -> 6), for the input's gradient."""
    return (
        FOUR * v0,
        -FOUR * v1 + FOUR * v2 - TWO * v3 + TWO * v4 + FOUR * v5,
        -FIVE * v0 - FOUR * v1 - FOUR * v2 - v3 - v4,
        v1 - v2 + TWO * v3 - TWO * v4 - FIVE * v5,
        v0 + v1 + v2 + v3 + v4,
        v5,
    )


@njit(cache=True)
def _at(m0, m1, m2, m3, m4, m5):
    """AT @ m: the output transform along one axis (6 -> 4)."""
    return (
        m0 + m1 + m2 + m3 + m4,
        m1 - m2 + TWO * m3 - TWO * m4,
        m1 + m2 + FOUR * m3 + FOUR * m4,
        m1 - m2 + EIGHT * m3 - EIGHT * m4 + m5,
    )


@njit(cache=True)
def _a(y0, y1, y2, y3):
    """AT.T @ y: the output transform's transpose (4 -> 6), for the output's gradient."""
    return (
        y0,
        y0 + y1 + y2 + y3,
        y0 - y1 + y2 - y3,
        y0 + TWO * y1 + FOUR * y2 + EIGHT * y3,
        y0 - TWO * y1 + FOUR * y2 - EIGHT * y3,
        y3,
    )


# ---------------------------------------------------------------------------------------------
# The kernels. Each works tile by tile, in two 1-D passes: along every row of the tile into a
# small scratch array q, then along every column of q (L @ tile @ L.T, as (L @ tile.T).T ...).
# In each pass the loop over the nb samples is innermost and straight-line, so it runs on SIMD
# lanes.
# ---------------------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def input_transform_into(x, top, left, tiles_h, tiles_w, V):
    """V[a * 6 + b, c, t * NB + n] = (BT @ d @ BT.T)[a, b], d the 6x6 tile of x[n, c] at
    (4th - top, 4tw - left), zero outside x (the padding)

    for each tile t = th * tiles_w + tw. Input tiles overlap by 2 (6 wide, 4 apart).
    x is the layer's input, (n, C, H, W) with n <= NB, and H + top, W + left at most
    4 * tiles + 2; the lanes n..NB-1 of a short chunk are zero. Each channel is first copied,
    batch innermost and zero-padded, into a scratch plane that stays in L1 (measured, conv2
    of the CNN at batch 64, one thread: 0.92 -> 0.73 ms against packing all channels into a
    (C, rows, cols, NB) array first). V (36, C, tiles_h * tiles_w * NB).
    """
    n_used, C, H, W = x.shape
    nb = NB
    plane = np.zeros((4 * tiles_h + 2, 4 * tiles_w + 2, nb), dtype=V.dtype)  # margins stay 0
    q = np.empty((6, 6, nb), dtype=V.dtype)  # q[k, b] = (BT @ row k of the tile)[b]
    for c in range(C):
        for i in range(H):
            row = plane[top + i]
            for n in range(n_used):
                for j in range(W):
                    row[left + j, n] = x[n, c, i, j]
        # The tile loops are written out here rather than called: as a function of their
        # own they ran 2x slower.
        for th in range(tiles_h):
            for tw in range(tiles_w):
                i, j, t0 = 4 * th, 4 * tw, (th * tiles_w + tw) * nb
                for k in range(6):
                    row = plane[i + k]
                    for n in range(nb):
                        q[k, 0, n], q[k, 1, n], q[k, 2, n], q[k, 3, n], q[k, 4, n], q[k, 5, n] = (
                            _bt(row[j, n], row[j + 1, n], row[j + 2, n], row[j + 3, n],
                                row[j + 4, n], row[j + 5, n]))  # fmt: skip
                for b in range(6):
                    for n in range(nb):
                        v0, v1, v2, v3, v4, v5 = _bt(
                            q[0, b, n], q[1, b, n], q[2, b, n], q[3, b, n], q[4, b, n], q[5, b, n]
                        )
                        t = t0 + n
                        V[b, c, t], V[6 + b, c, t], V[12 + b, c, t] = v0, v1, v2
                        V[18 + b, c, t], V[24 + b, c, t], V[30 + b, c, t] = v3, v4, v5


@njit(nogil=True, cache=True)
def input_transform_adjoint_into(dV, tiles_h, tiles_w, top, left, dx):
    """dx[n, c] = the sum over tiles of B @ dV[:, c, t * NB + n] (as 6x6) @ B.T, B = BT.T,

    each tile placed at (4th - top, 4tw - left) and cut to dx's (H, W): the transpose of
    input_transform_into. Each tile's gradient goes back to the 36
    inputs it was computed from, and the overlapping tiles add up, in a zeroed scratch plane
    of one channel (it stays in L1) that is then copied into dx. dx is the layer's (n, C, H, W)
    input gradient, n <= NB, written directly (measured, conv2 of the CNN at batch 64, one
    thread: 0.98 -> 0.76 ms against adding into a (C, rows, cols, NB) array and unpacking it).
    dV (36, C, tiles_h * tiles_w * NB).
    """
    n_used, C, H, W = dx.shape
    nb = NB
    plane = np.empty((4 * tiles_h + 2, 4 * tiles_w + 2, nb), dtype=dx.dtype)
    q = np.empty((6, 6, nb), dtype=dx.dtype)  # q[a, b] = (B @ row a of the tile)[b]
    for c in range(C):
        plane[...] = 0
        for th in range(tiles_h):
            for tw in range(tiles_w):
                i, j, t0 = 4 * th, 4 * tw, (th * tiles_w + tw) * nb
                for a in range(6):
                    r = 6 * a
                    for n in range(nb):
                        t = t0 + n
                        q[a, 0, n], q[a, 1, n], q[a, 2, n], q[a, 3, n], q[a, 4, n], q[a, 5, n] = (
                            _b(dV[r, c, t], dV[r + 1, c, t], dV[r + 2, c, t], dV[r + 3, c, t],
                               dV[r + 4, c, t], dV[r + 5, c, t]))  # fmt: skip
                for b in range(6):
                    for n in range(nb):
                        e0, e1, e2, e3, e4, e5 = _b(
                            q[0, b, n], q[1, b, n], q[2, b, n], q[3, b, n], q[4, b, n], q[5, b, n]
                        )
                        plane[i, j + b, n] += e0
                        plane[i + 1, j + b, n] += e1
                        plane[i + 2, j + b, n] += e2
                        plane[i + 3, j + b, n] += e3
                        plane[i + 4, j + b, n] += e4
                        plane[i + 5, j + b, n] += e5
        for i in range(H):  # one (W, NB) block of the plane per image row: it stays in L1
            row = plane[top + i]
            for n in range(n_used):
                for j in range(W):
                    dx[n, c, i, j] = row[left + j, n]


@njit(nogil=True, cache=True)
def output_transform_into(M, tiles_h, tiles_w, bias, y):
    """y[n, c, 4th : 4th+4, 4tw : 4tw+4] = AT @ M[:, c, t * NB + n] (as 6x6) @ AT.T + bias[c]

    for each tile t = th * tiles_w + tw, cut where the last tiles stick out of y. Output tiles
    do not overlap. y is the layer's own output, (n, C, OH, OW) with n <= NB, written here
    directly: an unpacking pass through a (C, rows, cols, NB) buffer cost more than the
    transform itself (measured, conv2 of the CNN, one block of 16: 383 + 249 us -> 337 us).
    M (36, C, tiles_h * tiles_w * NB); bias (C,), zeros for none.
    """
    n_used, C, OH, OW = y.shape
    nb = NB
    q = np.empty((6, 4, nb), dtype=y.dtype)  # q[a, b] = (AT @ row a of the tile)[b]
    e = np.empty((4, 4, nb), dtype=y.dtype)  # the tile's outputs, batch innermost
    for c in range(C):
        for th in range(tiles_h):
            for tw in range(tiles_w):
                i, j, t0 = 4 * th, 4 * tw, (th * tiles_w + tw) * nb
                for a in range(6):
                    r = 6 * a
                    for n in range(nb):
                        t = t0 + n
                        q[a, 0, n], q[a, 1, n], q[a, 2, n], q[a, 3, n] = _at(
                            M[r, c, t], M[r + 1, c, t], M[r + 2, c, t], M[r + 3, c, t],
                            M[r + 4, c, t], M[r + 5, c, t])  # fmt: skip
                for b in range(4):
                    for n in range(nb):
                        e[0, b, n], e[1, b, n], e[2, b, n], e[3, b, n] = _at(
                            q[0, b, n], q[1, b, n], q[2, b, n], q[3, b, n], q[4, b, n], q[5, b, n]
                        )
                rows, cols = min(4, OH - i), min(4, OW - j)
                for n in range(n_used):
                    for k in range(rows):
                        y_row = y[n, c, i + k]
                        for b in range(cols):
                            y_row[j + b] = e[k, b, n] + bias[c]


@njit(nogil=True, cache=True)
def output_transform_adjoint_into(dy, tiles_h, tiles_w, dM):
    """dM[a * 6 + b, c, t * NB + n] = (A @ e @ A.T)[a, b], e = dy[n, c, 4th : 4th+4, 4tw : 4tw+4]

    with A = AT.T: the transpose of output_transform_into (its bias aside), for the output's
    gradient. dy (n, C, OH, OW), n <= NB, the layer's upstream gradient, read directly; e is
    zero where the last tiles stick out of it, and for the lanes n..NB-1 of a short chunk.
    dM (36, C, tiles_h * tiles_w * NB).
    """
    n_used, C, OH, OW = dy.shape
    nb = NB
    e = np.zeros((TILE, TILE, nb), dtype=dM.dtype)  # the tile of dy, batch innermost
    q = np.empty((4, 6, nb), dtype=dM.dtype)  # q[k, b] = (A @ row k of the tile)[b]
    for c in range(C):
        for th in range(tiles_h):
            for tw in range(tiles_w):
                i, j, t0 = 4 * th, 4 * tw, (th * tiles_w + tw) * nb
                # The tile of dy, zero where it sticks out (the lanes n_used..NB-1 stay zero),
                # copied here rather than by a function of its own: 1.2-1.4x faster.
                if i + TILE <= OH and j + TILE <= OW:
                    for n in range(n_used):
                        for k in range(TILE):
                            row = dy[n, c, i + k]
                            for b in range(TILE):
                                e[k, b, n] = row[j + b]
                else:
                    for n in range(n_used):
                        for k in range(TILE):
                            for b in range(TILE):
                                inside = i + k < OH and j + b < OW
                                e[k, b, n] = dy[n, c, i + k, j + b] if inside else 0
                for k in range(4):
                    for n in range(nb):
                        q[k, 0, n], q[k, 1, n], q[k, 2, n], q[k, 3, n], q[k, 4, n], q[k, 5, n] = _a(
                            e[k, 0, n], e[k, 1, n], e[k, 2, n], e[k, 3, n]
                        )
                for b in range(6):
                    for n in range(nb):
                        v0, v1, v2, v3, v4, v5 = _a(q[0, b, n], q[1, b, n], q[2, b, n], q[3, b, n])
                        t = t0 + n
                        dM[b, c, t], dM[6 + b, c, t], dM[12 + b, c, t] = v0, v1, v2
                        dM[18 + b, c, t], dM[24 + b, c, t], dM[30 + b, c, t] = v3, v4, v5


# ---------------------------------------------------------------------------------------------
# NumPy twins: the same transforms with the matrices, on a strided view of the tiles.
# ---------------------------------------------------------------------------------------------


def _tiles(x: np.ndarray, tiles_h: int, tiles_w: int, size: int) -> np.ndarray:
    """Read-only view (C, tiles_h, tiles_w, size, size, nb) of the size x size tiles, 4 apart."""
    C, _, _, nb = x.shape
    s0, s1, s2, s3 = x.strides
    return np.lib.stride_tricks.as_strided(
        x,
        shape=(C, tiles_h, tiles_w, size, size, nb),
        strides=(s0, TILE * s1, TILE * s2, s1, s2, s3),
        writeable=False,
    )


def input_transform_into_reference(x, top, left, tiles_h, tiles_w, V):
    """NumPy twin of input_transform_into."""
    n, C, H, W = x.shape
    padded = np.zeros((C, TILE * tiles_h + 2, TILE * tiles_w + 2, NB), dtype=x.dtype)
    padded[:, top : top + H, left : left + W, :n] = x.transpose(1, 2, 3, 0)
    d = _tiles(padded, tiles_h, tiles_w, ALPHA)
    V[...] = np.einsum("ak,bl,chwkln->abchwn", BT, BT, d).reshape(ALPHA * ALPHA, C, -1)


def input_transform_adjoint_into_reference(dV, tiles_h, tiles_w, top, left, dx):
    """NumPy twin of input_transform_adjoint_into: B @ dV @ B.T per tile, added tile by tile."""
    n, C, H, W = dx.shape
    v = dV.reshape(ALPHA, ALPHA, C, tiles_h, tiles_w, NB)
    tiles = np.einsum("ak,bl,abchwn->chwkln", BT, BT, v)
    padded = np.zeros((C, TILE * tiles_h + 2, TILE * tiles_w + 2, NB), dtype=dx.dtype)
    for th in range(tiles_h):
        for tw in range(tiles_w):
            i, j = TILE * th, TILE * tw
            padded[:, i : i + ALPHA, j : j + ALPHA] += tiles[:, th, tw]
    dx[...] = padded[:, top : top + H, left : left + W, :n].transpose(3, 0, 1, 2)


def output_transform_into_reference(M, tiles_h, tiles_w, bias, y):
    """NumPy twin of output_transform_into."""
    n, C, OH, OW = y.shape
    m = M.reshape(ALPHA, ALPHA, C, tiles_h, tiles_w, NB)
    tiles = np.einsum("ia,jb,abchwn->chiwjn", AT, AT, m).reshape(C, TILE * tiles_h, -1, NB)
    y[...] = tiles[:, :OH, :OW, :n].transpose(3, 0, 1, 2) + bias[:, None, None]


def output_transform_adjoint_into_reference(dy, tiles_h, tiles_w, dM):
    """NumPy twin of output_transform_adjoint_into."""
    n, C, OH, OW = dy.shape
    e = np.zeros((C, TILE * tiles_h, TILE * tiles_w, NB), dtype=dy.dtype)
    e[:, :OH, :OW, :n] = dy.transpose(1, 2, 3, 0)
    e = e.reshape(C, tiles_h, TILE, tiles_w, TILE, NB)
    dM[...] = np.einsum("ia,jb,chiwjn->abchwn", AT, AT, e).reshape(ALPHA * ALPHA, C, -1)
