"""The attack step on the GPU, fused as on the CPU (kernels/attack.py): one pass computes the step, the projection
onto the eps-ball and the clip to the bounds (references: kernels/reference/attack.py).

Arrays are viewed as [B, d]. The l-inf versions are elementwise: one thread per entry. The l2 versions need
two norms per example (of g, then of the perturbation), so they run one block per example: its threads stride
over the example's d entries, and a tree reduction in shared memory adds their partial sums of squares. The
arithmetic follows the CPU kernel (everything in float64 until the result is stored); the l2 sums run
in another order, so those results agree with the CPU's up to rounding.
"""

import numpy as np
from numba import cuda, float64

from scratchnet.kernels.cuda.launch import THREADS, blocks, is_device, nan_max, nan_min, returned, to_device

TINY = 1e-12


@cuda.jit
def _linf(x_adv, g, x, step_size, eps, lo, hi, signed, out):
    """out = clip(clip(x_adv + step sign(g), x - eps, x + eps), lo, hi) (no step unless `signed`).

    Thread layout: one thread per entry (b, i) of the [B, d] arrays, flat, THREADS per block."""
    t = cuda.grid(1)
    if t >= out.size:
        return
    b, i = t // out.shape[1], t % out.shape[1]
    v, center, gi = float64(x_adv[b, i]), float64(x[b, i]), float64(g[b, i])
    if signed:
        v += step_size[b] * (1 if gi > 0 else -1 if gi < 0 else gi - gi)  # sign(NaN) = NaN, as np.sign
    v = nan_min(nan_max(v, center - eps), center + eps)
    out[b, i] = nan_min(nan_max(v, lo), hi)


@cuda.jit(device=True, inline=True)
def _block_sum(partial, value):
    """The sum of `value` over the block's threads, returned to every thread: a tree reduction in `partial`
    (shared, one slot per thread; the block size is a power of two)."""
    t = cuda.threadIdx.x
    partial[t] = value
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if t < half:
            partial[t] += partial[t + half]
        cuda.syncthreads()
        half //= 2
    total = partial[0]
    cuda.syncthreads()  # every thread has read the total before `partial` is reused
    return total


@cuda.jit
def _l2(x_adv, g, x, step_size, eps, lo, hi, normalized, out):
    """out = clip(x + delta min(1, eps / ||delta||), lo, hi) with delta = x_adv + step g / ||g|| - x (no step
    unless `normalized`).

    Thread layout: one block of THREADS threads per example b; thread t handles entries t, t + THREADS, ..."""
    partial = cuda.shared.array(THREADS, float64)
    b, t, d = cuda.blockIdx.x, cuda.threadIdx.x, out.shape[1]
    scale = float64(0)
    if normalized:
        squares = float64(0)
        for i in range(t, d, THREADS):
            squares += float64(g[b, i]) ** 2
        scale = step_size[b] / (_block_sum(partial, squares) ** 0.5 + TINY)
    squares = float64(0)
    for i in range(t, d, THREADS):
        delta = float64(x_adv[b, i]) + scale * g[b, i] - x[b, i]
        out[b, i] = delta
        squares += delta**2
    norm = _block_sum(partial, squares) ** 0.5
    shrink = eps / max(norm, TINY) if norm > eps else float64(1)
    for i in range(t, d, THREADS):
        out[b, i] = nan_min(nan_max(float64(x[b, i]) + out[b, i] * shrink, lo), hi)


def _run(kernel, x_adv, g, x, step_size, eps, lo, hi, moves):
    """Launch `kernel` on the [B, d] views and return x's shape (on the host unless x is a device array)."""
    xd = to_device(x)
    if xd.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {xd.dtype}")
    if tuple(x_adv.shape) != xd.shape or tuple(g.shape) != xd.shape:
        raise ValueError(f"x_adv and g must have x's shape {xd.shape}, got {tuple(x_adv.shape)}, {tuple(g.shape)}")
    flat = (xd.shape[0], xd.size // max(xd.shape[0], 1))
    xa, gd = to_device(x_adv, xd.dtype).reshape(flat), to_device(g, xd.dtype).reshape(flat)
    steps = cuda.to_device(np.broadcast_to(np.asarray(step_size, dtype=np.float64), (flat[0],)).copy())
    out = cuda.device_array(flat, xd.dtype)
    grid = (blocks(out.size), THREADS) if kernel is _linf else (flat[0], THREADS)
    if out.size:  # an empty batch has nothing to compute (and a grid of zero blocks cannot launch)
        kernel[grid](xa, gd, xd.reshape(flat), steps, float(eps), float(lo), float(hi), moves, out)
    return returned(out.reshape(xd.shape), is_device(x))


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
