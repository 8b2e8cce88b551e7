"""Huang et al.'s local Lipschitz metric, the l-inf -> l1 norm of a matrix, and the residual layer-norm bound."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import nn
from scratchnet.backend import use_backend
from scratchnet.lipschitz import linf_to_l1_norm, lipschitz_bound_factors, local_lipschitz, residual_lipschitz_bound


@settings(deadline=None, max_examples=20)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 4))
def test_local_lipschitz_of_a_linear_map_is_its_ratio(seed, dim, classes):
    model = nn.models.mlp([dim, classes], seed=seed).to(np.float64)
    rng = np.random.default_rng(seed)
    x = rng.random((5, dim))
    x_adv = x + rng.uniform(-0.1, 0.1, x.shape)
    w = model[1].weight.data
    expected = np.abs((x - x_adv) @ w.T).sum(axis=1) / np.abs(x - x_adv).max(axis=1)
    assert local_lipschitz(model, x, x_adv, batch_size=2) == pytest.approx(expected.mean(), rel=1e-12)


def test_local_lipschitz_refuses_unperturbed_examples():
    model = nn.models.mlp([2, 2], seed=0)
    x = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="x_adv must differ"):
        local_lipschitz(model, x, x)
    with pytest.raises(ValueError, match="same shape"):
        local_lipschitz(model, x, x[:1])


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 2**32 - 1), st.integers(1, 20), st.integers(1, 6))
def test_linf_to_l1_norm_is_the_max_over_the_cube_vertices(seed, rows, cols):
    # enumerated here over the input side, 2^cols vertices; the function enumerates the 2^rows output signs
    w = np.random.default_rng(seed).standard_normal((rows, cols))
    vertices = np.array(list(itertools.product((-1.0, 1.0), repeat=cols)))
    exact = np.abs(vertices @ w.T).sum(axis=1).max()
    if rows <= 16:
        assert linf_to_l1_norm(w) == pytest.approx(exact, rel=1e-12)
    else:  # too many signs to enumerate: the bound sum |W|, above the norm
        assert linf_to_l1_norm(w) == pytest.approx(np.abs(w).sum(), rel=1e-12) and linf_to_l1_norm(w) >= exact
    assert linf_to_l1_norm(w) <= np.abs(w).sum() * (1 + 1e-12)


def test_the_bound_is_attained_by_a_net_that_is_linear_with_equal_row_sums():
    # Non-negative weights on the 3x3 kernels' centre taps only, one value per layer, BatchNorm a positive scaling,
    # non-negative inputs: every ReLU passes everything, every layer maps the all-ones image to a constant one, and
    # f(x + t) - f(x) = t times the product of the layers' row sums, which is what each factor is. A factor in
    # the wrong place, or a norm too large or too small, moves the bound off the measured ratio.
    model = nn.WideResNet((2, 1), (1, 2), in_channels=1, base_channels=3, num_classes=4, rng=0).to(np.float64).eval()
    rng = np.random.default_rng(0)
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            layer.weight.data[:] = 0
            layer.weight.data[:, :, layer.weight.shape[2] // 2, layer.weight.shape[3] // 2] = rng.uniform(0.2, 1)
        elif isinstance(layer, nn.BatchNorm2d):
            layer.weight.data[:] = rng.uniform(0.5, 2)
    model.fc.weight.data[:] = rng.uniform(0, 1, model.fc.weight.shape)
    x = rng.uniform(0, 1, (3, 1, 8, 8))
    with use_backend("numpy"):
        bound = residual_lipschitz_bound(model, (1, 8, 8))
        assert local_lipschitz(model, x, x + 0.1) == pytest.approx(bound, rel=1e-9)


def test_bound_factors_follow_the_blocks():
    model = nn.WideResNet((2, 1, 1), (1, 1, 1), in_channels=1, base_channels=4, rng=0)
    factors = lipschitz_bound_factors(model, (1, 8, 8))
    assert [name for name, _ in factors] == ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "head"]
    assert factors[2][1] > 1  # an identity block: 1 + the residual branch's bound
    with use_backend("numpy"):
        assert residual_lipschitz_bound(model, (1, 8, 8)) == pytest.approx(np.prod([f for _, f in factors]))
    with pytest.raises(TypeError, match="WideResNet"):
        lipschitz_bound_factors(nn.models.mlp([2, 2]), (2,))
