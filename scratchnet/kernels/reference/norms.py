"""NumPy references for the norms of conv layers (the oracle of kernels/norms.py), and the explicit matrices.

A 2-D conv layer without bias is a linear map x -> A x. Its l1 operator norm is the largest absolute column sum
of A (a column is one input pixel (c, u, v)) and its l-inf norm the largest absolute row sum (a row is one output
unit (o, t1, t2)). Liang & Huang 2021 ("Large Norms of CNN Layers Do Not Hurt Adversarial Robustness", AAAI,
Sec. 3) read both off the weight W [C_out, C_in, kh, kw] without building A:

- l-inf: every full window sums one filter, so ||A||_inf = max_o sum_{c,i,j} |W[o, c, i, j]|;
- l1: a pixel is touched, through all output positions, by the taps of one residue class mod the stride,
  so ||A||_1 = max_{c, r1, r2} sum_o sum_{i = r1 mod s} sum_{j = r2 mod s} |W[o, c, i, j]|.

`conv_matrix` and `circular_conv_matrix` build A itself: the ground truth the formulas are tested against.
"""

import numpy as np

from scratchnet.kernels.reference.conv import output_size


def conv_l1_class_sums(w, stride):
    """sums[c, r1, r2] = sum_o sum_{i = r1, j = r2 (mod stride)} |w[o, c, i, j]| in float64, shape
    [C_in, min(stride, kh), min(stride, kw)]. With stride 1 one class holds every tap: the per-channel sums."""
    per_tap = np.abs(w).sum(axis=0, dtype=np.float64)
    rows, cols = min(stride, w.shape[2]), min(stride, w.shape[3])
    sums = np.empty((w.shape[1], rows, cols))
    for r1 in range(rows):
        for r2 in range(cols):
            sums[:, r1, r2] = per_tap[:, r1::stride, r2::stride].sum(axis=(1, 2))
    return sums


def conv_linf_filter_sums(w):
    """sums[o] = sum_{c, i, j} |w[o, c, i, j]| in float64: the absolute sum of each filter."""
    return np.abs(w).sum(axis=(1, 2, 3), dtype=np.float64)


def conv_matrix(w, input_size, stride, padding):
    """The matrix A [(o, t1, t2), (c, u, v)] of the zero-padded conv y = conv2d(x, w) on a C_in x h x v input:
    A[(o, t1, t2), (c, u, v)] = w[o, c, i, j] where u = stride t1 - padding + i and v = stride t2 - padding + j
    lie inside the input (one tap per entry: i and j are fixed by t and u)."""
    f, c, kh, kw = w.shape
    h, v = input_size
    oh, ow = output_size(h, kh, stride, padding), output_size(v, kw, stride, padding)
    a = np.zeros((f, oh, ow, c, h, v), dtype=w.dtype)
    t1, t2 = np.arange(oh)[:, None], np.arange(ow)[None, :]
    for i in range(kh):
        for j in range(kw):
            u, vv = np.broadcast_arrays(stride * t1 - padding + i, stride * t2 - padding + j)
            inside = (u >= 0) & (u < h) & (vv >= 0) & (vv < v)
            ti, tj = np.nonzero(inside)
            a[:, ti, tj, :, u[inside], vv[inside]] = w[:, :, i, j]
    return a.reshape(f * oh * ow, c * h * v)


def circular_conv_matrix(w, n):
    """The matrix of the stride-1 circular (periodic) conv on a C_in x n x n input:
    y[o, t1, t2] = sum_{c, i, j} w[o, c, i, j] x[c, (t1 + i) mod n, (t2 + j) mod n]."""
    f, c, kh, kw = w.shape
    a = np.zeros((f, n, n, c, n, n), dtype=w.dtype)
    t = np.arange(n)
    for i in range(kh):
        for j in range(kw):
            u, v = np.meshgrid((t + i) % n, (t + j) % n, indexing="ij")
            t1, t2 = np.meshgrid(t, t, indexing="ij")
            a[:, t1, t2, :, u, v] += w[:, :, i, j]
    return a.reshape(f * n * n, c * n * n)
