"""The local entropy that Entropy-SGD descends is smooth even where the adversarial loss is not (Chaudhari et al.
2017, section 4; Kanai et al. 2021, the Entropy-SGD section; shared/specs/width-depth-and-smoothness.md B5, B7.4).

Statement. For Phi_gamma(theta) = -T log int exp(-(f(theta') + gamma ||theta - theta'||^2 / 2) / T) d theta',
grad Phi = gamma (theta - mu(theta)) with mu the mean of p(theta' | theta) ∝ exp(-(f(theta') + gamma ||theta -
theta'||^2 / 2) / T), and Hessian Phi = gamma I - (gamma^2 / T) Cov_p(theta') <= gamma I: f enters only through an
integral, so jumps of grad f are averaged out. For the l-inf adversarial loss of the linear model at a w on the
hyperplane w_0 = 0, the raw R(w, h) grows like 1 / h while R of grad Phi stays flat, and its curvature along
any direction stays at most gamma.

Phi is computed here by importance sampling from N(theta0, (T / gamma) I) with fixed samples (common random
numbers at theta and theta + h u), and its gradient by the formula gamma (theta - mu) with mu the self-normalized
weighted mean: central differences of the estimated Phi check that formula. theta enters only through the
Gaussian factor, so the estimate's Hessian is gamma I - (gamma^2 / T) times a weighted sample covariance whatever
f is: the curvature and flatness assertions show the theorem's point (f enters only through an integral) rather
than test the library. What ties them to the library is the second check: the SGLD estimate that EntropySGD
descends (`optim.local_entropy_gradient`, noise = sqrt(T)) agrees with this grad Phi, and its chains' spread with
Cov_p, within sampling error. (The SGLD estimate itself, from finitely many chains, jumps where an iterate crosses
the hyperplane, so its own R is not what is checked at small h.)
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import optim, smoothness
from scratchnet.lipschitz import lipschitz_curve

GAMMA, T, SAMPLES = 1.0, 0.1, 4000


def log_weights(f_values, samples, theta, theta0):
    """log of exp(-(f + gamma ||theta - theta'||^2 / 2) / T) / q(theta') at each sample theta', q the sampling
    density N(theta0, (T / gamma) I) up to its constant."""
    return -f_values / T - GAMMA / (2 * T) * (np.sum((theta - samples) ** 2, axis=1)
                                              - np.sum((theta0 - samples) ** 2, axis=1))


def local_entropy(f_values, samples, theta, theta0):
    """Phi(theta) up to a constant: -T log of the mean importance weight."""
    log_w = log_weights(f_values, samples, theta, theta0)
    return -T * (log_w.max() + np.log(np.mean(np.exp(log_w - log_w.max()))))


def local_entropy_gradient(f_values, samples, theta, theta0):
    """gamma (theta - mu(theta)), mu the mean of the samples under the normalized importance weights."""
    log_w = log_weights(f_values, samples, theta, theta0)
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
        step = 1e-4  # grad Phi = gamma (theta - mu), against central differences of Phi
        slope = (local_entropy(f_values, samples, w + step * u, w)
                 - local_entropy(f_values, samples, w - step * u, w)) / (2 * step)
        assert abs(slope - u @ at_w) <= 1e-5 * (1 + abs(slope)), (slope, u @ at_w)
        for h in hs:
            curvature = u @ (local_entropy_gradient(f_values, samples, w + h * u, w) - at_w) / h
            assert curvature <= GAMMA * (1 + 1e-6), (h, curvature)
    assert entropy[-1] <= 2 * entropy[0] + 1e-6, entropy  # flat: no 1 / h growth
    assert raw[-1] >= 1000 * raw[0], raw  # slope -1: four decades of h give about four of R
    assert raw[-1] >= 100 * entropy[-1], (raw, entropy)


@settings(deadline=None, max_examples=8)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.5))
def test_entropy_sgds_sgld_estimate_is_the_local_entropy_gradient(seed, eps):
    """400 chains of 2,000 SGLD steps (inner_lr 0.01, alpha 0.01, noise sqrt(T)) against importance sampling with
    40,000 samples, each coordinate within 5 combined standard errors (40 seeds gave at most 2.5; a chain at
    temperature noise rather than noise^2 gave 6-48). The mean of p(theta' | theta) hardly moves with T for this
    nearly quadratic f, so the spread is checked too: at alpha = 1 the estimate is gamma (theta - the last iterate),
    one draw from p per chain, whose variance is gamma^2 Var_p, proportional to T (a chain at T / 2 or 2 T, which
    the mean check passed, is 7 standard errors out)."""
    rng = np.random.default_rng(seed)
    d, n = 5, 30
    w, x, y = rng.standard_normal(d), rng.standard_normal((n, d)) / np.sqrt(d), rng.choice([-1.0, 1.0], n)
    w[0] = 0.0

    def margins(thetas):  # the adversarial margins y w^T x - eps ||w||_1 of each row of thetas
        return y * (thetas @ x.T) - eps * np.abs(thetas).sum(axis=1, keepdims=True)

    def gradients(thetas):  # each chain's grad f: smoothness.adversarial_gradient, one row per chain
        slope = smoothness.logistic_derivative(margins(thetas[0]))
        return [(slope * y) @ x / n - eps * slope.mean(axis=1, keepdims=True) * np.sign(thetas[0])]

    probe = w + rng.standard_normal((3, d))
    np.testing.assert_allclose(gradients([probe])[0], [smoothness.adversarial_gradient(v, x, y, eps, np.inf)
                                                        for v in probe], rtol=1e-12)
    samples = w + np.sqrt(T / GAMMA) * rng.standard_normal((40000, d))
    log_w = -smoothness.logistic_loss(margins(samples)).mean(axis=1) / T
    weights = np.exp(log_w - log_w.max())
    weights /= weights.sum()
    mu = weights @ samples
    exact, exact_se = GAMMA * (w - mu), GAMMA * np.sqrt(weights**2 @ (samples - mu) ** 2)
    chains = optim.local_entropy_gradient(gradients, [np.tile(w, (400, 1))], GAMMA, L=2000, inner_lr=0.01,
                                          noise=np.sqrt(T), alpha=0.01, rng=np.random.default_rng(seed))[0]
    se = np.sqrt(chains.var(axis=0) / len(chains) + exact_se**2)
    assert np.all(np.abs(chains.mean(axis=0) - exact) <= 5 * se), (chains.mean(axis=0), exact, se)
    draws = optim.local_entropy_gradient(gradients, [np.tile(w, (400, 1))], GAMMA, L=2000, inner_lr=0.01,
                                         noise=np.sqrt(T), alpha=1.0, rng=np.random.default_rng(seed + 1))[0]
    ratio = draws.var(axis=0) / (GAMMA**2 * (weights @ (samples - mu) ** 2))
    assert np.all(np.abs(ratio - 1) <= 4 * np.sqrt(2 / (len(draws) - 1))), ratio  # the variance's relative SE
