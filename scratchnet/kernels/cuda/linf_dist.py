"""CUDA kernels for the l-inf-dist and lp-dist neurons: y[b, i] = ||x[b] - w[i]|| for x [B, n], w [m, n].

Zhang et al. 2021, "Towards Certifying l-inf Robustness using Neural Networks with l-inf-dist Neurons" (ICML):
the neuron (Section 3), its lp relaxation for training (Section 4) and its interval bounds (Section 5); the
NumPy twins in `kernels/reference/linf_dist.py` define what each function computes.

- The forward passes and the interval bounds are a matrix product with another reduction in place of the
  multiply-add, and are tiled like one (shared/specs/linf-dist-nets.md, Sec. 5): a block of TILE x TILE threads
  owns a tile of outputs (b, i), walks the n coordinates TILE at a time, loads the matching tiles of x and w into
  shared memory (each thread one value of each), and then every thread reduces its row of the x tile against its
  row of the w tile. The w tile has one padding column, so that the threads of a warp, reading one coordinate of
  sixteen rows, hit sixteen different memory banks. The max keeps the first coordinate that reaches it (the argmax).
- The sparse backward (one scatter per output, to its argmax) runs one thread per row of x for gx and one per
  row of w for gw: a row is only ever written by its own thread, in the CPU kernel's order, so no atomics are
  needed and the sums equal the CPU's bit for bit (the paper's kernel runs one thread per output with atomic
  additions instead: more parallel, but its sums come in no fixed order).
- lp: scaled by the l-inf distance M as on the CPU (every term (|d_j| / M)^p <= 1, so no overflow); its backward
  runs one thread per entry of gx (or gw), summing over the rows of w (or of x).
"""

import numpy as np
from numba import cuda

from scratchnet.kernels.cuda.launch import (
    PADDED,
    THREADS,
    TILE,
    blocks,
    is_device,
    nan_max,
    returned,
    specialized,
    to_device,
    zeros,
)


@cuda.jit(device=True, inline=True)
def _load(tile, a, r, k):
    """tile[ty, tx] = a[r, k], or 0 outside a."""
    tile[cuda.threadIdx.y, cuda.threadIdx.x] = a[r, k] if r < a.shape[0] and k < a.shape[1] else a.dtype.type(0)


@cuda.jit(device=True, inline=True)
def _times_sign(g, d):
    """g sign(d), in g's dtype (g - g: 0, or NaN for an infinite g, as g * 0 would give; a NaN d gives NaN, as
    the CPU's g * np.sign(d))."""
    return g if d > 0 else -g if d < 0 else g - g if d == d else d


def _linf_forward(dtype):
    @cuda.jit
    def linf_forward(x, w, y, index):
        """y[b, i] = max_j |x[b, j] - w[i, j]|, index[b, i] = the first j reaching it (a NaN counts as the max).

        Thread layout: blocks of TILE x TILE threads on a ceil(m / TILE) x ceil(B / TILE) grid; thread (ty, tx) of
        block (bx, by) owns the output (b, i) = (by TILE + ty, bx TILE + tx)."""
        x_tile = cuda.shared.array((TILE, TILE), dtype)
        w_tile = cuda.shared.array((TILE, PADDED), dtype)
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        b0, i0, n = cuda.blockIdx.y * TILE, cuda.blockIdx.x * TILE, x.shape[1]
        best, at = dtype(-1), 0
        for k0 in range(0, n, TILE):
            _load(x_tile, x, b0 + ty, k0 + tx)
            _load(w_tile, w, i0 + ty, k0 + tx)
            cuda.syncthreads()
            for k in range(min(TILE, n - k0)):
                d = abs(x_tile[ty, k] - w_tile[tx, k])
                if d > best or (d != d and best == best):  # strict: ties keep the first j; a NaN best stays
                    best, at = d, k0 + k
            cuda.syncthreads()
        if b0 + ty < y.shape[0] and i0 + tx < y.shape[1]:
            y[b0 + ty, i0 + tx] = best
            index[b0 + ty, i0 + tx] = at

    return linf_forward


