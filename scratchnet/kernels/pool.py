"""Numba CPU kernels for 2-D max-pooling and average-pooling over NCHW arrays.

Pooling does a handful of operations per loaded value, so it is bound by memory traffic, not arithmetic: each
kernel is one pass over the data, parallel over the N * C planes, with every window clipped to the image up
front so that the inner loops carry no padding tests. The CNNs' 2x2 stride-2 max-pooling has a kernel of its
own whose four comparisons are straight-line code (2-3x faster than the general loops). The backward passes
scatter within their own plane, so threads never write to the same memory.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _window(o, stride, padding, kernel, size):
    """The range [lo, hi) of input indices that output index o's window covers inside an axis of `size`."""
    start = o * stride - padding
    return max(start, 0), min(start + kernel, size)


@njit(parallel=True, cache=True)
def _max_pool(x, kernel, stride, padding, y, argmax):
    n_img, chans, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for plane in prange(n_img * chans):
        n, c = plane // chans, plane % chans
        src = x[n, c]
        for i in range(oh):
            r0, r1 = _window(i, stride, padding, kernel, h)
            for j in range(ow):
                q0, q1 = _window(j, stride, padding, kernel, w)
                best, at = -np.inf, -1
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        v = src[r, q]
                        # the first pixel always counts (it may be -inf), then a strictly larger value or the
                        # first NaN; a NaN best is never replaced
                        if at < 0 or v > best or (v != v and best == best):
                            best, at = v, r * w + q
                y[n, c, i, j] = best
                argmax[n, c, i, j] = at


@njit(parallel=True, cache=True)
def _max_pool_2x2(x, y, argmax):
    """`_max_pool` for kernel = stride = 2 and no padding: the window of output (i, j) is rows 2i, 2i + 1 and
    columns 2j, 2j + 1, compared in row-major order by the same rule."""
    n_img, chans, w = x.shape[0], x.shape[1], x.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    for plane in prange(n_img * chans):
        n, c = plane // chans, plane % chans
        src, dst, at = x[n, c], y[n, c], argmax[n, c]
        for i in range(oh):
            top, bottom = src[2 * i], src[2 * i + 1]
            for j in range(ow):
                q = 2 * j
                best, offset = top[q], 0
                v = top[q + 1]
                if v > best or (v != v and best == best):
                    best, offset = v, 1
                v = bottom[q]
                if v > best or (v != v and best == best):
                    best, offset = v, w
                v = bottom[q + 1]
                if v > best or (v != v and best == best):
                    best, offset = v, w + 1
                dst[i, j] = best
                at[i, j] = 2 * i * w + q + offset


def max_pool2d_forward(x, kernel, stride, padding):
    """y = the max of each kernel x kernel window (padding counts as -inf), and argmax = the flat index h * W + v
    of its first maximal pixel in row-major window order (its first NaN, if it holds one). A window that lies
    entirely in the padding gives -inf with argmax -1."""
    x = np.ascontiguousarray(x)
    assert x.ndim == 4 and x.dtype in (np.float32, np.float64), (x.shape, x.dtype)
    assert kernel >= 1 and stride >= 1 and padding >= 0
    n, c, h, w = x.shape
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    assert oh >= 1 and ow >= 1
    y = np.empty((n, c, oh, ow), x.dtype)
    argmax = np.empty((n, c, oh, ow), np.int64)
    if kernel == stride == 2 and padding == 0:
        _max_pool_2x2(x, y, argmax)
    else:
        _max_pool(x, kernel, stride, padding, y, argmax)
    return y, argmax


@njit(parallel=True, cache=True)
def _max_unpool(gy, argmax, gx):
    n_img, chans = gy.shape[0], gy.shape[1]
    size = gx.shape[2]
    for plane in prange(n_img * chans):
        n, c = plane // chans, plane % chans
        dst, src, at = gx[n, c], gy[n, c], argmax[n, c]
        for k in range(src.shape[0]):
            a = at[k]
            if 0 <= a < size:  # -1 marks a window with no pixel; anything else out of range is never written
                dst[a] += src[k]


def max_pool2d_backward(gy, argmax, x_shape):
    """gx[n, c, argmax[n, c, i, j]] += gy[n, c, i, j]: each window's gradient goes to its argmax pixel."""
    gy, argmax = np.ascontiguousarray(gy), np.ascontiguousarray(argmax, dtype=np.int64)
    n, c, h, w = x_shape
    assert gy.ndim == 4 and gy.shape == argmax.shape and gy.shape[:2] == (n, c), (gy.shape, argmax.shape, x_shape)
    gx = np.zeros((n, c, h * w), gy.dtype)
    windows = gy.shape[2] * gy.shape[3]  # not -1: an empty batch has no size to infer it from
    _max_unpool(gy.reshape(n, c, windows), argmax.reshape(n, c, windows), gx)
    return gx.reshape(x_shape)


@njit(parallel=True, cache=True)
def _avg_pool(x, kernel, stride, padding, y):
    n_img, chans, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    area = x.dtype.type(kernel * kernel)
    for plane in prange(n_img * chans):
        n, c = plane // chans, plane % chans
        src = x[n, c]
        for i in range(oh):
            r0, r1 = _window(i, stride, padding, kernel, h)
            for j in range(ow):
                q0, q1 = _window(j, stride, padding, kernel, w)
                total = x.dtype.type(0)
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        total += src[r, q]
                y[n, c, i, j] = total / area


def avg_pool2d_forward(x, kernel, stride, padding):
    """y = the sum of each kernel x kernel window divided by kernel * kernel (zero padding counted, as PyTorch's
    count_include_pad=True)."""
    x = np.ascontiguousarray(x)
    assert x.ndim == 4 and x.dtype in (np.float32, np.float64), (x.shape, x.dtype)
    assert kernel >= 1 and stride >= 1 and padding >= 0
    n, c, h, w = x.shape
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    assert oh >= 1 and ow >= 1
    y = np.empty((n, c, oh, ow), x.dtype)
    _avg_pool(x, kernel, stride, padding, y)
    return y


@njit(parallel=True, cache=True)
def _avg_unpool(gy, kernel, stride, padding, gx):
    n_img, chans, h, w = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    area = gy.dtype.type(kernel * kernel)
    for plane in prange(n_img * chans):
        n, c = plane // chans, plane % chans
        dst = gx[n, c]
        for i in range(oh):
            r0, r1 = _window(i, stride, padding, kernel, h)
            for j in range(ow):
                q0, q1 = _window(j, stride, padding, kernel, w)
                share = gy[n, c, i, j] / area
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        dst[r, q] += share


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding):
    """The adjoint of `avg_pool2d_forward`: each window spreads gy / (kernel * kernel) over its pixels."""
    gy = np.ascontiguousarray(gy)
    n, c, h, w = x_shape
    assert kernel >= 1 and stride >= 1 and padding >= 0
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    assert gy.ndim == 4 and gy.shape == (n, c, oh, ow) and gy.dtype in (np.float32, np.float64), gy.shape
    gx = np.zeros(x_shape, gy.dtype)
    _avg_unpool(gy, kernel, stride, padding, gx)
    return gx
