"""The attack step, fused: one pass over each example computes the step, the projection onto the eps-ball and
the clip to the bounds, without the temporaries the NumPy reference (reference/attack.py) allocates.

Examples run in parallel; within an example the l2 step makes three passes (the gradient's norm, the step and
its norm, the projected write) and the l2 projection two.
Arrays are viewed as [B, d]; every function returns a new array of x's dtype and shape.
"""

import math

import numba
import numpy as np

TINY = 1e-12


def _flat(*arrays):
    return [np.ascontiguousarray(a).reshape(len(a), math.prod(a.shape[1:])) for a in arrays]  # B = 0 too


@numba.njit(parallel=True, cache=True)
def _linf(x_adv, g, x, step_size, eps, lo, hi, signed):
    out = np.empty_like(x)
    for b in numba.prange(x.shape[0]):
        step = step_size[b]
        for i in range(x.shape[1]):
            v = x_adv[b, i]
            if signed:
                v += step * np.sign(g[b, i])
            v = np.minimum(np.maximum(v, x[b, i] - eps), x[b, i] + eps)  # NaN-keeping, as np.clip (the built-in
            out[b, i] = np.minimum(np.maximum(v, lo), hi)  # min and max drop a NaN in their second argument)
    return out


@numba.njit(parallel=True, cache=True)
def _l2(x_adv, g, x, step_size, eps, lo, hi, normalized):
    out = np.empty_like(x)
    for b in numba.prange(x.shape[0]):
        scale = 0.0
        if normalized:
            squares = 0.0
            for i in range(x.shape[1]):
                squares += np.float64(g[b, i]) ** 2
            scale = step_size[b] / (np.sqrt(squares) + TINY)
        squares = 0.0
        for i in range(x.shape[1]):
            delta = x_adv[b, i] + scale * g[b, i] - x[b, i]
            out[b, i] = delta
            squares += np.float64(delta) ** 2
        norm = np.sqrt(squares)
        shrink = eps / max(norm, TINY) if norm > eps else 1.0
        for i in range(x.shape[1]):
            out[b, i] = min(max(x[b, i] + out[b, i] * shrink, lo), hi)
    return out


def _run(kernel, x_adv, g, x, step_size, eps, lo, hi, moves):
    xa, gf, xf = _flat(x_adv.astype(x.dtype, copy=False), g.astype(x.dtype, copy=False), x)
    steps = np.broadcast_to(np.asarray(step_size, dtype=np.float64), (len(x),)).copy()
    return kernel(xa, gf, xf, steps, float(eps), float(lo), float(hi), moves).reshape(x.shape)


def linf_step(x_adv, g, x, step_size, eps, lo, hi):
    """x_adv + step * sign(g), clamped to the l-inf ball around x and to [lo, hi]."""
    return _run(_linf, x_adv, g, x, step_size, eps, lo, hi, True)


def l2_step(x_adv, g, x, step_size, eps, lo, hi):
    """x_adv + step * g / ||g||_2, rescaled into the l2 ball around x, then clipped to [lo, hi]."""
    return _run(_l2, x_adv, g, x, step_size, eps, lo, hi, True)


def linf_project(x_adv, x, eps, lo, hi):
    """Clamp x_adv to the l-inf ball around x, then to [lo, hi]."""
    return _run(_linf, x_adv, x_adv, x, 0.0, eps, lo, hi, False)


def l2_project(x_adv, x, eps, lo, hi):
    """Rescale x_adv - x into the l2 ball, then clip to [lo, hi]."""
    return _run(_l2, x_adv, x_adv, x, 0.0, eps, lo, hi, False)