def _lp_forward(dtype):
    tiny = dtype(np.finfo(str(dtype)).tiny)  # the smallest normal number (dtype is a Numba type)

    @cuda.jit
    def lp_forward(x, w, p, y):
        """On entry y holds the row max M = ||x[b] - w[i]||_inf; on exit M (sum_j (|x[b, j] - w[i, j]| / M)^p)^(1/p).

        Thread layout: as the l-inf forward, thread (ty, tx) of block (bx, by) owns (by TILE + ty, bx TILE + tx)."""
        x_tile = cuda.shared.array((TILE, TILE), dtype)
        w_tile = cuda.shared.array((TILE, PADDED), dtype)
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        b0, i0, n = cuda.blockIdx.y * TILE, cuda.blockIdx.x * TILE, x.shape[1]
        b, i = b0 + ty, i0 + tx
        inside = b < y.shape[0] and i < y.shape[1]
        top = y[b, i] if inside else dtype(0)
        # A thread outside y, or with top = 0 (every |d| is 0) or NaN, writes nothing: its terms are 0. 1 / top
        # can overflow for a subnormal top: such a thread divides by top instead (|d| / top <= 1 never overflows)
        divide = 0 < top < tiny
        scale = dtype(1) / top if top >= tiny else dtype(0)
        total = dtype(0)
        for k0 in range(0, n, TILE):  # every thread, inside or not, loads and reaches the barriers
            _load(x_tile, x, b0 + ty, k0 + tx)
            _load(w_tile, w, i0 + ty, k0 + tx)
            cuda.syncthreads()
            for k in range(min(TILE, n - k0)):
                d = abs(x_tile[ty, k] - w_tile[tx, k])
                total += (d / top if divide else d * scale) ** p
            cuda.syncthreads()
        if inside and top > 0:
            y[b, i] = top * total ** (dtype(1) / p)

    return lp_forward


def _interval_bounds(dtype):
    @cuda.jit
    def interval_bounds(lower, upper, w, y_lower, y_upper):
        """y_lower[b, i] = max_j max(0, lower[b, j] - w[i, j], w[i, j] - upper[b, j]),
        y_upper[b, i] = max_j max(|lower[b, j] - w[i, j]|, |upper[b, j] - w[i, j]|).

        Thread layout: as the l-inf forward, thread (ty, tx) of block (bx, by) owns (by TILE + ty, bx TILE + tx)."""
        lower_tile = cuda.shared.array((TILE, TILE), dtype)
        upper_tile = cuda.shared.array((TILE, TILE), dtype)
        w_tile = cuda.shared.array((TILE, PADDED), dtype)
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        b0, i0, n = cuda.blockIdx.y * TILE, cuda.blockIdx.x * TILE, w.shape[1]
        low = high = dtype(0)
        for k0 in range(0, n, TILE):
            _load(lower_tile, lower, b0 + ty, k0 + tx)
            _load(upper_tile, upper, b0 + ty, k0 + tx)
            _load(w_tile, w, i0 + ty, k0 + tx)
            cuda.syncthreads()
            for k in range(min(TILE, n - k0)):
                below, above = lower_tile[ty, k] - w_tile[tx, k], upper_tile[ty, k] - w_tile[tx, k]
                low = nan_max(low, nan_max(below, -above))
                high = nan_max(high, nan_max(abs(below), abs(above)))
            cuda.syncthreads()
        if b0 + ty < y_lower.shape[0] and i0 + tx < y_lower.shape[1]:
            y_lower[b0 + ty, i0 + tx] = low
            y_upper[b0 + ty, i0 + tx] = high

    return interval_bounds


