"""NumPy references for the lp-dist neuron (the oracle of kernels/lp_dist.py and kernels/cuda/lp_dist.py).

Zhang et al. 2021 (ICML; shared/specs/linf-dist-nets.md, section 3): the l-inf-dist net is trained with the lp
relaxation y_i = ||x - w_i||_p of its neurons, p growing towards infinity. Like the l-inf references (linf_dist.py),
each function builds the full [B, m, n] array of differences d[b, i, j] = x[b, j] - w[i, j]: one line per formula, for
tests only.
"""

import numpy as np

from scratchnet.kernels.reference.linf_dist import _differences


def lp_dist_forward(x, w, p):
    """y[b, i] = (sum_j |x[b, j] - w[i, j]|^p)^(1/p), computed as M (sum_j (|d_j| / M)^p)^(1/p) with M the
    row max, so that every term is at most 1 and the sum cannot overflow for any p >= 1. y = 0 where d = 0, and
    y = inf where M is (an infinite |d_j|)."""
    a = np.abs(_differences(x, w))
    top = a.max(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(top > 0, a / top, 0)
        y = np.where(np.isinf(top[:, :, 0]), np.inf, top[:, :, 0] * np.sum(t**p, axis=2) ** (1 / p))
    return np.ascontiguousarray(y.astype(x.dtype))


def lp_dist_backward(gy, x, w, y, p):
    """dy/dx_j = sign(d_j) (|d_j| / y)^(p - 1) = -dy/dw_j, contracted with gy; zero for an output y = 0, NaN for
    a NaN output (the kernels pass it on too)."""
    d = _differences(x, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(y[:, :, None] == 0, 0, np.abs(d) / y[:, :, None])
    g = gy[:, :, None] * np.sign(d) * ratio ** (p - 1)
    return g.sum(axis=1).astype(x.dtype), -g.sum(axis=0).astype(w.dtype)
