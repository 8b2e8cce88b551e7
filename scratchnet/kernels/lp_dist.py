"""Numba CPU kernels for the lp-dist neuron: y[b, i] = ||x[b] - w[i]||_p for x [B, n], w [m, n], the relaxation of the
l-inf-dist neuron that Zhang et al. 2021 (ICML; shared/specs/linf-dist-nets.md, section 3) train with, p growing towards
infinity. The NumPy twins in `kernels/reference/lp_dist.py` define what each function computes.

Every term is scaled by the l-inf distance M = max_j |d_j| (`linf_dist_values`), so (|d_j| / M)^p <= 1 and the sum
cannot overflow; the gradient's base |d_j| / y is <= 1 as well. An integer exponent below 2^POWER_BITS is compiled
into the kernel (one kernel per exponent, built on first use): the power becomes the few squarings it needs,
straight-line code that vectorizes; any other p calls libm's pow (about 50x slower than p = 8 here, which is why the
training p schedule rounds p to powers of two). Bases whose power would be subnormal are set to 0 first (subnormal
arithmetic is slow). One row of x is reduced against four rows of w at a time. The backward computes each power once
for both gradients, with the sign of x - w folded into it for an integer exponent: parallel over blocks of four rows
of w, with a private copy of gx per thread. The sums are reassociated (FASTMATH) so that they vectorize: results
match the reference up to rounding; NaN still propagates. The kernels multiply by 1 / y (and the backward by gy /
y); the rare outputs where those overflow, at subnormal or near-subnormal distances, are left to the reference.
"""

import functools

import numpy as np
from numba import get_num_threads, get_thread_id, njit, prange

from scratchnet.kernels import reference
from scratchnet.kernels.linf_dist import _check, linf_dist_values

# Integer exponents below 2**POWER_BITS (p up to 2047) use the multiplication chain.
POWER_BITS = 11
# float32 constants: in float64 code they widen, in float32 code they keep the arithmetic in float32
ZERO, ONE = np.float32(0), np.float32(1)
FASTMATH = {"reassoc", "contract"}


def _floor(q, dtype):
    """The smallest base t whose power t^q is a normal number of `dtype` (0 for q = 0)."""
    if q == 0:
        return dtype(0)
    return np.nextafter(dtype(np.finfo(dtype).tiny ** (1.0 / q)), dtype(1))


@functools.cache
def _power_function(k):
    """An inlined Numba function power(t, q, floor) = t^q for 0 <= t <= 1.

    k is an integer exponent below 2**POWER_BITS, frozen into the compiled code, which then ignores the run-time q:
    the unrolled binary exponentiation folds to exactly the squarings and multiplies that k needs (3 squarings for
    k = 8), branch-free, and the loop around it vectorizes. k = None uses libm's pow with the run-time q (about 50x
    slower). Bases below `floor` become 0: their power would be subnormal (under 1e-38 of the largest term, which
    is 1, in float32; under 1e-308 in float64), and subnormal arithmetic is slow on x86. NaN passes through (the
    comparison is false for NaN)."""
    if k is None:

        @njit(inline="always")
        def power(t, q, floor):
            return ZERO if t < floor else t**q

        return power

    @njit(inline="always")
    def power(t, q, floor):
        t = ZERO if t < floor else t
        r = ONE
        for bit in range(POWER_BITS):
            if (k >> bit) & 1:
                r *= t
            t *= t
        return r

    return power


def _exponent(q):
    """q as the integer that `_power_function` specializes on, or None when q is not an integer below
    2**POWER_BITS. Each integer compiles its own kernels (1-2 s each, once per process): the training
    p schedule rounds p to powers of two, so a run compiles a handful."""
    return int(q) if float(q).is_integer() and q < 2**POWER_BITS else None


@njit(cache=True, inline="always")
def _inverse(top):
    return ONE / top if top > 0 else ZERO * top


