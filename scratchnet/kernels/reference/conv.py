"""NumPy references for convolution and pooling (the oracle of kernels/conv.py and kernels/pool.py).

A convolution is a matrix product once each output position's window is laid out as a column ("im2col"):
with cols[n, (c, i, j), (oh, ow)] = x_padded[n, c, oh * stride + i, ow * stride + j] and the weights as a
matrix w[f, (c, i, j)], y[n] = w @ cols[n]. The two gradients are the two other products of the same three
matrices, and col2im (the adjoint of im2col) carries the input gradient back from columns to pixels. Pooling
unfolds the windows the same way and reduces over them.

All arrays are NCHW; stride and padding are ints shared by both spatial axes.
"""

import numpy as np


def output_size(size, kernel, stride, padding):
    """The number of window positions along an axis: (size + 2 padding - kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def unfold(x, kh, kw, stride, padding, fill=0.0):
    """windows[n, c, i, j, oh, ow] = x[n, c, oh * stride + i - padding, ow * stride + j - padding], `fill`
    outside x. One strided slice per kernel offset (i, j): KH * KW copies of the whole output grid."""
    n, c, h, w = x.shape
    oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
    padded = np.full((n, c, h + 2 * padding, w + 2 * padding), fill, dtype=x.dtype)
    padded[:, :, padding : padding + h, padding : padding + w] = x
    windows = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            windows[:, :, i, j] = padded[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    return windows


def fold(windows, x_shape, stride, padding):
    """The adjoint of `unfold` (col2im): x[n, c, h, v] = the sum of all window entries that copy pixel (h, v)."""
    n, c, h, w = x_shape
    _, _, kh, kw, oh, ow = windows.shape
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=windows.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += windows[:, :, i, j]
    return padded[:, :, padding : padding + h, padding : padding + w].copy()


def conv2d_forward(x, w, stride, padding):
    """y[n, f, oh, ow] = sum_{c, i, j} w[f, c, i, j] * x[n, c, oh * stride + i - padding, ow * stride + j - padding]
    (zero padding): PyTorch's conv2d (a cross-correlation) without bias. y[n] = W @ cols[n]."""
    f, c, kh, kw = w.shape
    cols = unfold(x, kh, kw, stride, padding)
    n, oh, ow = x.shape[0], cols.shape[4], cols.shape[5]
    y = w.reshape(f, c * kh * kw) @ cols.reshape(n, c * kh * kw, oh * ow)
    return y.reshape(n, f, oh, ow)


def conv2d_backward_input(gy, w, x_shape, stride, padding):
    """The gradient of sum(gy * conv2d_forward(x, w)) with respect to x: cols_grad[n] = W^T @ gy[n], folded."""
    n, f, oh, ow = gy.shape
    _, c, kh, kw = w.shape
    cols_grad = w.reshape(f, c * kh * kw).T @ gy.reshape(n, f, oh * ow)
    return fold(cols_grad.reshape(n, c, kh, kw, oh, ow), x_shape, stride, padding)


def conv2d_backward_weight(gy, x, w_shape, stride, padding):
    """The gradient of sum(gy * conv2d_forward(x, w)) with respect to w: sum_n gy[n] @ cols[n]^T."""
    f, c, kh, kw = w_shape
    n, _, oh, ow = gy.shape
    cols = unfold(x, kh, kw, stride, padding).reshape(n, c * kh * kw, oh * ow)
    gw = np.einsum("nfp,nkp->fk", gy.reshape(n, f, oh * ow), cols)
    return np.ascontiguousarray(gw).reshape(w_shape)


def _pixel_index(x_shape, kernel, stride, padding):
    """index[i, j, oh, ow] = flat index h * W + v of the pixel at window offset (i, j), or -1 in the padding."""
    h, w = x_shape[2], x_shape[3]
    plane = np.arange(h * w, dtype=np.float64).reshape(1, 1, h, w)
    return unfold(plane, kernel, kernel, stride, padding, fill=-1.0)[0, 0].astype(np.int64)


def max_pool2d_forward(x, kernel, stride, padding):
    """y = the max of each kernel x kernel window (padding counts as -inf), and argmax = the flat index h * W + v
    of the first maximal pixel in row-major window order (the first NaN, if the window holds one). A window that
    lies entirely in the padding gives -inf with argmax -1."""
    n, c = x.shape[:2]
    windows = unfold(x, kernel, kernel, stride, padding, fill=-np.inf)
    oh, ow = windows.shape[4:]
    values = windows.reshape(n, c, kernel * kernel, oh, ow)
    pixels = _pixel_index(x.shape, kernel, stride, padding).reshape(kernel * kernel, oh, ow)
    index = np.broadcast_to(pixels, values.shape)
    y = values.max(axis=2)
    real = index >= 0
    hit = real & ((values == y[:, :, None]) | (np.isnan(values) & np.isnan(y[:, :, None])))
    first = hit.argmax(axis=2)
    argmax = np.take_along_axis(index, first[:, :, None], axis=2)[:, :, 0]
    argmax = np.where(hit.any(axis=2), argmax, -1)
    return np.ascontiguousarray(y), np.ascontiguousarray(argmax.astype(np.int64))


def max_pool2d_backward(gy, argmax, x_shape):
    """gx[n, c, argmax[n, c, oh, ow]] += gy[n, c, oh, ow] (every output adds its gradient to its argmax pixel)."""
    n, c, h, w = x_shape
    gx = np.zeros((n * c, h * w), dtype=gy.dtype)
    planes = np.repeat(np.arange(n * c), gy.shape[2] * gy.shape[3])
    flat, grads = argmax.reshape(-1), gy.reshape(-1)
    keep = flat >= 0
    np.add.at(gx, (planes[keep], flat[keep]), grads[keep])
    return gx.reshape(x_shape)


def avg_pool2d_forward(x, kernel, stride, padding):
    """y = the sum of each kernel x kernel window divided by kernel * kernel (zero padding counted, as PyTorch's
    count_include_pad=True)."""
    windows = unfold(x, kernel, kernel, stride, padding)
    return windows.sum(axis=(2, 3)) / x.dtype.type(kernel * kernel)


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding):
    """The adjoint of `avg_pool2d_forward`: every window spreads gy / (kernel * kernel) over its pixels."""
    share = gy / gy.dtype.type(kernel * kernel)
    windows = np.broadcast_to(share[:, :, None, None], gy.shape[:2] + (kernel, kernel) + gy.shape[2:])
    return fold(np.ascontiguousarray(windows), x_shape, stride, padding)
