"""NumPy references for the l-inf-dist neuron (the oracle of kernels/linf_dist.py and kernels/cuda/linf_dist.py).

Zhang et al. 2021, "Towards Certifying l-inf Robustness using Neural Networks with l-inf-dist Neurons" (ICML),
shared/specs/linf-dist-nets.md: neuron i of a layer computes y_i = ||x - w_i||_inf (section 1; the bias is added by the
layer), and interval bounds certify (section 2; the lp relaxation of training, section 3, is in lp_dist.py). For x [B,
n] and w [m, n], every function here builds the full [B, m, n] array of differences d[b, i, j] = x[b, j] - w[i, j],
which makes each formula one line, and is why these are for tests only.
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


def interval_bounds(lower, upper, w):
    """The exact range of y[b, i] = ||x - w_i||_inf over the box lower[b] <= x <= upper[b] (spec section 2):
    y_upper = max_j max(|lower_j - w_j|, |upper_j - w_j|), the farthest corner of the box, and
    y_lower = max_j max(0, lower_j - w_j, w_j - upper_j), the distance from w_j to the interval [lower_j, upper_j]."""
    below, above = _differences(lower, w), _differences(upper, w)
    y_upper = np.maximum(np.abs(below), np.abs(above)).max(axis=2)
    y_lower = np.maximum(np.maximum(below, -above), 0).max(axis=2)
    return np.ascontiguousarray(y_lower), np.ascontiguousarray(y_upper)
