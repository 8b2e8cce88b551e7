"""The adversarial loss of the binary linear model is smooth under l2 (except at w = 0) and not under l-inf
(Kanai et al. 2021, section 4; shared/specs/width-depth-and-smoothness.md B3).

Statement. With z~ = y w^T x - eps ||w||_q:
  * l2: grad L = l'(z~)(y x - eps u), u = w / ||w||, and ||Hessian|| <= mean (||x|| + eps)^2 / 4 + eps / ||w||, so
    the gradient is locally Lipschitz at every w != 0 with that constant. Near w = 0 the term -l' eps (I - u u^T)
    / ||w|| dominates: the constant grows like eps |l'(0)| / ||w|| = eps / (2 ||w||).
  * l-inf: grad L = l'(z~)(y x - eps sign(w)); crossing a hyperplane w_i = 0 changes its component i by
    2 eps mean |l'(z~)|, so R(w, h) grows like 1 / h on each of these d hyperplanes.
R(theta, h) is measured by `scratchnet.lipschitz` on the closed-form Danskin gradients in float64.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import smoothness
from scratchnet.lipschitz import gradient_lipschitz, lipschitz_curve

seeds = st.integers(0, 2**32 - 1)


def data(seed, d=8, n=30):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(d), rng.standard_normal((n, d)) / np.sqrt(d), rng.choice([-1.0, 1.0], n)


@settings(deadline=None, max_examples=30)
@given(seeds, st.floats(0.01, 1.0), st.floats(1e-2, 10.0))
def test_l2_gradient_is_lipschitz_within_the_bound_away_from_zero(seed, eps, scale):
    w, x, y = data(seed)
    w *= scale
    bound = smoothness.l2_smoothness_bound(w, x, eps)
    hessian = smoothness.l2_adversarial_hessian(w, x, y, eps)
    top = np.max(np.abs(np.linalg.eigvalsh(hessian)))
    assert top <= bound * (1 + 1e-12)
    def gradient(v):
        return smoothness.adversarial_gradient(v, x, y, eps, 2)
    h = 1e-5 * np.linalg.norm(w)
    assert gradient_lipschitz(gradient, w, h, directions=32, seed=seed) <= top * (1 + 1e-3) + 1e-9
    # the Hessian is the derivative of the gradient: a difference quotient along its top eigenvector agrees
    v = np.linalg.eigh(hessian)[1][:, np.argmax(np.abs(np.linalg.eigvalsh(hessian)))]
    np.testing.assert_allclose((gradient(w + h * v) - gradient(w - h * v)) / (2 * h), hessian @ v, rtol=1e-5,
                               atol=1e-8 * top)


@settings(deadline=None, max_examples=20)
@given(seeds, st.floats(0.05, 1.0))
def test_l2_smoothness_constant_blows_up_like_eps_over_2_norm_w_at_zero(seed, eps):
    w, x, y = data(seed)
    for r in (1e-3, 1e-5):
        v = w / np.linalg.norm(w) * r
        hessian = smoothness.l2_adversarial_hessian(v, x, y, eps)
        top = np.max(np.abs(np.linalg.eigvalsh(hessian)))
        np.testing.assert_allclose(top * r, eps / 2, rtol=0.05)  # l'(z~) -> l'(0) = -1/2 as w -> 0
        measured = gradient_lipschitz(lambda t: smoothness.adversarial_gradient(t, x, y, eps, 2), v, 1e-4 * r,
                                      directions=16, seed=seed)
        assert measured * r >= 0.2 * eps  # random directions see most of the (I - u u^T) part


@settings(deadline=None, max_examples=30)
@given(seeds, st.floats(0.01, 0.5), st.integers(0, 7))
def test_linf_gradient_jumps_by_2_eps_mean_abs_slope_across_each_hyperplane(seed, eps, i):
    w, x, y = data(seed)
    w[i] = 0.0
    t = 1e-9
    e = np.eye(len(w))[i]
    below = smoothness.adversarial_gradient(w - t * e, x, y, eps, np.inf)
    above = smoothness.adversarial_gradient(w + t * e, x, y, eps, np.inf)
    slope = smoothness.logistic_derivative(smoothness.adversarial_margin(w, x, y, eps, np.inf))
    jump = above - below
    np.testing.assert_allclose(abs(jump[i]), 2 * eps * np.mean(np.abs(slope)), rtol=1e-6)
    assert np.max(np.abs(np.delete(jump, i))) <= 1e-6 * eps  # the other components are continuous
    # R(w, h) grows like 1 / h on the hyperplane, and stays bounded under l2 at the same w
    hs = np.array([1e-2, 1e-4, 1e-6])
    linf = lipschitz_curve(lambda v: smoothness.adversarial_gradient(v, x, y, eps, np.inf), w, hs, 8, seed)
    l2 = lipschitz_curve(lambda v: smoothness.adversarial_gradient(v, x, y, eps, 2), w, hs, 8, seed)
    assert linf[-1] >= 100 * linf[0]  # slope -1: a factor 1e4 in h gives about 1e4 in R
    assert l2[-1] <= 1.01 * smoothness.l2_smoothness_bound(w, x, eps)
