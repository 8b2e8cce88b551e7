"""Numba CPU kernels for the l-inf-dist neuron: y[b, i] = ||x[b] - w[i]||_inf for x [B, n], w [m, n].

Zhang et al. 2021, "Towards Certifying l-inf Robustness using Neural Networks with l-inf-dist Neurons" (ICML):
the neuron and its interval bounds (shared/specs/linf-dist-nets.md, sections 1 and 2). The
NumPy twins in `kernels/reference/linf_dist.py` define what each function computes; this file is about speed
(shared/specs/kernel-performance.md):

- The l-inf forward is a matrix product with max(|x - w|) in place of the multiply-add. A register block of
  2 rows of x by 4 rows of w keeps eight running maxima over one contiguous loop along n, and a tile of w sized
  for L2 is reused by every row of x before the next tile is read.
- LLVM does not vectorize a floating-point max reduction, but for values >= 0 the order of the float equals
  the order of its bit pattern read as an integer, and integer max reductions vectorize. So |x - w| is
  reduced as int32 (float32) or int64 (float64) bits, and y is those bits read back as floats.
- The argmax is found without a second pass over n: the loop runs chunk by chunk, remembers which chunk first
  reached the running max, and afterwards rescans only that chunk for the first coordinate holding the max.
  That takes about 1.7x the time of the plain loop, so where no gradient is needed (certification, evaluation,
  lp's scale) `linf_dist_values` runs the plain loop over all of n instead.
- The sign of x - w at the argmax is not stored: the backward's gx pass reads it back from x and w (two loads an
  output) and keeps gy times it for the gw pass. The backward is sparse: one scatter per output, parallel over
  rows of x for gx and over blocks of rows of w for gw, so no two threads ever write the same row and there is no
  [B, m, n] intermediate.

The lp relaxation of training (spec section 3) is in lp_dist.py.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

# The register block: RB rows of x against RJ rows of w, eight accumulators (lesson 2 of the spec).
RB, RJ = 2, 4
# The argmax is tracked per chunk of CHUNK coordinates (128 measured 1.15x faster than 64: fewer horizontal
# reductions, a longer vector loop; the rescan of one chunk costs little either way); a tile of w of about
# W_BYTES stays in L2.
CHUNK = 128
W_BYTES = 256 * 1024
# The gw scatter walks SCATTER_WIDTH columns of index at a time (64 int64 = 8 cache lines a row).
SCATTER_WIDTH = 64


@intrinsic
def _bits(typingctx, value):
    """The bit pattern of a float32 (float64) as an int32 (int64); for values >= 0 it orders as the float does."""
    integer = types.int32 if value == types.float32 else types.int64

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(integer))

    return integer(value), codegen


def _check(x, w):
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    assert x.ndim == 2 and w.ndim == 2 and x.shape[1] == w.shape[1] >= 1, (x.shape, w.shape)
    assert x.dtype == w.dtype and x.dtype in (np.float32, np.float64), (x.dtype, w.dtype)
    return x, w


def _int_view(y):
    return y.view(np.int32 if y.dtype == np.float32 else np.int64)


# ---------------------------------------------------------------------------------------------------- l-inf


@njit(cache=True, inline="always")
def _block_max(x0, x1, w0, w1, w2, w3, n):
    """The 2 x 4 block of max_{j < n} |x_r[j] - w_c[j]| as integer bits: eight vectorized reductions. The loop
    index is a bare range variable over views (lesson 3: an offset index keeps wrap-around checks and gathers)."""
    a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = _bits(x0.dtype.type(0))
    for j in range(n):
        u0, u1 = x0[j], x1[j]
        v0, v1, v2, v3 = w0[j], w1[j], w2[j], w3[j]
        a00 = max(a00, _bits(np.abs(u0 - v0)))
        a01 = max(a01, _bits(np.abs(u0 - v1)))
        a02 = max(a02, _bits(np.abs(u0 - v2)))
        a03 = max(a03, _bits(np.abs(u0 - v3)))
        a10 = max(a10, _bits(np.abs(u1 - v0)))
        a11 = max(a11, _bits(np.abs(u1 - v1)))
        a12 = max(a12, _bits(np.abs(u1 - v2)))
        a13 = max(a13, _bits(np.abs(u1 - v3)))
    return (a00, a01, a02, a03, a10, a11, a12, a13)


@njit(cache=True, inline="always")
def _first_at(x_row, w_row, target, n):
    """The first j < n with bits(|x_j - w_j|) == target: a min reduction over j, which vectorizes (a loop that
    breaks at the first hit does not). The indices are int32, eight to a vector instead of four (1.1x overall)."""
    none = np.int32(n)
    first = none
    for j in range(n):
        first = min(first, np.int32(j) if _bits(np.abs(x_row[j] - w_row[j])) == target else none)
    return first


@njit(cache=True, inline="always")
def _block_argchunk(x0, x1, w0, w1, w2, w3, n, chunk, best, start):
    """The 2 x 4 block's maxima over n as integer bits into `best`, and into `start` for each the first chunk of
    `chunk` coordinates that reaches it (strict >, so a tie keeps the earlier chunk). The running maxima are
    sixteen scalars, which stay in registers: kept in the arrays, they took 1.2x as long overall."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = _bits(x0.dtype.type(0)) - 1
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        c = _block_max(x0[lo:hi], x1[lo:hi], w0[lo:hi], w1[lo:hi], w2[lo:hi], w3[lo:hi], hi - lo)
        m0, s0 = (c[0], lo) if c[0] > m0 else (m0, s0)
        m1, s1 = (c[1], lo) if c[1] > m1 else (m1, s1)
        m2, s2 = (c[2], lo) if c[2] > m2 else (m2, s2)
        m3, s3 = (c[3], lo) if c[3] > m3 else (m3, s3)
        m4, s4 = (c[4], lo) if c[4] > m4 else (m4, s4)
        m5, s5 = (c[5], lo) if c[5] > m5 else (m5, s5)
        m6, s6 = (c[6], lo) if c[6] > m6 else (m6, s6)
        m7, s7 = (c[7], lo) if c[7] > m7 else (m7, s7)
    best[0], best[1], best[2], best[3], best[4], best[5], best[6], best[7] = m0, m1, m2, m3, m4, m5, m6, m7
    start[0], start[1], start[2], start[3], start[4], start[5], start[6], start[7] = s0, s1, s2, s3, s4, s5, s6, s7


