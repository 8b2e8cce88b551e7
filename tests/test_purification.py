"""The sparse-coding generator, the two-layer symmetric-ReLU network, its attacks and the purification metrics
(scratchnet/data/sparse_coding.py, scratchnet/purification.py). The phenomena themselves are checked in
theory_checks/test_feature_purification.py."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import purification as P
from scratchnet.data import sparse_coding
from scratchnet.data.sparse_coding import dct_dictionary

# ---------------------------------------------------------------------------------------------- the generator


@settings(deadline=None, max_examples=20)
@given(st.integers(2, 40), st.floats(0.5, 3.0), st.integers(0, 2**32 - 1))
def test_sparse_coding_samples_have_the_stated_shapes_sparsity_and_labels(d, k, seed):
    k = min(k, d)
    data = sparse_coding(d=d, k=k, seed=seed)
    x, y, z = data.sample(4000, seed, codes=True)
    assert x.shape == z.shape == (4000, d) and y.shape == (4000,) and y.dtype == np.int64
    assert set(np.unique(z)) <= {-1.0, 0.0, 1.0} and set(np.unique(y)) <= {-1, 1}
    nonzeros = np.count_nonzero(z) / 4000
    assert abs(nonzeros - k) < 5 * np.sqrt(k / 4000) + 1e-9  # Binomial(d, k/d) per row, 5 standard errors
    assert np.mean(z == 1) == pytest.approx(np.mean(z == -1), abs=6 * np.sqrt(k / d / 4000))
    assert np.array_equal(y, np.where(z @ data.w_star >= 0, 1, -1))
    assert np.all((data.w_star >= 1) & (data.w_star <= 2))
    noise = x - z @ data.M.T
    assert np.std(noise) == pytest.approx(0.1 / np.sqrt(d), rel=0.1)


@pytest.mark.parametrize("d", [1, 7, 64, 200])
def test_the_random_dictionary_is_orthonormal_and_the_dense_direction_is_a_unit_vector(d):
    data = sparse_coding(d=d, k=min(d, 3), seed=d)
    np.testing.assert_allclose(data.M.T @ data.M, np.eye(d), atol=1e-12)
    assert np.linalg.norm(data.dense_direction) == pytest.approx(1.0)
    np.testing.assert_allclose(data.M.T @ data.dense_direction, data.w_star / np.linalg.norm(data.w_star))


def test_the_dct_dictionary_is_the_orthonormal_2d_dct_basis_of_8x8_patches():
    M = dct_dictionary(8)
    np.testing.assert_allclose(M.T @ M, np.eye(64), atol=1e-12)
    np.testing.assert_allclose(M[:, 0], np.full(64, 1 / 8))  # the constant (DC) atom
    atom = M[:, 1].reshape(8, 8)  # frequency (0, 1): constant down the columns, half a cosine across them
    half_cosine = np.cos(np.pi * (2 * np.arange(8) + 1) / 16) * (1 / np.sqrt(8)) * (1 / 2)  # alpha(0) alpha(1)
    np.testing.assert_allclose(atom, np.tile(half_cosine, (8, 1)), atol=1e-12)
    data = sparse_coding(d=64, k=3, dictionary="dct", seed=5)
    assert np.array_equal(data.M, M)


def test_the_same_seed_gives_the_same_model_and_samples_and_different_seeds_differ():
    a, b, c = sparse_coding(d=30, k=3, seed=1), sparse_coding(d=30, k=3, seed=1), sparse_coding(d=30, k=3, seed=2)
    assert np.array_equal(a.M, b.M) and np.array_equal(a.w_star, b.w_star)
    assert not np.allclose(a.M, c.M)
    for first, second in zip(a.sample(50, 7), b.sample(50, 7), strict=True):
        assert np.array_equal(first, second)
    assert not np.array_equal(a.sample(50, 7)[0], a.sample(50, 8)[0])


@pytest.mark.parametrize("kwargs, argument", [
    ({"d": 0}, "d must"), ({"d": 2.5}, "d must"), ({"d": 10, "k": 0}, "k must"), ({"d": 10, "k": 11}, "k must"),
    ({"noise": -0.1}, "noise must"), ({"noise": float("nan")}, "noise must"), ({"dictionary": "haar"}, "dictionary"),
    ({"d": 50, "dictionary": "dct"}, "perfect square"),
])
def test_bad_generator_arguments_are_refused_by_name(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        sparse_coding(**{"d": 20, "k": 3, **kwargs})


def test_a_bad_sample_count_is_refused_by_name():
    with pytest.raises(ValueError, match="n must"):
        sparse_coding(d=10, k=2).sample(-1, 0)


# ---------------------------------------------------------------------------------------------- the network


def test_the_network_is_a_sum_of_symmetric_relu_pairs_and_linear_without_thresholds():
    rng = np.random.default_rng(0)
    net = P.TwoLayerNet(rng.standard_normal((5, 4)), rng.uniform(0, 1, 5))
    x = rng.standard_normal((7, 4))
    u = x @ net.W.T
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    np.testing.assert_allclose(net(x), (relu(u - net.b) - relu(-u - net.b)).sum(axis=1))
    np.testing.assert_allclose(P.TwoLayerNet(net.W, np.zeros(5))(x), x @ net.W.sum(axis=0))


@settings(deadline=None, max_examples=25)
@given(st.integers(1, 12), st.integers(1, 10), st.integers(0, 2**32 - 1))
def test_the_input_gradient_matches_central_differences(m, d, seed):
    rng = np.random.default_rng(seed)
    net = P.TwoLayerNet(rng.standard_normal((m, d)), rng.uniform(0, 0.5, m))
    x = rng.standard_normal((6, d))
    u = np.abs(x @ net.W.T)
    x = x[np.all(np.abs(u - net.b) > 1e-3, axis=1)]  # away from the kinks, where f is linear within h
    h = 1e-6
    numeric = np.stack([(net(x + h * e) - net(x - h * e)) / (2 * h) for e in np.eye(d)], axis=1)
    np.testing.assert_allclose(net.input_gradient(x), numeric, atol=1e-7)


def test_the_threshold_rule_lets_each_neuron_fire_on_a_fraction_q_of_the_batch():
    rng = np.random.default_rng(1)
    net = P.TwoLayerNet.random(30, 20, 0.1, rng)
    x = rng.standard_normal((1001, 20))
    net.set_thresholds(x, 0.04)
    fires = np.mean(net.forward(x)[1], axis=0)
    np.testing.assert_allclose(fires, 40 / 1001)  # rank round(0.96 * 1000) = 960: the 40 above it fire


def test_the_ideal_network_is_the_soft_thresholded_atoms():
    data = sparse_coding(d=16, k=2, seed=3)
    x = data.sample(40, 0)[0]
    expected = (data.w_star * P.soft_threshold(x @ data.M, 0.5)).sum(axis=1)
    np.testing.assert_allclose(P.ideal_network(data)(x), expected)


def test_sgd_step_lowers_the_loss_along_its_gradient():
    data = sparse_coding(d=20, k=3, seed=0)
    rng = np.random.default_rng(0)
    net = P.TwoLayerNet.random(40, 20, 1.0, rng)
    x, y = data.sample(256, rng)
    net.set_thresholds(data.sample(256, rng)[0], 0.2)  # from another batch: no example sits on a kink
    before = net.copy()
    loss = P.sgd_step(net, x, y, lr=1e-3)
    assert loss == pytest.approx(P.logistic_loss(y * before(x)).mean())
    grad = (before.W - net.W) / 1e-3
    h = 1e-6  # the step's gradient against a directional central difference of the mean loss
    direction = rng.standard_normal(before.W.shape)
    plus, minus = before.copy(), before.copy()
    plus.W += h * direction
    minus.W -= h * direction
    numeric = (P.logistic_loss(y * plus(x)).mean() - P.logistic_loss(y * minus(x)).mean()) / (2 * h)
    assert np.sum(grad * direction) == pytest.approx(numeric, rel=1e-5)


# ---------------------------------------------------------------------------------------------- attacks


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_fgm_and_pgd_stay_in_the_ball_and_are_exact_on_a_linear_classifier(norm):
    rng = np.random.default_rng(2)
    w = rng.standard_normal(10)
    net = P.linear_network(w)
    x, y = rng.standard_normal((50, 10)), rng.choice([-1, 1], 50)
    tau = 0.3
    dual = np.linalg.norm(w, 1 if norm == "inf" else 2)
    worst = y * (x @ w) - tau * dual  # the exact worst-case margin of a linear classifier
    for x_adv in (P.fgm(net, x, y, tau, norm), P.pgd(net, x, y, tau, norm)):
        size = np.abs(x_adv - x).max(axis=1) if norm == "inf" else np.linalg.norm(x_adv - x, axis=1)
        assert np.all(size <= tau + 1e-12)
        np.testing.assert_allclose(y * net(x_adv), worst, atol=1e-10)
    assert P.accuracy(net, x, y, tau, norm) == np.mean(worst > 0)


def test_attacks_refuse_bad_radius_and_norm_by_name():
    net, x, y = P.linear_network(np.ones(3)), np.zeros((2, 3)), np.array([1, -1])
    with pytest.raises(ValueError, match="tau must"):
        P.pgd(net, x, y, -0.1)
    with pytest.raises(ValueError, match="norm must"):
        P.fgm(net, x, y, 0.1, norm="1")


@pytest.mark.parametrize("q", [-0.1, 1.2])
def test_thresholds_refuse_a_firing_fraction_outside_0_1(q):
    """q > 1 would make the rank negative, which np.partition reads from the other end: a silent wrong b."""
    net = P.TwoLayerNet(np.eye(3), np.zeros(3))
    with pytest.raises(ValueError, match="q is a firing fraction"):
        net.set_thresholds(np.ones((4, 3)), q)


def test_the_dense_attack_moves_every_example_against_its_label_along_u():
    u = np.array([0.6, 0.8])
    net = P.linear_network(u)
    x, y = np.array([[1.0, 0.0], [0.0, -0.2]]), np.array([1, -1])
    # margins y <u, x> - tau: 0.6 - 0.5 > 0 and 0.16 - 0.5 < 0
    assert P.dense_attack_accuracy(net, x, y, u, 0.5) == 0.5


# ---------------------------------------------------------------------------------------------- metrics


def test_purity_residual_and_dense_alignment_on_hand_made_coefficients():
    C = np.array([[3.0, 4.0, 0.0, 0.0],     # top 4, residual (3, 0, 0, 0)
                  [0.0, 0.0, -2.0, 0.0],    # a pure atom
                  [1.0, 1.0, 1.0, 1.0]])    # dense
    np.testing.assert_allclose(P.purity(C), [0.8, 1.0, 0.5])
    np.testing.assert_allclose(P.residual_fraction(C), [0.6, 0.0, np.sqrt(3) / 2])
    np.testing.assert_allclose(P.residual_fraction(C, r=2), [0.0, 0.0, np.sqrt(2) / 2])
    w_star = np.array([1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(P.dense_alignment(C[[0, 2]], w_star), [1.0, 0.0])
    np.testing.assert_allclose(P.coefficients(np.eye(4)[:2], C.T), C[:, :2].T)


def test_alive_drops_neurons_far_below_the_median_norm():
    W = np.array([[1.0, 0.0], [0.0, 2.0], [0.1, 0.1], [1.5, 0.0]])
    assert P.alive(W).tolist() == [True, True, False, True]


def test_the_principle_checks_on_hand_made_weights():
    # w = 2 w' + v with v orthogonal to w' and ||2 w'|| = 2 ||v||; the init orthogonal to both
    W_adv = np.array([[1.0, 0.0, 0.0]])
    W_clean = np.array([[2.0, 1.0, 0.0]])
    W_init = np.array([[0.0, 0.0, 5.0]])
    checks = P.principle(W_init, W_clean, W_adv)
    np.testing.assert_allclose(checks["beta"], [2.0])
    np.testing.assert_allclose(checks["ratio"], [2.0])
    np.testing.assert_allclose(checks["cos_clean_adv"], [2 / np.sqrt(5)])
    np.testing.assert_allclose(checks["cos_clean_init"], [0.0])
    np.testing.assert_allclose(checks["cos_adv_init"], [0.0])


def test_the_removed_direction_recovers_a_planted_rank_one_mixture():
    rng = np.random.default_rng(4)
    d, m = 30, 60
    W_adv = np.eye(d)[rng.integers(0, d, m)] * rng.uniform(1, 2, (m, 1))  # pure atoms
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    V = rng.uniform(0.1, 0.3, (m, 1)) * u  # the same dense mixture in every neuron ...
    V -= np.sum(V * W_adv, axis=1, keepdims=True) / np.sum(W_adv**2, axis=1, keepdims=True) * W_adv  # ... minus w'
    direction, sigma = P.removed_direction(W_adv + V, W_adv)
    _, V_back = P.decomposition(W_adv + V, W_adv)
    np.testing.assert_allclose(V_back, V, atol=1e-12)
    assert abs(direction @ u) > 0.9
    assert sigma[0] > 3 * sigma[1]


@settings(deadline=None, max_examples=25)
@given(st.integers(2, 12), st.integers(2, 12), st.integers(0, 2**32 - 1))
def test_effective_rank_is_one_for_rank_one_and_full_for_orthogonal_rows(rows, columns, seed):
    rng = np.random.default_rng(seed)
    outer = np.outer(rng.uniform(1, 2, rows), rng.uniform(1, 2, columns))
    assert P.effective_rank(outer) == pytest.approx(1.0)
    n = min(rows, columns)
    assert P.effective_rank(3.0 * np.eye(n)) == pytest.approx(n)
    assert 1.0 <= P.effective_rank(rng.standard_normal((rows, columns))) <= n + 1e-9


def test_layer_change_sees_a_planted_rank_one_change_in_conv_filters():
    rng = np.random.default_rng(5)
    W_init = rng.standard_normal((32, 4, 3, 3))
    W_adv = W_init + 3 * rng.standard_normal(W_init.shape)
    u = rng.standard_normal(W_init[0].size)
    V = rng.uniform(0.5, 1.0, (32, 1)) * u
    V -= np.sum(V * W_adv.reshape(32, -1), axis=1, keepdims=True) / np.sum(
        W_adv.reshape(32, -1) ** 2, axis=1, keepdims=True) * W_adv.reshape(32, -1)  # orthogonal to each w'
    W_clean = W_adv + V.reshape(W_adv.shape)
    change = P.layer_change(W_init, W_clean, W_adv)
    assert change["removed_effective_rank"] < 1.5 < 0.5 * change["gaussian_effective_rank"]
    assert change["removed_top_energy_share"] > 0.8
    assert change["full_rank"] == 32
    for key in ("removed_energy_curve", "gaussian_energy_curve"):
        curve = change[key]
        assert len(curve) == 32 and np.all(np.diff(curve) >= 0) and curve[-1] == pytest.approx(1.0)
    assert change["removed_energy_curve"][0] == pytest.approx(change["removed_top_energy_share"])
    with np.errstate(divide="ignore", invalid="ignore"):  # V = 0: its rank and energy shares are 0 / 0
        same = P.layer_change(W_init, W_adv, W_adv)
    assert same["cos_clean_adv"] == pytest.approx(1.0)
    assert same["cos_clean_init"] == pytest.approx(same["cos_adv_init"])


def test_roughness_orders_constant_noise_and_checkerboard_filters():
    constant = np.ones((1, 1, 5, 5))
    checkerboard = (-1.0) ** np.add.outer(np.arange(5), np.arange(5))[None, None]
    noise = np.random.default_rng(6).standard_normal((200, 3, 5, 5))
    assert P.roughness(constant) == pytest.approx([0.0])
    assert P.roughness(checkerboard) == pytest.approx([1.6])  # 2 (k - 1) / k at k = 5
    assert np.median(P.roughness(noise)) == pytest.approx(0.8, abs=0.1)
