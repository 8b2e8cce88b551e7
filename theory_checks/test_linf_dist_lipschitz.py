"""Every l-inf-dist net in eval mode is 1-Lipschitz in l-inf (Zhang et al. 2021, ICML, Section 3).

Statement. A neuron u(x) = ||x - w||_inf + b satisfies |u(x) - u(x')| <= ||x - x'||_inf by the reverse triangle
inequality. A layer of them maps into l-inf with the same constant; subtracting a constant (the eval-mode running
mean) and negating change nothing, and compositions multiply the constants. So the logits g of a LinfDistNet at
p = inf in eval mode satisfy ||g(x) - g(x')||_inf <= ||x - x'||_inf / std (std: the scalar input normalization).

Checked on random nets (random weights, biases and running means, float64) with random pairs, and with an
adversarial search: sign-gradient ascent on each +-g_k(x + delta) inside an l-inf ball, the worst ratio of which
must still be at most 1 / std. NumPy kernels (tiny shapes).
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.backend import use_backend

TOL = 1e-9  # relative slack on the ratio, plus an absolute one on the change for the rounding of the logits
ROUNDING = 1e-12


def random_net(seed, input_dim, depth, width, classes, std):
    rng = np.random.default_rng(seed)
    net = sn.nn.LinfDistNet(input_dim, depth, width, classes, std=std, hidden_bias=True,
                            identity_init=bool(seed % 2), seed=seed).to(np.float64)
    for layer in net.layers:
        layer.bias.data[:] = rng.standard_normal(layer.out_features)
        if layer.mean_shift:
            layer.running_mean[:] = rng.standard_normal(layer.out_features)
    return net.eval()


def ratios(net, x, x2):
    """||g(x) - g(x')||_inf / ||x - x'||_inf for each pair, the change less the rounding of logits of size ~10."""
    with sn.no_grad():
        change = np.abs(net(x).data - net(x2).data).max(axis=1)
    return np.maximum(change - ROUNDING, 0) / np.abs(x - x2).max(axis=1)


nets = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 4), st.integers(1, 8),
                 st.integers(1, 4), st.sampled_from([1.0, 0.3, 2.0]))


@settings(deadline=None, max_examples=40)
@given(nets, st.floats(1e-3, 3.0))
def test_random_pairs(config, scale):
    seed, input_dim, depth, width, classes, std = config
    net = random_net(*config)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((32, input_dim))
    x2 = x + scale * rng.uniform(-1, 1, x.shape)
    with use_backend("numpy"):
        assert np.all(ratios(net, x, x2) <= (1 + TOL) / std)


@settings(deadline=None, max_examples=15)
@given(nets, st.floats(1e-3, 1.0))
def test_adversarial_search_for_the_worst_ratio(config, eps):
    """PGD on s g_k(x + delta) for every class k and sign s, ||delta||_inf <= eps: the ratio stays <= 1 / std."""
    seed, input_dim, depth, width, classes, std = config
    net = random_net(*config)
    x = np.random.default_rng(seed + 2).standard_normal((4, input_dim))
    with use_backend("numpy"):
        with sn.no_grad():
            clean = net(x).data
        worst = 0.0
        for k in range(classes):
            for sign in (1.0, -1.0):
                delta = np.random.default_rng(seed + k).uniform(-eps, eps, x.shape)
                for _ in range(20):
                    xt = sn.Tensor(x + delta, requires_grad=True)
                    (g,) = sn.grad((sign * net(xt)[:, k]).sum(), [xt])
                    delta = np.clip(delta + eps / 4 * np.sign(g), -eps, eps)
                with sn.no_grad():
                    change = np.abs(net(x + delta).data[:, k] - clean[:, k])
                worst = max(worst, float(np.max(change / np.abs(delta).max(axis=1))))
    assert worst <= (1 + TOL) / std


@settings(deadline=None, max_examples=20)
@given(nets)
def test_the_constant_is_attained(config):
    """The bound is tight: each logit's gradient is +-e_j / std for one input coordinate j (every neuron's is a
    unit vector e_j, at its argmax), so a step of 1e-7 along it changes the logit by exactly 1e-7 / std. A net
    computing a smaller multiple of the distances would pass the upper bound alone."""
    seed, input_dim, depth, width, classes, std = config
    net = random_net(*config)
    x = np.random.default_rng(seed + 3).standard_normal((4, input_dim))
    with use_backend("numpy"):
        for k in range(classes):
            xt = sn.Tensor(x, requires_grad=True)
            (g,) = sn.grad(net(xt)[:, k].sum(), [xt])
            np.testing.assert_allclose(np.abs(g).max(axis=1), 1 / std, rtol=1e-12)
            assert np.all(np.count_nonzero(g, axis=1) == 1)
            step = 1e-7 * np.sign(g)
            with sn.no_grad():
                change = net(x + step).data[:, k] - net(x).data[:, k]
            np.testing.assert_allclose(change, 1e-7 / std, rtol=1e-6)