@functools.cache
def _lp_forward_kernel(k):
    power = _power_function(k)

    @njit(inline="always")
    def block(x0, w0, w1, w2, w3, s0, s1, s2, s3, p, floor, n):
        """sum_j (|x0[j] - w_c[j]| s_c)^p for four rows of w: four vectorized reductions over one loop. The sums
        start from a zero of x's dtype (ZERO * s0 would carry a NaN or inf of s0 into all four)."""
        a0 = a1 = a2 = a3 = x0.dtype.type(0)
        for j in range(n):
            u = x0[j]
            a0 += power(np.abs(u - w0[j]) * s0, p, floor)
            a1 += power(np.abs(u - w1[j]) * s1, p, floor)
            a2 += power(np.abs(u - w2[j]) * s2, p, floor)
            a3 += power(np.abs(u - w3[j]) * s3, p, floor)
        return a0, a1, a2, a3

    @njit(parallel=True, fastmath=FASTMATH)
    def kernel(x, w, p, floor, y):
        """On entry y holds the l-inf distance M; on exit M (sum_j (|d_j| / M)^p)^(1/p). A block past the last
        row of w repeats that row and writes the same value twice."""
        m, n = w.shape
        for b in prange(x.shape[0]):
            for i0 in range(0, m, 4):
                i1, i2, i3 = min(i0 + 1, m - 1), min(i0 + 2, m - 1), min(i0 + 3, m - 1)
                t0, t1, t2, t3 = y[b, i0], y[b, i1], y[b, i2], y[b, i3]
                a0, a1, a2, a3 = block(x[b], w[i0], w[i1], w[i2], w[i3], _inverse(t0), _inverse(t1),
                                       _inverse(t2), _inverse(t3), p, floor, n)
                y[b, i0], y[b, i1] = t0 * a0 ** (ONE / p), t1 * a1 ** (ONE / p)
                y[b, i2], y[b, i3] = t2 * a2 ** (ONE / p), t3 * a3 ** (ONE / p)

    return kernel


