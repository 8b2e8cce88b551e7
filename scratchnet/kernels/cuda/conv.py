"""CUDA kernels for conv2d: the forward pass and both gradients as one tiled matrix product in shared memory.

All three passes are the products of the reference's im2col form (kernels/reference/conv.py): with the columns
cols[(c, i, j), (n, oh, ow)] = x[n, c, oh * stride + i - padding, ow * stride + j - padding] (zero outside x),

- forward:         y[f, (n, oh, ow)]   = sum_{(c, i, j)}   w[f, (c, i, j)] cols[(c, i, j), (n, oh, ow)]
- backward-input:  gx[c, (n, h, v)]    = sum_{(f, i, j)}   w[f, c, i, j] gy[n, f, oh, ow] where h = oh s + i - p
- backward-weight: gw[f, (c, i, j)]    = sum_{(n, oh, ow)} gy[n, f, oh, ow] cols[(c, i, j), (n, oh, ow)]

No matrix is ever built: each pass is `out = A @ B` with A and B read through small "loader" functions that
compute an entry from its indices (an implicit im2col). One kernel runs every product: a block of TILE x TILE
threads computes a TILE x TILE tile of `out`; it walks the reduction axis TILE entries at a time, each thread
loading one entry of A's tile and one of B's into shared memory, then every thread reads a row of one and a column
of the other from there, so each loaded value is used TILE times (the classic tiled matrix product of Kirk & Hwu,
"Programming Massively Parallel Processors", ch. 5). The input gradient reads gy through the stride: for
stride > 1 most of its loads are zeros that are still multiplied, the price of one kernel for all three passes.
Sums run in another order than on the CPU, so results agree up to float rounding.
"""

import numpy as np
from numba import cuda

from scratchnet.kernels.cuda.launch import TILE, blocks, dtype_of, is_device, returned, specialized, to_device


@cuda.jit(device=True, inline=True)
def _column(x, geometry, tap, position):
    """cols[tap, position] of the module docstring: tap = (c, i, j), position = (n, oh, ow), zero in the padding."""
    _, _, h, wd, _, kh, kw, oh, ow, s, p = geometry
    c, i, j = tap // (kh * kw), tap // kw % kh, tap % kw
    n, t1, t2 = position // (oh * ow), position // ow % oh, position % ow
    u, v = t1 * s + i - p, t2 * s + j - p
    return x[n, c, u, v] if 0 <= u < h and 0 <= v < wd else x.dtype.type(0)