@cuda.jit
def _linf_scatter(gy, rows, others, index, transposed, g):
    """g[r, j*] += gy(r, o) sign(rows[r, j*] - others[o, j*]) over o, with j* the argmax of output (r, o). For gx:
    rows = x, others = w, gy(r, o) = gy[r, o]; for gw (transposed): rows = w, others = x, gy(r, o) = gy[o, r],
    and sign(w - x) = -sign(x - w) gives the minus sign.

    Thread layout: one thread per row r of g (1-D, THREADS per block); g comes zeroed."""
    r = cuda.grid(1)
    if r >= g.shape[0]:
        return
    for o in range(others.shape[0]):
        grad = gy[o, r] if transposed else gy[r, o]
        j = index[o, r] if transposed else index[r, o]
        g[r, j] += _times_sign(grad, rows[r, j] - others[o, j])


def _lp_backward(dtype):
    @cuda.jit
    def lp_backward(gy, x, w, y, q, toward_x, g):
        """For toward_x: g[b, j] = sum_i gy[b, i] sign(d) (|d| / y[b, i])^q with d = x[b, j] - w[i, j], q = p - 1;
        otherwise g[i, j] = -sum_b of the same. Outputs with y = 0 add nothing.

        Thread layout: blocks of TILE x TILE threads; thread (ty, tx) of block (bx, by) owns g[by TILE + ty,
        bx TILE + tx], so a warp reads consecutive j of a row of w (or x): coalesced."""
        j, r = cuda.grid(2)
        if r >= g.shape[0] or j >= g.shape[1]:
            return
        total = dtype(0)
        for o in range(w.shape[0] if toward_x else x.shape[0]):
            b, i = (r, o) if toward_x else (o, r)
            if not y[b, i] <= 0:  # y > 0, or NaN, which passes on as on the CPU
                d = x[b, j] - w[i, j]
                term = _times_sign(gy[b, i], d) * (abs(d) / y[b, i]) ** q  # 1 / y overflows for a subnormal y
                total = total + term if toward_x else total - term
        g[r, j] = total

    return lp_backward


def _check(x, w):
    """x and w as device arrays of one float dtype with x [B, n], w [m, n]."""
    if len(x.shape) != 2 or len(w.shape) != 2 or x.shape[1] != w.shape[1] or x.shape[1] < 1:
        raise ValueError(f"x [B, n] and w [m, n] need the same n >= 1, got {tuple(x.shape)} and {tuple(w.shape)}")
    if x.dtype != w.dtype or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x and w need one dtype, float32 or float64, got {x.dtype} and {w.dtype}")
    return to_device(x), to_device(w)


def _tiled(kernel_factory, dtype, batch, m):
    """The kernel for dtype, configured for a grid of TILE x TILE blocks over the [batch, m] outputs."""
    return specialized(kernel_factory, dtype)[(blocks(m, TILE), blocks(batch, TILE)), (TILE, TILE)]


def linf_dist_forward(x, w):
    """y[b, i] = max_j |x[b, j] - w[i, j]| and index[b, i] = the first j where the max is reached (int64)."""
    xd, wd = _check(x, w)
    y = cuda.device_array((xd.shape[0], wd.shape[0]), xd.dtype)
    index = cuda.device_array(y.shape, np.int64)
    _tiled(_linf_forward, xd.dtype, *y.shape)(xd, wd, y, index)
    return returned(y, is_device(x)), returned(index, is_device(x))


def linf_dist_values(x, w):
    """y[b, i] = max_j |x[b, j] - w[i, j]| for when no gradient is needed: the forward's y, its index dropped
    (no separate GPU kernel)."""
    return linf_dist_forward(x, w)[0]