def _overflowing(y, gy):
    """The outputs y > 0 whose 1 / y or gy / y overflows, which the kernels multiply by (gy = 1 for the forward):
    y subnormal, or within a factor |gy| of the smallest normal numbers (in float32, x and w alike to about 1e-37
    in every coordinate). The lp functions leave these rare outputs to the reference, which divides by y, one
    output at a time."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return (y > 0) & np.isfinite(gy) & ~(np.isfinite(1 / y) & np.isfinite(gy * (1 / y)))


def lp_dist_forward(x, w, p):
    """y[b, i] = (sum_j |x[b, j] - w[i, j]|^p)^(1/p) for p >= 1, overflow-safe (scaled by the row max); infinite
    where the row max is (an infinite input, or a difference beyond the dtype's range), as the l-inf distance."""
    x, w = _check(x, w)
    assert p >= 1, p
    y = linf_dist_values(x, w)
    rare, infinite = np.argwhere(_overflowing(y, 1)), np.isinf(y)
    dtype = x.dtype.type
    _lp_forward_kernel(_exponent(p))(x, w, dtype(p), _floor(p, dtype), y)
    y[infinite] = np.inf  # the kernel's inf * (sum of 0 * |d|)^(1/p) gives NaN there
    for b, i in rare:
        y[b, i] = reference.lp_dist_forward(x[b : b + 1], w[i : i + 1], p)[0, 0]
    return y


@njit(cache=True, inline="always")
def _coefficients(gy, y, b, i, valid):
    """(1 / y, gy) of output (b, i), or (0, 0 gy) for an output at y = 0, whose gradient is 0 (NaN for an
    infinite gy, as in the reference), or (0, 0) for a padding column (not `valid`), which passes nothing. A NaN
    y passes on (1 / y = NaN), as in the reference: at p = 1, whose gradient sign(d) does not read y, the other
    coordinates keep theirs."""
    if not valid:
        return ZERO, ZERO
    if not y[b, i] <= 0:
        return ONE / y[b, i], gy[b, i]
    return ZERO * y[b, i], ZERO * gy[b, i]


@functools.cache
def _lp_backward_kernel(k):
    # An integer exponent k >= 1 folds the sign into the base: c sign(d) (|d| s)^k = (c s) d (|d| s)^(k-1), one
    # multiplication in place of the sign's four vector operations (1.3x faster at p = 8, 1.7x at p = 2), with
    # c s computed once per output. p = 1 (k = 0) keeps the sign: (|d| s)^-1 is infinite at d = 0; so does the
    # pow path of a non-integer k.
    folded = k is not None and k >= 1
    power = _power_function(k - 1 if folded else k)

    @njit(inline="always")
    def term(d, s, c, q, floor):
        """c sign(d) (|d| s)^q, where folded means c holds c s. Folded, the compiled exponent is k - 1 while the
        floor is still that of k: a base below it gives 0 (k >= 2) or the term c s d (k = 1: no power that could
        be subnormal). NaN passes through."""
        if folded:
            return c * d * power(np.abs(d) * s, q, floor)
        return c * np.sign(d) * power(np.abs(d) * s, q, floor)

    @njit(inline="always")
    def rows(x0, gx0, w0, w1, w2, w3, gw0, gw1, gw2, gw3, s0, s1, s2, s3, c0, c1, c2, c3, q, floor, n):
        """Adds one row of x's terms against four rows of w to gx0 and subtracts them from gw0..gw3."""
        for j in range(n):
            u = x0[j]
            t0, t1 = term(u - w0[j], s0, c0, q, floor), term(u - w1[j], s1, c1, q, floor)
            t2, t3 = term(u - w2[j], s2, c2, q, floor), term(u - w3[j], s3, c3, q, floor)
            gx0[j] += (t0 + t1) + (t2 + t3)
            gw0[j] -= t0
            gw1[j] -= t1
            gw2[j] -= t2
            gw3[j] -= t3

    @njit(parallel=True, fastmath=FASTMATH)
    def kernel(gy, x, w, y, q, floor, gx_parts, gw):
        """Parallel over blocks of four rows of w (each block's gw rows belong to one thread), with a private
        gx_parts[thread]. A block past the last row repeats that row with zero coefficients."""
        m, n = w.shape
        for block in prange((m + 3) // 4):
            i0 = 4 * block
            i1, i2, i3 = min(i0 + 1, m - 1), min(i0 + 2, m - 1), min(i0 + 3, m - 1)
            gx = gx_parts[get_thread_id()]
            for b in range(x.shape[0]):
                s0, c0 = _coefficients(gy, y, b, i0, True)
                s1, c1 = _coefficients(gy, y, b, i1, i0 + 1 < m)
                s2, c2 = _coefficients(gy, y, b, i2, i0 + 2 < m)
                s3, c3 = _coefficients(gy, y, b, i3, i0 + 3 < m)
                if folded:
                    c0, c1, c2, c3 = c0 * s0, c1 * s1, c2 * s2, c3 * s3
                rows(x[b], gx[b], w[i0], w[i1], w[i2], w[i3], gw[i0], gw[i1], gw[i2], gw[i3],
                     s0, s1, s2, s3, c0, c1, c2, c3, q, floor, n)

    return kernel


def lp_dist_backward(gy, x, w, y, p):
    """gx[b, j] = sum_i gy[b, i] sign(d) (|d| / y[b, i])^(p - 1) with d = x[b, j] - w[i, j]; gw likewise with
    the opposite sign, summed over b. An output y = 0 (x[b] = w[i]) passes no gradient. The power, the costly part,
    is computed once per term for both gradients (threads x B x n extra memory for the private gx copies)."""
    x, w = _check(x, w)
    assert p >= 1, p
    gy, y = np.ascontiguousarray(gy, x.dtype), np.ascontiguousarray(y, x.dtype)
    assert gy.shape == y.shape == (x.shape[0], w.shape[0]), (gy.shape, y.shape, x.shape, w.shape)
    overflowing = _overflowing(y, gy)
    rare = np.argwhere(overflowing)
    kernel_y = np.where(overflowing, x.dtype.type(0), y) if len(rare) else y  # y = 0: the kernel passes nothing
    gx_parts, gw = np.zeros((get_num_threads(), *x.shape), x.dtype), np.zeros_like(w)
    dtype = x.dtype.type
    _lp_backward_kernel(_exponent(p - 1))(gy, x, w, kernel_y, dtype(p - 1), _floor(p - 1, dtype), gx_parts, gw)
    gx = gx_parts.sum(axis=0)
    for b, i in rare:
        pair_gx, pair_gw = reference.lp_dist_backward(gy[b : b + 1, i : i + 1], x[b : b + 1], w[i : i + 1],
                                                      y[b : b + 1, i : i + 1], p)
        gx[b] += pair_gx[0]
        gw[i] += pair_gw[0]
    return gx, gw