@njit(parallel=True, cache=True)
def _linf_forward(x, w, chunk, tile, y_bits, index):
    batch, n = x.shape
    m = w.shape[0]
    for t0 in range(0, m, tile):
        for bb in prange((batch + RB - 1) // RB):
            # a block past the edge repeats the last row: the same value is written twice, by the same thread
            rows = (bb * RB, min(bb * RB + 1, batch - 1))
            best = np.empty(RB * RJ, y_bits.dtype)
            start = np.empty(RB * RJ, np.int64)
            for i0 in range(t0, min(t0 + tile, m), RJ):
                cols = (i0, min(i0 + 1, m - 1), min(i0 + 2, m - 1), min(i0 + 3, m - 1))
                _block_argchunk(x[rows[0]], x[rows[1]], w[cols[0]], w[cols[1]], w[cols[2]], w[cols[3]], n, chunk,
                                best, start)
                for r in range(RB * RJ):
                    b, i, lo = rows[r // RJ], cols[r % RJ], start[r]
                    hi = min(lo + chunk, n)
                    y_bits[b, i] = best[r]
                    index[b, i] = lo + _first_at(x[b, lo:hi], w[i, lo:hi], best[r], hi - lo)


def linf_dist_forward(x, w):
    """y[b, i] = max_j |x[b, j] - w[i, j]| and index[b, i] = the first j where the max is reached (int64)."""
    x, w = _check(x, w)
    y = np.empty((x.shape[0], w.shape[0]), x.dtype)
    index = np.empty(y.shape, np.int64)
    _linf_forward(x, w, CHUNK, _tile_rows(w), _int_view(y), index)
    return y, index


def _tile_rows(w):
    """Rows of w in a tile of about W_BYTES, a multiple of RJ."""
    return max(RJ, W_BYTES // (w.shape[1] * w.itemsize) // RJ * RJ)


@njit(parallel=True, cache=True)
def _linf_values(x, w, tile, y_bits):
    """The forward's loop without the argmax: one reduction over all of n per block, about 1.7x faster."""
    batch, n = x.shape
    m = w.shape[0]
    for t0 in range(0, m, tile):
        for bb in prange((batch + RB - 1) // RB):
            r0, r1 = bb * RB, min(bb * RB + 1, batch - 1)
            for i0 in range(t0, min(t0 + tile, m), RJ):
                i1, i2, i3 = min(i0 + 1, m - 1), min(i0 + 2, m - 1), min(i0 + 3, m - 1)
                block = _block_max(x[r0], x[r1], w[i0], w[i1], w[i2], w[i3], n)
                y_bits[r0, i0], y_bits[r0, i1], y_bits[r0, i2], y_bits[r0, i3] = block[0], block[1], block[2], block[3]
                y_bits[r1, i0], y_bits[r1, i1], y_bits[r1, i2], y_bits[r1, i3] = block[4], block[5], block[6], block[7]


def linf_dist_values(x, w):
    """y[b, i] = max_j |x[b, j] - w[i, j]| alone, for when no gradient is needed (and as lp's scale)."""
    x, w = _check(x, w)
    y = np.empty((x.shape[0], w.shape[0]), x.dtype)
    _linf_values(x, w, _tile_rows(w), _int_view(y))
    return y


@njit(parallel=True, cache=True)
def _scatter_x(gy, x, w, index, gx, coefficient):
    """gx[b, j*] += c with c = gy[b, i] sign(x[b, j*] - w[i, j*]), parallel over rows b; c is kept for gw."""
    for b in prange(gy.shape[0]):
        for i in range(gy.shape[1]):
            j = index[b, i]
            c = gy[b, i] * np.sign(x[b, j] - w[i, j])
            coefficient[b, i] = c
            gx[b, j] += c


@njit(parallel=True, cache=True)
def _scatter_w(coefficient, index, width, gw):
    """gw[i, j*] -= c, parallel over blocks of `width` rows of w. Each block walks down its columns of index and
    coefficient, reading `width` contiguous entries a row (a column at a time, re-deriving the sign from x and w,
    took 1.5x as long at B = 512, n = m = 1024)."""
    m = index.shape[1]
    for block in prange((m + width - 1) // width):
        for b in range(index.shape[0]):
            for i in range(block * width, min(block * width + width, m)):
                gw[i, index[b, i]] -= coefficient[b, i]


def linf_dist_backward(gy, x, w, index):
    """gx[b, j*] += gy[b, i] s and gw[i, j*] -= gy[b, i] s for j* = index[b, i], s = sign(x[b, j*] - w[i, j*])."""
    x, w = _check(x, w)
    gy, index = np.ascontiguousarray(gy, x.dtype), np.ascontiguousarray(index, np.int64)
    assert gy.shape == index.shape == (x.shape[0], w.shape[0]), (gy.shape, index.shape, x.shape, w.shape)
    assert index.size == 0 or (index.min() >= 0 and index.max() < x.shape[1]), "index out of range"
    gx, gw, coefficient = np.zeros_like(x), np.zeros_like(w), np.empty_like(gy)
    _scatter_x(gy, x, w, index, gx, coefficient)
    _scatter_w(coefficient, index, SCATTER_WIDTH, gw)
    return gx, gw


# ---------------------------------------------------------------------------------------------------- bounds


@njit(parallel=True, cache=True)
def _interval_bounds(lower, upper, w, low_bits, high_bits):
    zero = _bits(lower.dtype.type(0))
    for b in prange(lower.shape[0]):
        for i in range(w.shape[0]):
            low = high = zero
            for j in range(w.shape[1]):
                # np.maximum keeps a NaN in either argument (the built-in max drops one in its second: a NaN box
                # would get finite bounds); np.abs clears the sign bit of a NaN, whose bits would be negative
                below, above = lower[b, j] - w[i, j], upper[b, j] - w[i, j]
                low = max(low, _bits(np.abs(np.maximum(np.maximum(below, -above), lower.dtype.type(0)))))
                high = max(high, _bits(np.maximum(np.abs(below), np.abs(above))))
            low_bits[b, i], high_bits[b, i] = low, high


def interval_bounds(lower, upper, w):
    """The exact range [y_lower, y_upper] of ||x - w_i||_inf over the box lower[b] <= x <= upper[b]:
    y_upper = max_j max(|lower_j - w_j|, |upper_j - w_j|), y_lower = max_j max(0, lower_j - w_j, w_j - upper_j)."""
    lower, w = _check(lower, w)
    upper, _ = _check(upper, w)
    assert lower.shape == upper.shape, (lower.shape, upper.shape)
    y_lower = np.empty((lower.shape[0], w.shape[0]), lower.dtype)
    y_upper = np.empty_like(y_lower)
    _interval_bounds(lower, upper, w, _int_view(y_lower), _int_view(y_upper))
    return y_lower, y_upper
