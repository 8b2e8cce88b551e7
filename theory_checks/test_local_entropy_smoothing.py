"""The local entropy that Entropy-SGD descends is smooth even where the adversarial loss is not (Chaudhari et al.
2017, section 4; Kanai et al. 2021, the Entropy-SGD section; shared/specs/width-depth-and-smoothness.md B5, B7.4).

Statement. For Phi_gamma(theta) = -T log int exp(-(f(theta') + gamma ||theta - theta'||^2 / 2) / T) d theta',
grad Phi = gamma (theta - mu(theta)) with mu the mean of p(theta' | theta) ∝ exp(-(f(theta') + gamma ||theta -
theta'||^2 / 2) / T), and Hessian Phi = gamma I - (gamma^2 / T) Cov_p(theta') <= gamma I: f enters only through an
integral, so jumps of grad f are averaged out. For the l-inf adversarial loss of the linear model at a w on the
hyperplane w_0 = 0, the raw R(w, h) grows like 1 / h while R of grad Phi stays flat, and its curvature along
any direction stays at most gamma.

grad Phi is computed by self-normalized importance sampling from N(theta0, (T / gamma) I) with fixed samples
(common random numbers at theta and theta + h u): theta enters only through the Gaussian factor, so the estimate is
itself smooth and its Hessian is gamma I - (gamma^2 / T) times a weighted sample covariance.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import smoothness
from scratchnet.lipschitz import lipschitz_curve

GAMMA, T, SAMPLES = 1.0, 0.1, 4000


def local_entropy_gradient(f_values, samples, theta, theta0):
    """gamma (theta - mu(theta)), mu by importance weights exp(-(f + gamma ||theta - theta'||^2 / 2) / T) / q."""
    log_w = -f_values / T - GAMMA / (2 * T) * (np.sum((theta - samples) ** 2, axis=1)
                                               - np.sum((theta0 - samples) ** 2, axis=1))
    weights = np.exp(log_w - log_w.max())
    mu = weights @ samples / weights.sum()
    return GAMMA * (theta - mu)


@settings(deadline=None, max_examples=10)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.5))
def test_the_local_entropy_gradient_stays_smooth_where_the_linf_adversarial_gradient_jumps(seed, eps):
    rng = np.random.default_rng(seed)
    d, n = 5, 30
    w, x, y = rng.standard_normal(d), rng.standard_normal((n, d)) / np.sqrt(d), rng.choice([-1.0, 1.0], n)
    w[0] = 0.0  # on a hyperplane where sign(w) jumps

    def f(v):
        return smoothness.adversarial_loss(v, x, y, eps, np.inf)

    samples = w + np.sqrt(T / GAMMA) * rng.standard_normal((SAMPLES, d))
    f_values = np.array([f(s) for s in samples])
    hs = np.array([1e-1, 1e-3, 1e-5])
    raw = lipschitz_curve(lambda v: smoothness.adversarial_gradient(v, x, y, eps, np.inf), w, hs, 16, seed)
    entropy = lipschitz_curve(lambda v: local_entropy_gradient(f_values, samples, v, w), w, hs, 16, seed)
    # Hessian Phi <= gamma I is one-sided (the covariance term can make |Hessian| exceed gamma): along any u the
    # difference quotient u . (grad Phi(w + h u) - grad Phi(w)) / h, an average of u^T Hessian u, stays <= gamma
    directions, at_w = rng.standard_normal((16, d)), local_entropy_gradient(f_values, samples, w, w)
    for u in directions / np.linalg.norm(directions, axis=1, keepdims=True):
        for h in hs:
            curvature = u @ (local_entropy_gradient(f_values, samples, w + h * u, w) - at_w) / h
            assert curvature <= GAMMA * (1 + 1e-6), (h, curvature)
    assert entropy[-1] <= 2 * entropy[0] + 1e-6, entropy  # flat: no 1 / h growth
    assert raw[-1] >= 1000 * raw[0], raw  # slope -1: four decades of h give about four of R
    assert raw[-1] >= 100 * entropy[-1], (raw, entropy)
