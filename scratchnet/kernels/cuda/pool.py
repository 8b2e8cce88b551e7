"""CUDA kernels for 2-D max-pooling and average-pooling over NCHW arrays (references: kernels/reference/conv.py).

One thread per output value in the forward passes. The backward passes differ in what they are given. Average
pooling knows its windows, so it gathers: one thread per input pixel visits the windows that cover it, in the
order the CPU kernel (kernels/pool.py) scatters them, and adds their shares, so no two threads write the same
value and the sums equal the CPU's bit for bit. Max pooling's backward gets only the argmax, so it scatters: one
thread per output adds its gradient to its argmax pixel with an atomic addition (overlapping windows may send
several to one pixel; their order, and so the last bits of such a sum, is not fixed).
"""

import numpy as np
from numba import cuda

from scratchnet.kernels.cuda.launch import THREADS, blocks, is_device, returned, to_device, zeros


@cuda.jit(device=True, inline=True)
def _window(o, stride, padding, kernel, size):
    """The range [lo, hi) of input indices that output index o's window covers inside an axis of `size`."""
    start = o * stride - padding
    return max(start, 0), min(start + kernel, size)


@cuda.jit(device=True, inline=True)
def _covering(r, stride, padding, kernel, outputs):
    """The range [lo, hi) of output indices o whose window covers input index r: o s - p <= r < o s - p + kernel."""
    return max(0, -((kernel - 1 - r - padding) // stride)), min(outputs, (r + padding) // stride + 1)


@cuda.jit(device=True, inline=True)
def _unflatten(t, chans, rows, cols):
    """(n, c, i, j) of the flat index t into an [N, chans, rows, cols] array."""
    return t // (chans * rows * cols), t // (rows * cols) % chans, t // cols % rows, t % cols


@cuda.jit
def _max_pool(x, kernel, stride, padding, y, argmax):
    """Thread layout: one thread per output value (n, c, i, j), flat, THREADS per block."""
    chans, h, w = x.shape[1], x.shape[2], x.shape[3]
    t = cuda.grid(1)
    if t >= y.size:
        return
    n, c, i, j = _unflatten(t, chans, y.shape[2], y.shape[3])
    r0, r1 = _window(i, stride, padding, kernel, h)
    q0, q1 = _window(j, stride, padding, kernel, w)
    best, at = x.dtype.type(-np.inf), -1  # typed: a float64 -inf would make every comparison a float64 one
    for r in range(r0, r1):
        for q in range(q0, q1):
            v = x[n, c, r, q]
            # the first pixel always counts (it may be -inf), then a strictly larger value or the first NaN
            if at < 0 or v > best or (v != v and best == best):
                best, at = v, r * w + q
    y[n, c, i, j] = best
    argmax[n, c, i, j] = at


@cuda.jit
def _max_unpool(gy, argmax, gx):
    """Thread layout: one thread per output value (n, c, i, j), flat, THREADS per block; it adds gy to its argmax
    pixel of gx [N, C, H W] (-1, a window without pixels, and anything out of range add nothing)."""
    t = cuda.grid(1)
    if t >= gy.size:
        return
    n, c, i, j = _unflatten(t, gy.shape[1], gy.shape[2], gy.shape[3])
    a = argmax[n, c, i, j]
    if 0 <= a < gx.shape[2]:
        cuda.atomic.add(gx, (n, c, a), gy[n, c, i, j])


@cuda.jit
def _avg_pool(x, kernel, stride, padding, area, y):
    """area = kernel^2 in x's dtype, so that the division rounds as the CPU kernel's does.

    Thread layout: one thread per output value (n, c, i, j), flat, THREADS per block."""
    chans, h, w = x.shape[1], x.shape[2], x.shape[3]
    t = cuda.grid(1)
    if t >= y.size:
        return
    n, c, i, j = _unflatten(t, chans, y.shape[2], y.shape[3])
    r0, r1 = _window(i, stride, padding, kernel, h)
    q0, q1 = _window(j, stride, padding, kernel, w)
    total = y[n, c, i, j]  # y comes zeroed: a zero of y's dtype
    for r in range(r0, r1):
        for q in range(q0, q1):
            total += x[n, c, r, q]
    y[n, c, i, j] = total / area


@cuda.jit
def _avg_unpool(gy, kernel, stride, padding, area, gx):
    """Thread layout: one thread per input pixel (n, c, r, q), flat, THREADS per block; it adds the share
    gy / area of every window that covers it (area = kernel^2 in gy's dtype: an integer divisor would make the
    share a float64 and round it differently from the CPU)."""
    chans, oh, ow = gy.shape[1], gy.shape[2], gy.shape[3]
    t = cuda.grid(1)
    if t >= gx.size:
        return
    n, c, r, q = _unflatten(t, chans, gx.shape[2], gx.shape[3])
    i0, i1 = _covering(r, stride, padding, kernel, oh)
    j0, j1 = _covering(q, stride, padding, kernel, ow)
    total = gx[n, c, r, q]  # gx comes zeroed: a zero of gx's dtype
    for i in range(i0, i1):
        for j in range(j0, j1):
            total += gy[n, c, i, j] / area
    gx[n, c, r, q] = total


def _output_shape(shape, kernel, stride, padding):
    """[N, C, oh, ow] of pooling an NCHW `shape`, checked."""
    if len(shape) != 4 or kernel < 1 or stride < 1 or padding < 0:
        raise ValueError(f"pooling needs an NCHW shape, kernel >= 1, stride >= 1 and padding >= 0, got {shape}, "
                         f"kernel {kernel}, stride {stride}, padding {padding}")
    n, c, h, w = shape
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"pooling: kernel {kernel} does not fit the padded {h}x{w} input")
    return n, c, oh, ow


def max_pool2d_forward(x, kernel, stride, padding):
    """y = the max of each kernel x kernel window (padding counts as -inf), and argmax = the flat index h * W + v
    of its first maximal pixel in row-major window order (its first NaN, if it holds one). A window that lies
    entirely in the padding gives -inf with argmax -1."""
    shape = _output_shape(tuple(x.shape), kernel, stride, padding)
    xd = to_device(x)
    y, argmax = cuda.device_array(shape, xd.dtype), cuda.device_array(shape, np.int64)
    _max_pool[blocks(y.size), THREADS](xd, kernel, stride, padding, y, argmax)
    return returned(y, is_device(x)), returned(argmax, is_device(x))


def max_pool2d_backward(gy, argmax, x_shape):
    """gx[n, c, argmax[n, c, i, j]] += gy[n, c, i, j]: each window's gradient goes to its argmax pixel."""
    n, c, h, w = x_shape
    if tuple(gy.shape) != tuple(argmax.shape) or len(gy.shape) != 4 or tuple(gy.shape[:2]) != (n, c):
        raise ValueError(f"gy {tuple(gy.shape)} and argmax {tuple(argmax.shape)} must be equal NCHW shapes over "
                         f"the planes of x_shape {tuple(x_shape)}")
    gyd = to_device(gy)
    gx = zeros((n, c, h * w), gyd.dtype)
    _max_unpool[blocks(gyd.size), THREADS](gyd, to_device(argmax, np.int64), gx)
    return returned(gx.reshape(n, c, h, w), is_device(gy))


def avg_pool2d_forward(x, kernel, stride, padding):
    """y = the sum of each kernel x kernel window divided by kernel * kernel (zero padding counted, as PyTorch's
    count_include_pad=True)."""
    shape = _output_shape(tuple(x.shape), kernel, stride, padding)
    xd = to_device(x)
    y = zeros(shape, xd.dtype)
    _avg_pool[blocks(y.size), THREADS](xd, kernel, stride, padding, xd.dtype.type(kernel * kernel), y)
    return returned(y, is_device(x))


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding):
    """The adjoint of `avg_pool2d_forward`: each window spreads gy / (kernel * kernel) over its pixels."""
    shape = _output_shape(tuple(x_shape), kernel, stride, padding)
    if tuple(gy.shape) != shape:
        raise ValueError(f"gy must have shape {shape}, got {tuple(gy.shape)}")
    gyd = to_device(gy)
    gx = zeros(tuple(x_shape), gyd.dtype)
    _avg_unpool[blocks(gx.size), THREADS](gyd, kernel, stride, padding, gyd.dtype.type(kernel * kernel), gx)
    return returned(gx, is_device(gy))
