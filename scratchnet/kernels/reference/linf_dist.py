"""NumPy references for the l-inf-dist and lp-dist neurons (the oracle of kernels/linf_dist.py and lp_dist.py).

Zhang et al. 2021, "Towards Certifying l-inf Robustness using Neural Networks with l-inf-dist Neurons" (ICML),
Section 3: neuron i of a layer computes y_i = ||x - w_i||_inf (the bias is added by the layer); Section 4 trains
with the lp relaxation y_i = ||x - w_i||_p and p growing towards infinity, and Section 5's interval bounds
certify. For x [B, n] and w [m, n], every function here builds the full [B, m, n] array of differences
d[b, i, j] = x[b, j] - w[i, j], which makes each formula one line, and is why these are for tests only.
"""

import numpy as np


def _differences(x, w):
    """d[b, i, j] = x[b, j] - w[i, j]."""
    return x[:, None, :] - w[None, :, :]


def linf_dist_forward(x, w):
    """y[b, i] = max_j |x[b, j] - w[i, j]| and index[b, i] = the first j where the max is reached (int64).
    The sign of x - w at the argmax is not stored: the backward reads it back from x and w."""
    a = np.abs(_differences(x, w))
    index = a.argmax(axis=2)
    y = np.take_along_axis(a, index[:, :, None], axis=2)[:, :, 0]
    return np.ascontiguousarray(y), np.ascontiguousarray(index.astype(np.int64))


def linf_dist_values(x, w):
    """y[b, i] = max_j |x[b, j] - w[i, j]|: the forward without the argmax."""
    return np.abs(_differences(x, w)).max(axis=2)


def linf_dist_backward(gy, x, w, index):
    """The subgradient that sends each output's gradient to its argmax coordinate j* = index[b, i]:
    gx[b, j*] += gy[b, i] s and gw[i, j*] -= gy[b, i] s, with s = sign(x[b, j*] - w[i, j*])."""
    batch, m = gy.shape
    rows, cols = np.meshgrid(np.arange(batch), np.arange(m), indexing="ij")
    g = gy * np.sign(x[rows, index] - w[cols, index])
    gx, gw = np.zeros_like(x), np.zeros_like(w)
    np.add.at(gx, (rows, index), g)
    np.add.at(gw, (cols, index), -g)
    return gx, gw


def lp_dist_forward(x, w, p):
    """y[b, i] = (sum_j |x[b, j] - w[i, j]|^p)^(1/p), computed as M (sum_j (|d_j| / M)^p)^(1/p) with M the
    row max, so that every term is at most 1 and the sum cannot overflow for any p >= 1. y = 0 where d = 0."""
    a = np.abs(_differences(x, w))
    top = a.max(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(top > 0, a / top, 0)
    y = top[:, :, 0] * np.sum(t**p, axis=2) ** (1 / p)
    return np.ascontiguousarray(y.astype(x.dtype))


def lp_dist_backward(gy, x, w, y, p):
    """dy/dx_j = sign(d_j) (|d_j| / y)^(p - 1) = -dy/dw_j, contracted with gy; zero for an output y = 0, NaN for
    a NaN output (the kernels pass it on too)."""
    d = _differences(x, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(y[:, :, None] == 0, 0, np.abs(d) / y[:, :, None])
    g = gy[:, :, None] * np.sign(d) * ratio ** (p - 1)
    return g.sum(axis=1).astype(x.dtype), -g.sum(axis=0).astype(w.dtype)


def interval_bounds(lower, upper, w):
    """The exact range of y[b, i] = ||x - w_i||_inf over the box lower[b] <= x <= upper[b] (Section 5):
    y_upper = max_j max(|lower_j - w_j|, |upper_j - w_j|), the farthest corner of the box, and
    y_lower = max_j max(0, lower_j - w_j, w_j - upper_j), the distance from w_j to the interval [lower_j, upper_j]."""
    below, above = _differences(lower, w), _differences(upper, w)
    y_upper = np.maximum(np.abs(below), np.abs(above)).max(axis=2)
    y_lower = np.maximum(np.maximum(below, -above), 0).max(axis=2)
    return np.ascontiguousarray(y_lower), np.ascontiguousarray(y_upper)
