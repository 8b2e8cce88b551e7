"""The gradient-Lipschitz estimator R(theta, h), parameter flattening, and the Danskin gradient by converged PGD."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import nn, smoothness
from scratchnet.backend import use_backend
from scratchnet.lipschitz import (
    AdversarialGradient,
    flatten_parameters,
    gradient_lipschitz,
    lipschitz_curve,
    unflatten_parameters,
)


def test_flatten_and_unflatten_are_inverse():
    model = nn.models.mlp([3, 4, 2], seed=0)
    theta = flatten_parameters(model.parameters())
    assert theta.shape == (model.num_parameters(),)
    unflatten_parameters(np.arange(theta.size, dtype=np.float32), model.parameters())
    np.testing.assert_array_equal(flatten_parameters(model.parameters()), np.arange(theta.size))
    with pytest.raises(ValueError, match="theta"):
        unflatten_parameters(theta[:-1], model.parameters())


@settings(deadline=None, max_examples=20)
@given(st.integers(0, 2**32 - 1), st.floats(1e-6, 1.0))
def test_on_a_quadratic_r_is_at_most_the_top_eigenvalue_and_reaches_it(seed, h):
    """grad L = A theta, so the ratio is ||A u|| for every h: R <= ||A||_2, with equality along the top eigenvector."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((3, 3))
    a = m @ m.T
    top = np.linalg.eigvalsh(a)[-1]
    r = gradient_lipschitz(lambda t: a @ t, rng.standard_normal(3), h, directions=4000, seed=seed)
    assert r <= top * (1 + 1e-8)
    assert r >= top * 0.98  # 4000 directions in 3-D come within 0.2 rad of the top eigenvector


def test_the_curve_is_flat_for_a_smooth_gradient_and_grows_like_one_over_h_at_a_jump():
    hs = [1e-1, 1e-2, 1e-3]
    smooth = lipschitz_curve(lambda t: np.tanh(t), np.zeros(4), hs, directions=16)
    np.testing.assert_allclose(smooth, smooth[-1], rtol=1e-2)
    jump = lipschitz_curve(lambda t: np.sign(t), np.zeros(4), hs, directions=16)  # a jump of 1 in each coordinate
    np.testing.assert_allclose(jump * np.array(hs), 2.0, rtol=1e-12)  # ||sign(u)|| = 2 in 4-D
    with pytest.raises(ValueError, match="hs"):
        lipschitz_curve(np.tanh, np.zeros(2), [0.1, 0.0])


def binary_linear(w):
    """A 2-logit sn model whose cross-entropy is l(y w^T x), y = 2 label - 1: logits (-w^T x / 2, w^T x / 2)."""
    model = nn.Linear(len(w), 2, bias=False).to(np.float64)
    model.weight.data[...] = np.stack([-w / 2, w / 2])
    return model


@pytest.mark.parametrize("norm, p", [("2", 2), ("inf", np.inf)])
def test_the_pgd_danskin_gradient_equals_the_closed_form_on_the_linear_model(norm, p):
    rng = np.random.default_rng(0)
    w, x, labels = rng.standard_normal(5), rng.standard_normal((16, 5)), rng.integers(0, 2, 16)
    model = binary_linear(w)
    with use_backend("numpy"):
        gradient = AdversarialGradient(model, x, labels, eps=0.3, norm=norm, restarts=2)
        theta0 = gradient.theta0.copy()
        theta = theta0 + 0.01 * rng.standard_normal(theta0.size)  # away from the base point: a warm start
        g = gradient(theta).reshape(2, 5)
    np.testing.assert_array_equal(flatten_parameters(model.parameters()), theta0)  # the model is left as it was
    assert gradient.unconverged == 0
    v = theta.reshape(2, 5)[1] - theta.reshape(2, 5)[0]  # the logit difference is v^T x
    expected = smoothness.adversarial_gradient(v, x, 2 * labels - 1, 0.3, p)
    # the l2 loss is flat to second order at delta*, so a monotone ascent pins it to about sqrt(machine eps)
    np.testing.assert_allclose(g[1], expected, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(g[0], -expected, rtol=1e-5, atol=1e-10)


def test_the_danskin_gradient_is_taken_in_eval_mode_so_it_is_a_function_of_theta():
    rng = np.random.default_rng(0)
    x, labels = rng.uniform(0, 1, (16, 5)).astype(np.float32), rng.integers(0, 3, 16)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()  # a Dropout left in train mode would make every call a different random function
    gradient = AdversarialGradient(model, x, labels, eps=0.1, norm="inf", restarts=1, bounds=(0, 1))
    theta = gradient.theta0 + 0.01 * rng.standard_normal(gradient.theta0.size)
    np.testing.assert_array_equal(gradient(theta), gradient(theta))
    assert all(m.training for m in model.modules())
