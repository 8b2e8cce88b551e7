"""CUDA kernels for the l-inf-dist neuron: y[b, i] = ||x[b] - w[i]||_inf for x [B, n], w [m, n].

Zhang et al. 2021, "Towards Certifying l-inf Robustness using Neural Networks with l-inf-dist Neurons" (ICML): the
neuron and its interval bounds (shared/specs/linf-dist-nets.md, sections 1 and 2); the NumPy twins in
`kernels/reference/linf_dist.py` define what each function computes. The lp relaxation of training (spec section 3) is
in lp_dist.py.

- The forward pass and the interval bounds are a matrix product with another reduction in place of the
  multiply-add, and are tiled like one (shared/specs/linf-dist-nets.md, Sec. 5): a block of TILE x TILE threads
  owns a tile of outputs (b, i), walks the n coordinates TILE at a time, loads the matching tiles of x and w into
  shared memory (each thread one value of each), and then every thread reduces its row of the x tile against its
  row of the w tile. The w tile has one padding column, so that the threads of a warp, reading one coordinate of
  sixteen rows, hit sixteen different memory banks. The max keeps the first coordinate that reaches it (the argmax).
- The sparse backward (one scatter per output, to its argmax) runs one thread per row of x for gx and one per
  row of w for gw: a row is only ever written by its own thread, in the CPU kernel's order, so no atomics are
  needed and the sums equal the CPU's bit for bit (the paper's kernel runs one thread per output with atomic
  additions instead: more parallel, but its sums come in no fixed order).
"""

import numpy as np
from numba import cuda

from scratchnet.kernels.cuda.launch import (
    PADDED,
    THREADS,
    TILE,
    blocks,
    dtype_of,
    is_device,
    load_tile,
    nan_max,
    returned,
    tiled,
    times_sign,
    to_device,
    zeros,
)


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
            load_tile(x_tile, x, b0 + ty, k0 + tx)
            load_tile(w_tile, w, i0 + ty, k0 + tx)
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
            load_tile(lower_tile, lower, b0 + ty, k0 + tx)
            load_tile(upper_tile, upper, b0 + ty, k0 + tx)
            load_tile(w_tile, w, i0 + ty, k0 + tx)
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
        g[r, j] += times_sign(grad, rows[r, j] - others[o, j])


def _check(x, w):
    """x and w as device arrays of one float dtype with x [B, n], w [m, n]."""
    if len(x.shape) != 2 or len(w.shape) != 2 or x.shape[1] != w.shape[1] or x.shape[1] < 1:
        raise ValueError(f"x [B, n] and w [m, n] need the same n >= 1, got {tuple(x.shape)} and {tuple(w.shape)}")
    if dtype_of(x) != dtype_of(w) or dtype_of(x) not in (np.float32, np.float64):
        raise TypeError(f"x and w need one dtype, float32 or float64, got {dtype_of(x)} and {dtype_of(w)}")
    return to_device(x), to_device(w)


def linf_dist_forward(x, w):
    """y[b, i] = max_j |x[b, j] - w[i, j]| and index[b, i] = the first j where the max is reached (int64)."""
    xd, wd = _check(x, w)
    y = cuda.device_array((xd.shape[0], wd.shape[0]), xd.dtype)
    index = cuda.device_array(y.shape, np.int64)
    tiled(_linf_forward, xd.dtype, *y.shape)(xd, wd, y, index)
    return returned(y, is_device(x)), returned(index, is_device(x))


def linf_dist_values(x, w):
    """y[b, i] = max_j |x[b, j] - w[i, j]| for when no gradient is needed: the forward's y, its index dropped
    (no separate GPU kernel)."""
    return linf_dist_forward(x, w)[0]


def linf_dist_backward(gy, x, w, index, need_gx: bool = True):
    """gx[b, j*] += gy[b, i] s and gw[i, j*] -= gy[b, i] s for j* = index[b, i], s = sign(x[b, j*] - w[i, j*]).
    Without `need_gx` (a first layer, whose input needs no gradient) gx is None and is not computed."""
    xd, wd = _check(x, w)
    shape = (xd.shape[0], wd.shape[0])
    if tuple(gy.shape) != shape or tuple(index.shape) != shape:
        raise ValueError(f"gy and index must have shape {shape}, got {tuple(gy.shape)} and {tuple(index.shape)}")
    if not is_device(index) and index.size and (np.min(index) < 0 or np.max(index) >= xd.shape[1]):
        raise ValueError(f"index must lie in [0, {xd.shape[1]}), got [{np.min(index)}, {np.max(index)}]")
    gyd, indexd = to_device(gy, xd.dtype), to_device(index, np.int64)
    gw = zeros(wd.shape, wd.dtype)
    _linf_scatter[blocks(shape[1]), THREADS](gyd, wd, xd, indexd, True, gw)
    if not need_gx:
        return None, returned(gw, is_device(gy))
    gx = zeros(xd.shape, xd.dtype)
    _linf_scatter[blocks(shape[0]), THREADS](gyd, xd, wd, indexd, False, gx)
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
    tiled(_interval_bounds, lowerd.dtype, *y_lower.shape)(lowerd, upperd, wd, y_lower, y_upper)
    return returned(y_lower, is_device(lower)), returned(y_upper, is_device(lower))