def linf_dist_backward(gy, x, w, index):
    """gx[b, j*] += gy[b, i] s and gw[i, j*] -= gy[b, i] s for j* = index[b, i], s = sign(x[b, j*] - w[i, j*])."""
    xd, wd = _check(x, w)
    shape = (xd.shape[0], wd.shape[0])
    if tuple(gy.shape) != shape or tuple(index.shape) != shape:
        raise ValueError(f"gy and index must have shape {shape}, got {tuple(gy.shape)} and {tuple(index.shape)}")
    if not is_device(index) and index.size and (np.min(index) < 0 or np.max(index) >= xd.shape[1]):
        raise ValueError(f"index must lie in [0, {xd.shape[1]}), got [{np.min(index)}, {np.max(index)}]")
    gyd, indexd = to_device(gy, xd.dtype), to_device(index, np.int64)
    gx, gw = zeros(xd.shape, xd.dtype), zeros(wd.shape, wd.dtype)
    _linf_scatter[blocks(shape[0]), THREADS](gyd, xd, wd, indexd, False, gx)
    _linf_scatter[blocks(shape[1]), THREADS](gyd, wd, xd, indexd, True, gw)
    return returned(gx, is_device(gy)), returned(gw, is_device(gy))


def lp_dist_forward(x, w, p):
    """y[b, i] = (sum_j |x[b, j] - w[i, j]|^p)^(1/p) for p >= 1, overflow-safe (scaled by the row max)."""
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p}")
    xd, wd = _check(x, w)
    y = cuda.device_array((xd.shape[0], wd.shape[0]), xd.dtype)
    index = cuda.device_array(y.shape, np.int64)
    _tiled(_linf_forward, xd.dtype, *y.shape)(xd, wd, y, index)
    _tiled(_lp_forward, xd.dtype, *y.shape)(xd, wd, xd.dtype.type(p), y)
    return returned(y, is_device(x))


def lp_dist_backward(gy, x, w, y, p):
    """gx[b, j] = sum_i gy[b, i] sign(d) (|d| / y[b, i])^(p - 1) with d = x[b, j] - w[i, j]; gw likewise with
    the opposite sign, summed over b. An output y = 0 (x[b] = w[i]) passes no gradient."""
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p}")
    xd, wd = _check(x, w)
    shape = (xd.shape[0], wd.shape[0])
    if tuple(gy.shape) != shape or tuple(y.shape) != shape:
        raise ValueError(f"gy and y must have shape {shape}, got {tuple(gy.shape)} and {tuple(y.shape)}")
    gyd, yd, q = to_device(gy, xd.dtype), to_device(y, xd.dtype), xd.dtype.type(p - 1)
    gx, gw = cuda.device_array(xd.shape, xd.dtype), cuda.device_array(wd.shape, wd.dtype)
    kernel = specialized(_lp_backward, xd.dtype)
    for g, toward_x in ((gx, True), (gw, False)):
        kernel[(blocks(g.shape[1], TILE), blocks(g.shape[0], TILE)), (TILE, TILE)](gyd, xd, wd, yd, q, toward_x, g)
    return returned(gx, is_device(gy)), returned(gw, is_device(gy))


def interval_bounds(lower, upper, w):
    """The exact range [y_lower, y_upper] of ||x - w_i||_inf over the box lower[b] <= x <= upper[b]:
    y_upper = max_j max(|lower_j - w_j|, |upper_j - w_j|), y_lower = max_j max(0, lower_j - w_j, w_j - upper_j)."""
    lowerd, wd = _check(lower, w)
    upperd, _ = _check(upper, w)
    if lowerd.shape != upperd.shape:
        raise ValueError(f"lower and upper must have one shape, got {lowerd.shape} and {upperd.shape}")
    y_lower = cuda.device_array((lowerd.shape[0], wd.shape[0]), lowerd.dtype)
    y_upper = cuda.device_array(y_lower.shape, lowerd.dtype)
    _tiled(_interval_bounds, lowerd.dtype, *y_lower.shape)(lowerd, upperd, wd, y_lower, y_upper)
    return returned(y_lower, is_device(lower)), returned(y_upper, is_device(lower))
