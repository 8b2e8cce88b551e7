"""The optimal attack on the binary linear logistic model has a closed form (Kanai et al. 2021, section 4;
shared/specs/width-depth-and-smoothness.md B3).

Statement. For f(x) = w^T x, y in {-1, +1} and l(z) = log(1 + e^-z), with 1/p + 1/q = 1,

    max_{||delta||_p <= eps} l(y w^T (x + delta)) = l(y w^T x - eps ||w||_q),   at delta* = -eps y d(w),

d(w) = sign(w) for p = inf and w / ||w||_2 for p = 2. Checked against brute force: every vertex of the l-inf ball
(the maximum of a monotone function of a linear form over a cube is at a vertex), random points of the lp sphere
for general p, and PGD on the same loss through an sn model (scratchnet.attacks.pgd).
"""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import attacks, nn, smoothness
from scratchnet.backend import use_backend

seeds = st.integers(0, 2**32 - 1)


def problem(seed, d):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(d), rng.standard_normal(d), float(rng.choice([-1.0, 1.0])), rng.uniform(0.01, 1.0)


def loss(w, x, y, delta):
    return smoothness.logistic_loss(y * ((x + delta) @ w))


@settings(deadline=None, max_examples=30)
@given(seeds, st.integers(1, 8))
def test_linf_closed_form_equals_the_best_vertex(seed, d):
    w, x, y, eps = problem(seed, d)
    vertices = eps * np.array(list(itertools.product([-1.0, 1.0], repeat=d)))
    best = loss(w, x, y, vertices).max()
    np.testing.assert_allclose(smoothness.adversarial_loss(w, x, [y], eps, np.inf), best, rtol=1e-12)
    delta = smoothness.optimal_perturbation(w, x, [y], eps, np.inf)[0]
    assert np.max(np.abs(delta)) <= eps * (1 + 1e-12)
    np.testing.assert_allclose(loss(w, x, y, delta), best, rtol=1e-12)


@settings(deadline=None, max_examples=30)
@given(seeds, st.integers(1, 10), st.sampled_from([1.0, 1.5, 2.0, 3.0, np.inf]))
def test_the_lp_closed_form_is_feasible_attains_the_maximum_and_no_sample_beats_it(seed, d, p):
    w, x, y, eps = problem(seed, d)
    delta = smoothness.optimal_perturbation(w, x, [y], eps, p)[0]
    closed = smoothness.adversarial_loss(w, x, [y], eps, p)
    assert np.linalg.norm(delta, p) <= eps * (1 + 1e-12)
    np.testing.assert_allclose(loss(w, x, y, delta), closed, rtol=1e-12)
    samples = np.random.default_rng(seed).standard_normal((4000, d))
    samples *= eps / np.linalg.norm(samples, p, axis=1, keepdims=True)  # on the lp sphere
    sampled = loss(w, x, y, samples)
    assert sampled.max() <= closed * (1 + 1e-12)
    assert closed > loss(w, x, y, 0 * delta)  # the attack does raise the loss


@settings(deadline=None, max_examples=10)
@given(seeds, st.sampled_from([("2", 2.0), ("inf", np.inf)]))
def test_pgd_on_the_model_reaches_the_closed_form(seed, norm_p):
    norm, p = norm_p
    rng = np.random.default_rng(seed)
    w, x, labels = rng.standard_normal(6), rng.standard_normal((20, 6)), rng.integers(0, 2, 20)
    eps = 0.5
    model = nn.Linear(6, 2, bias=False).to(np.float64)
    model.weight.data[...] = np.stack([-w / 2, w / 2])  # CE of the logits (-z/2, z/2) is l(y z), y = 2 label - 1
    with use_backend("numpy"):
        x_adv = attacks.pgd(model, x, labels, eps, steps=50, step_size=eps / 5, norm=norm, bounds=(-50, 50), rng=seed)
    y = 2.0 * labels - 1
    pgd_losses = loss(w, x, y, x_adv - x)
    closed = smoothness.logistic_loss(smoothness.adversarial_margin(w, x, y, eps, p))
    np.testing.assert_allclose(pgd_losses, closed, rtol=1e-6)
