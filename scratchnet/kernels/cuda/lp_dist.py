"""CUDA kernels for the lp-dist neuron: y[b, i] = ||x[b] - w[i]||_p for x [B, n], w [m, n], the relaxation of the
l-inf-dist neuron that Zhang et al. 2021 (ICML; shared/specs/linf-dist-nets.md, section 3) train with, p growing towards
infinity. The NumPy twins in `kernels/reference/lp_dist.py` define what each function computes.

- The forward pass is tiled as the l-inf forward (linf_dist.py), which first gives the l-inf distance M: every term
  is scaled by it, as on the CPU, so (|d_j| / M)^p <= 1 and the sum cannot overflow.
- The backward runs one thread per entry of gx (or gw), summing over the rows of w (or of x).
"""

import numpy as np
from numba import cuda

from scratchnet.kernels.cuda.launch import (
    PADDED,
    TILE,
    blocks,
    is_device,
    load_tile,
    returned,
    specialized,
    tiled,
    times_sign,
    to_device,
)
from scratchnet.kernels.cuda.linf_dist import _check, linf_dist_values


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
            load_tile(x_tile, x, b0 + ty, k0 + tx)
            load_tile(w_tile, w, i0 + ty, k0 + tx)
            cuda.syncthreads()
            for k in range(min(TILE, n - k0)):
                d = abs(x_tile[ty, k] - w_tile[tx, k])
                total += (d / top if divide else d * scale) ** p
            cuda.syncthreads()
        if inside and 0 < top < np.inf:  # an infinite M is the answer (scaled by 0, the sum would be NaN)
            y[b, i] = top * total ** (dtype(1) / p)

    return lp_forward


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
                term = times_sign(gy[b, i], d) * (abs(d) / y[b, i]) ** q  # 1 / y overflows for a subnormal y
                total = total + term if toward_x else total - term
        g[r, j] = total

    return lp_backward


def lp_dist_forward(x, w, p):
    """y[b, i] = (sum_j |x[b, j] - w[i, j]|^p)^(1/p) for p >= 1, overflow-safe (scaled by the row max); infinite
    where the row max is, as the l-inf distance."""
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p}")
    xd, wd = _check(x, w)
    y = linf_dist_values(xd, wd)  # M, on the GPU: xd is a device array
    tiled(_lp_forward, xd.dtype, *y.shape)(xd, wd, xd.dtype.type(p), y)
    return returned(y, is_device(x))


def lp_dist_backward(gy, x, w, y, p, need_gx: bool = True):
    """gx[b, j] = sum_i gy[b, i] sign(d) (|d| / y[b, i])^(p - 1) with d = x[b, j] - w[i, j]; gw likewise with
    the opposite sign, summed over b. An output y = 0 (x[b] = w[i]) passes no gradient. Without `need_gx` (a first
    layer) gx is None and is not computed: as much work as gw's."""
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p}")
    xd, wd = _check(x, w)
    shape = (xd.shape[0], wd.shape[0])
    if tuple(gy.shape) != shape or tuple(y.shape) != shape:
        raise ValueError(f"gy and y must have shape {shape}, got {tuple(gy.shape)} and {tuple(y.shape)}")
    gyd, yd, q = to_device(gy, xd.dtype), to_device(y, xd.dtype), xd.dtype.type(p - 1)
    kernel = specialized(_lp_backward, xd.dtype)

    def gradient(toward_x):
        g = cuda.device_array(xd.shape if toward_x else wd.shape, xd.dtype)
        kernel[(blocks(g.shape[1], TILE), blocks(g.shape[0], TILE)), (TILE, TILE)](gyd, xd, wd, yd, q, toward_x, g)
        return returned(g, is_device(gy))

    return gradient(True) if need_gx else None, gradient(False)