@cuda.jit(device=True, inline=True)
def _filter_weight(w, geometry, f, tap):
    """w[f, (c, i, j)]: the weight as the matrix [F, C kh kw]."""
    _, _, _, _, _, kh, kw, _, _, _, _ = geometry
    return w[f, tap // (kh * kw), tap // kw % kh, tap % kw]


@cuda.jit(device=True, inline=True)
def _channel_weight(w, geometry, c, k):
    """w[f, c, i, j] at k = (f, i, j): the transposed weight matrix [C, F kh kw]."""
    _, _, _, _, _, kh, kw, _, _, _, _ = geometry
    return w[k // (kh * kw), c, k // kw % kh, k % kw]


@cuda.jit(device=True, inline=True)
def _strided_grad(gy, geometry, k, pixel):
    """gy[n, f, oh, ow] at k = (f, i, j) and pixel = (n, h, v) where h = oh s + i - p and v = ow s + j - p; zero
    where no output position reaches the pixel through tap (i, j)."""
    _, _, h, wd, _, kh, kw, oh, ow, s, p = geometry
    f, i, j = k // (kh * kw), k // kw % kh, k % kw
    n, u, v = pixel // (h * wd), pixel // wd % h, pixel % wd
    a, b = u + p - i, v + p - j
    if a < 0 or b < 0 or a % s or b % s or a // s >= oh or b // s >= ow:
        return gy.dtype.type(0)
    return gy[n, f, a // s, b // s]


@cuda.jit(device=True, inline=True)
def _grad_row(gy, geometry, f, position):
    """gy[n, f, oh, ow] at position = (n, oh, ow): gy as the matrix [F, N oh ow]."""
    _, _, _, _, _, _, _, oh, ow, _, _ = geometry
    return gy[position // (oh * ow), f, position // ow % oh, position % ow]


@cuda.jit(device=True, inline=True)
def _column_transposed(x, geometry, position, tap):
    """cols^T[position, tap]."""
    return _column(x, geometry, tap, position)


def _tiled_product(dtype, load_a, load_b):
    """The kernel out[q // plane, r, q % plane] = sum_k A[r, k] B[k, q] for r < rows, q < cols, k < depth, where
    A[r, k] = load_a(a, geometry, r, k) and B[k, q] = load_b(b, geometry, k, q); `out` is [cols / plane, rows,
    plane], so that the forward's and the input gradient's columns (n, position) land in NCHW order.

    Thread layout: blocks of TILE x TILE threads on a grid of ceil(cols / TILE) x ceil(rows / TILE) blocks;
    thread (ty, tx) of block (bx, by) computes out's entry at r = by TILE + ty, q = bx TILE + tx.
    """

    @cuda.jit
    def product(a, b, geometry, rows, cols, depth, plane, out):
        a_tile = cuda.shared.array((TILE, TILE), dtype)
        b_tile = cuda.shared.array((TILE, TILE), dtype)
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        r, q = cuda.blockIdx.y * TILE + ty, cuda.blockIdx.x * TILE + tx
        total = dtype(0)
        for k0 in range(0, depth, TILE):
            # every thread loads, also past the edges (as zero), and reaches both barriers
            a_tile[ty, tx] = load_a(a, geometry, r, k0 + tx) if r < rows and k0 + tx < depth else dtype(0)
            b_tile[ty, tx] = load_b(b, geometry, k0 + ty, q) if k0 + ty < depth and q < cols else dtype(0)
            cuda.syncthreads()
            for k in range(TILE):
                total += a_tile[ty, k] * b_tile[k, tx]
            cuda.syncthreads()
        if r < rows and q < cols:
            out[q // plane, r, q % plane] = total

    return product


_LOADERS = {"forward": (_filter_weight, _column), "input": (_channel_weight, _strided_grad),
            "weight": (_grad_row, _column_transposed)}


def _run(which, a, b, geometry, rows, cols, depth, out_shape):
    """Launch the product `which` of _LOADERS and return out [cols / plane, rows, plane]."""
    out = cuda.device_array(out_shape, a.dtype)
    kernel = specialized(_tiled_product, a.dtype, *_LOADERS[which])
    kernel[(blocks(cols, TILE), blocks(rows, TILE)), (TILE, TILE)](a, b, geometry, rows, cols, depth, out_shape[2], out)
    return out


def _geometry(x_shape, w_shape, stride, padding):
    """(N, C, H, W, F, kh, kw, oh, ow, stride, padding), checked."""
    n, c, h, wd = x_shape
    f, c_w, kh, kw = w_shape
    if c_w != c or stride < 1 or padding < 0:
        raise ValueError(f"conv2d: x {x_shape} and w {w_shape} need equal channels, stride >= 1 and padding >= 0, "
                         f"got stride {stride}, padding {padding}")
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"conv2d: kernel {kh}x{kw} does not fit the padded {h}x{wd} input")
    return tuple(int(v) for v in (n, c, h, wd, f, kh, kw, oh, ow, stride, padding))


def _float(*arrays):
    dtypes = [dtype_of(a) for a in arrays]
    if dtypes[0] not in (np.float32, np.float64) or any(d != dtypes[0] for d in dtypes):
        raise TypeError(f"conv2d needs float32 or float64 arrays of one dtype, got {[str(d) for d in dtypes]}")
    return dtypes[0]


def conv2d_forward(x, w, stride, padding):
    """y[n, f, oh, ow] = sum_{c, i, j} w[f, c, i, j] * x[n, c, oh * stride + i - padding, ow * stride + j - padding]
    (zero outside x): PyTorch's conv2d without bias."""
    dtype = _float(x, w)
    g = _geometry(x.shape, w.shape, stride, padding)
    n, _, _, _, f, kh, kw, oh, ow, _, _ = g
    out = _run("forward", to_device(w, dtype), to_device(x, dtype), g, f, n * oh * ow, g[1] * kh * kw,
               (n, f, oh * ow))
    return returned(out.reshape(n, f, oh, ow), is_device(x))


def conv2d_backward_input(gy, w, x_shape, stride, padding):
    """gx[n, c, h, v] = sum_{f, i, j} gy[n, f, oh, ow] * w[f, c, i, j] over h = oh * stride + i - padding,
    v = ow * stride + j - padding: the gradient of sum(gy * conv2d_forward(x, w)) with respect to x."""
    dtype = _float(gy, w)
    g = _geometry(tuple(x_shape), w.shape, stride, padding)
    n, c, h, wd, f, kh, kw, oh, ow, _, _ = g
    if tuple(gy.shape) != (n, f, oh, ow):
        raise ValueError(f"gy must have shape {(n, f, oh, ow)}, got {tuple(gy.shape)}")
    out = _run("input", to_device(w, dtype), to_device(gy, dtype), g, c, n * h * wd, f * kh * kw, (n, c, h * wd))
    return returned(out.reshape(n, c, h, wd), is_device(gy))


def conv2d_backward_weight(gy, x, w_shape, stride, padding):
    """gw[f, c, i, j] = sum_{n, oh, ow} gy[n, f, oh, ow] * x[n, c, oh * stride + i - padding, ow * stride + j - padding]
    (zero outside x): the gradient of sum(gy * conv2d_forward(x, w)) with respect to w."""
    dtype = _float(gy, x)
    g = _geometry(x.shape, tuple(w_shape), stride, padding)
    n, c, _, _, f, kh, kw, oh, ow, _, _ = g
    if tuple(gy.shape) != (n, f, oh, ow):
        raise ValueError(f"gy must have shape {(n, f, oh, ow)}, got {tuple(gy.shape)}")
    taps = c * kh * kw
    out = _run("weight", to_device(gy, dtype), to_device(x, dtype), g, f, taps, n * oh * ow, (1, f, taps))
    return returned(out.reshape(f, c, kh, kw), is_device(gy))
