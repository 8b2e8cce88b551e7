"""The small CUDA kernels that an l-inf-dist net needs between its distance kernels, so that a training step keeps
its activations, weights and optimizer state on the GPU (used by `scratchnet.linf_dist_gpu`): input
normalization, the mean shift (a column reduction and a row broadcast), the running-mean update and Adam's update.

All work on device arrays in place or into a given output; none copies to the host. Column reductions give one
thread per column, which loops over the rows: consecutive threads read consecutive columns of a row (coalesced).
"""

import math

from numba import cuda

from scratchnet.kernels.cuda.launch import THREADS, blocks


@cuda.jit
def _normalize(x, mean, scale, out):
    """out[b, j] = (x[b, j] - mean[j]) * scale. Thread layout: one thread per entry, flat, THREADS per block."""
    t = cuda.grid(1)
    if t < out.size:
        b, j = t // out.shape[1], t % out.shape[1]
        out[b, j] = (x[b, j] - mean[j]) * scale


@cuda.jit
def _column_sums(y, scale, out):
    """out[i] = scale * sum_b y[b, i]. Thread layout: one thread per column i, THREADS per block."""
    i = cuda.grid(1)
    if i < out.size:
        total = scale - scale  # a zero of y's dtype (scale comes in it, finite; a literal 0 would be an int)
        for b in range(y.shape[0]):
            total += y[b, i]
        out[i] = total * scale


@cuda.jit
def _add_row(y, v, sign):
    """y[b, i] += sign * v[i], in place. Thread layout: one thread per entry, flat, THREADS per block."""
    t = cuda.grid(1)
    if t < y.size:
        b, i = t // y.shape[1], t % y.shape[1]
        y[b, i] += sign * v[i]


@cuda.jit
def _lerp(running, target, keep, momentum):
    """running = keep running + momentum target, in place (keep = 1 - momentum, passed in the arrays' dtype: a
    literal 1 would make the arithmetic float64). Thread layout: one thread per entry, THREADS per block."""
    i = cuda.grid(1)
    if i < running.size:
        running[i] = running[i] * keep + momentum * target[i]


@cuda.jit
def _adam(w, g, m, v, lr, betas, eps, corrections):
    """Adam (Kingma & Ba 2015) on flat arrays, in place, as `scratchnet.optim.Adam`: with betas = (beta1,
    1 - beta1, beta2, 1 - beta2) and corrections = (1 - beta1^t, 1 - beta2^t), m and v move towards g and g^2,
    and w <- w - lr m_hat / (sqrt(v_hat) + eps) with m_hat = m / corrections[0], v_hat = v / corrections[1].
    Every scalar comes in the arrays' dtype, so float32 stays float32. Thread layout: one thread per entry."""
    t = cuda.grid(1)
    if t < w.size:
        m[t] = m[t] * betas[0] + betas[1] * g[t]
        v[t] = v[t] * betas[2] + betas[3] * g[t] * g[t]
        w[t] -= lr * (m[t] / corrections[0]) / (math.sqrt(v[t] / corrections[1]) + eps)


def normalize(x, mean, scale):
    """(x - mean) * scale for x [B, n] and mean [n], a new device array."""
    out = cuda.device_array(x.shape, x.dtype)
    _normalize[blocks(out.size), THREADS](x, mean, x.dtype.type(scale), out)
    return out


def column_mean(y):
    """The mean over the batch of y [B, m]: a new device array [m]."""
    out = cuda.device_array(y.shape[1], y.dtype)
    _column_sums[blocks(out.size), THREADS](y, y.dtype.type(1 / y.shape[0]), out)
    return out


def column_sum(y):
    """The sum over the batch of y [B, m]: a new device array [m]."""
    out = cuda.device_array(y.shape[1], y.dtype)
    _column_sums[blocks(out.size), THREADS](y, y.dtype.type(1), out)
    return out


def add_row(y, v, sign=1.0):
    """y += sign * v (v broadcast over the rows), in place; returns y."""
    _add_row[blocks(y.size), THREADS](y, v, y.dtype.type(sign))
    return y


def lerp(running, target, momentum):
    """running <- (1 - momentum) running + momentum target, in place."""
    real = running.dtype.type
    _lerp[blocks(running.size), THREADS](running, target, real(1 - momentum), real(momentum))


def adam(w, g, m, v, lr, beta1, beta2, eps, step):
    """One Adam update of w (any shape; w, g, m, v alike), in place, at step number `step` (1 for the first)."""
    flat = (w.size,)
    real = w.dtype.type
    betas = (real(beta1), real(1 - beta1), real(beta2), real(1 - beta2))
    corrections = (real(1 - beta1**step), real(1 - beta2**step))
    _adam[blocks(w.size), THREADS](w.reshape(flat), g.reshape(flat), m.reshape(flat), v.reshape(flat), real(lr),
                                   betas, real(eps), corrections)
