"""NumPy references for the attack step (the oracle of kernels/attack.py).

An attack moves a batch of adversarial points x' [B, ...] and then projects each example back onto the set
{x' : ||x' - x||_p <= eps and lo <= x' <= hi}. For l-inf the ball and the box are both boxes, so clamping to
the ball and then to the bounds is the exact projection onto their intersection; for l2, rescaling the
perturbation into the ball and then clipping is the standard approximation (Madry et al. 2018; see
shared/specs/attacks-and-training.md, section 1). `step_size` holds one step per example (APGD adapts it).
"""

import math

import numpy as np

TINY = 1e-12  # guards the l2 normalizations against a zero gradient or perturbation


def _per_example(values, like):
    """[B] values shaped to broadcast against `like` [B, ...]."""
    return np.asarray(values, dtype=like.dtype).reshape((-1,) + (1,) * (like.ndim - 1))


def _l2_norms(a):
    return np.sqrt(np.sum(a.reshape(len(a), math.prod(a.shape[1:])).astype(np.float64) ** 2, axis=1))


def linf_project(x_adv, x, eps, lo, hi):
    """Clamp x_adv to the l-inf ball of radius eps around x, then to [lo, hi]."""
    return np.clip(np.clip(x_adv, x - eps, x + eps), lo, hi).astype(x.dtype)


def l2_project(x_adv, x, eps, lo, hi):
    """Rescale delta = x_adv - x to l2 norm at most eps, then clip x + delta to [lo, hi]."""
    delta = x_adv - x
    norms = _l2_norms(delta)
    scale = np.where(norms > eps, eps / np.maximum(norms, TINY), 1.0)
    return np.clip(x + delta * _per_example(scale, x), lo, hi).astype(x.dtype)


def linf_step(x_adv, g, x, step_size, eps, lo, hi):
    """x_adv + step * sign(g), projected: the l-inf steepest-ascent step (FGSM, PGD, APGD)."""
    return linf_project(x_adv + _per_example(step_size, x) * np.sign(g), x, eps, lo, hi)


def l2_step(x_adv, g, x, step_size, eps, lo, hi):
    """x_adv + step * g / ||g||_2, projected: the l2 steepest-ascent step (FGM, PGD-l2, APGD-l2)."""
    direction = g / _per_example(_l2_norms(g) + TINY, g)
    return l2_project(x_adv + _per_example(step_size, x) * direction, x, eps, lo, hi)
