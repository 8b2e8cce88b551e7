"""On a small smooth network the adversarial loss is less smooth than the clean one, and l-inf less than l2
(Kanai et al. 2021, sections 4-5; shared/specs/width-depth-and-smoothness.md B4 and B7.2).

Statement. With delta* from a first-order attack and g = grad_x l: under l2, delta* = eps g / ||g|| is smooth in
theta and adds about eps L_theta_x L_x_theta / ||g|| to the smoothness constant of the clean loss; under l-inf,
delta* = eps sign(g) jumps wherever a component of g changes sign, so the gradient has jumps of order eps. On a tanh
MLP (2-D spirals lifted to d = 20) the measured non-smoothness, the largest R(theta, h) over h in [0.03, 0.3],
orders as l-inf > l2 > clean. The l2 radius is eps_inf sqrt(d), the l-inf ball's circumscribed one. The inner
maximum is PGD run to convergence with warm starts (`scratchnet.lipschitz.AdversarialGradient`).
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.backend import use_backend
from scratchnet.lipschitz import AdversarialGradient, lipschitz_curve

D, EPS_INF = 20, 0.1


def lifted_spirals(seed, n=64, d=D):
    """Two interleaved spirals in the plane, mapped into R^d by a random linear map, plus a little noise."""
    rng = np.random.default_rng(seed)
    t, labels = rng.uniform(0.5, 3.0, n), rng.integers(0, 2, n)
    plane = np.stack([t * np.cos(2 * t + np.pi * labels), t * np.sin(2 * t + np.pi * labels)], axis=1) / 3
    return plane @ rng.standard_normal((2, d)) / np.sqrt(2) + 0.05 * rng.standard_normal((n, d)), labels


def nonsmoothness(model, x, labels, eps, norm):
    """The largest R(theta, h); None when the warm-started inner maximum did not converge for some point (about
    1% of the models under l-inf: the estimate would then measure the attack's error, not the loss)."""
    gradient = AdversarialGradient(model, x, labels, eps, norm)
    r = lipschitz_curve(gradient, gradient.theta0, [3e-1, 1e-1, 3e-2], directions=8).max()
    return r if gradient.unconverged == 0 else None


MODELS = 7


@settings(deadline=None, max_examples=3)
@given(st.integers(0, 2**16))
def test_linf_is_less_smooth_than_l2_which_is_less_smooth_than_clean(first_seed):
    """For one model, eight random directions at h >= 0.03 can miss every sign flip of the input gradient, and the
    l-inf estimate then sits near the l2 one (in a sweep of 235 models, 7 had l-inf / l2 below 1.15 and one below
    1; seeds 200-319 had 4 of 120, three of them among 292-296, which failed a median over five models in CI);
    so the ordering is asserted for the median over seven models (data and weights seeded alike)."""
    ratios = []
    for seed in range(first_seed, first_seed + MODELS):
        x, labels = lifted_spirals(seed)
        model = sn.nn.models.mlp([D, 32, 2], activation="tanh", seed=seed).to(np.float64)
        with use_backend("numpy"):
            r = (nonsmoothness(model, x, labels, 0.0, "2"), nonsmoothness(model, x, labels, EPS_INF * np.sqrt(D), "2"),
                 nonsmoothness(model, x, labels, EPS_INF, "inf"))
        if None not in r:
            ratios.append((r[2] / r[1], r[1] / r[0]))
    assert len(ratios) >= MODELS - 1, f"the inner maximum did not converge for {MODELS - len(ratios)} models"
    linf_over_l2, l2_over_clean = np.median(ratios, axis=0)
    assert linf_over_l2 > 1.15, ratios
    assert l2_over_clean > 1.1, ratios
