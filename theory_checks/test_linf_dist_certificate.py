"""Margin and interval certificates of l-inf-dist nets are sound (Zhang et al. 2021, ICML, Sections 3 and 5).

Statement. (a) For a LinfDistNet g at p = inf in eval mode, 1-Lipschitz in l-inf (in normalized units), if
g_y(x) - max_{j != y} g_j(x) > 2 eps / std then argmax g(x') = y for every x' with ||x' - x||_inf <= eps.
(b) Interval bounds: propagating the input box B = [x - eps, x + eps] (clipped to [0, 1]) through each
l-inf-dist layer with the exact per-neuron ranges gives, at every layer, an interval [l, u] that contains the
activation z(x') of every x' in B and lies inside [z(x) - eps', z(x) + eps'] (eps' = eps / std, by (a) layer by
layer). Hence the interval rule certifies every point the margin rule does. (c) For the l-inf-dist Net+MLP,
interval bound propagation through the head (linear, tanh, elided linear) is sound as well.

Checked on random small nets (float64, NumPy kernels): no point certified at radius eps is flipped by PGD or APGD
at eps, sampled activations lie in the bounds, the bounds in [z - eps', z + eps'], margin-certified implies
interval-certified, and each layer's interval is the exact range over its input box: attained at the point of the
box nearest to a neuron's weights (the lower end) and at the corner farthest from them (the upper).
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet import certify
from scratchnet.backend import use_backend

TOL = 1e-9


def trained_like(net, rng):
    """Random running means, as after training, and eval mode."""
    for layer in net.layers:
        if layer.mean_shift:
            layer.running_mean[:] = rng.normal(0, 0.5, layer.out_features)
    return net.to(np.float64).eval()


def setting(seed, input_dim, depth, width, classes, std, hybrid=False):
    rng = np.random.default_rng(seed)
    if hybrid:
        net = sn.nn.LinfDistNetMLP(input_dim, depth, width, classes, hidden=6, std=std, seed=seed)
    else:
        net = sn.nn.LinfDistNet(input_dim, depth, width, classes, std=std, identity_init=bool(seed % 2), seed=seed)
    return trained_like(net, rng), rng.random((16, input_dim))


configs = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(1, 3), st.integers(2, 6),
                    st.integers(2, 4), st.sampled_from([1.0, 0.5]))


@settings(deadline=None, max_examples=15)
@given(configs, st.booleans())
def test_certified_points_are_never_flipped_by_pgd_or_apgd(config, hybrid):
    net, x = setting(*config, hybrid=hybrid)
    with use_backend("numpy"):
        with sn.no_grad():
            y = net(x).data.argmax(axis=1)  # certify the net's own predictions
        margins = certify.margins(net(x).data, y)
        eps = 0.45 * float(np.median(margins)) * config[5] if not hybrid else 0.05
        certified = certify.interval_certified(net, x, y, eps)
        if not hybrid:
            # (a) implies (b), up to rounding at the boundary margin = 2 eps'
            assert np.all(certified >= certify.margin_certified(net, x, y, eps * (1 + 1e-9)))
        if certified.any():
            xc, yc = x[certified], y[certified]
            for x_adv in (sn.attacks.pgd(net, xc, yc, eps, steps=20, restarts=2, rng=0),
                          sn.attacks.apgd(net, xc, yc, eps, steps=20, rng=0)):
                with sn.no_grad():
                    assert np.all(net(x_adv).data.argmax(axis=1) == yc)


@settings(deadline=None, max_examples=25)
@given(configs, st.floats(0.0, 0.5))
def test_interval_bounds_contain_samples_and_lie_within_eps(config, eps):
    net, x = setting(*config)
    std = config[5]
    with use_backend("numpy"):
        bounds = certify.layer_bounds(net, *certify.input_box(net, x, eps))
        with sn.no_grad():
            centers = [a.data for a in net.activations(x)]
            for k in range(20):
                x2 = np.clip(x + np.random.default_rng(k).uniform(-eps, eps, x.shape), 0, 1)
                if k < 2:  # the corners too
                    x2 = np.clip(x + (eps if k else -eps), 0, 1)
                for (low, high), a in zip(bounds, net.activations(x2), strict=True):
                    assert np.all(low - TOL <= a.data) and np.all(a.data <= high + TOL)
    for (low, high), z in zip(bounds, centers, strict=True):
        assert np.all(low <= high + TOL)
        assert np.all(z - eps / std - TOL <= low) and np.all(high <= z + eps / std + TOL)
    # exact, not just sound: max_j |x_j - w_ij| separates over the coordinates, so over a box its minimum is at x
    # = w_i clipped into the box and its maximum at the corner farthest from w_i; each layer alone attains its
    # interval within the box of its inputs (the previous layer's interval)
    boxes = [certify.input_box(net, x, eps), *bounds[:-1]]
    for layer, (lower, upper), (low, high) in zip(net.layers, boxes, bounds, strict=True):
        w = layer.weight.data[None]  # [1, m, n] against boxes [B, 1, n]
        lower, upper = lower[:, None], upper[:, None]
        nearest = np.clip(w, lower, upper)
        farthest = np.where(np.abs(lower - w) >= np.abs(upper - w), lower, upper)
        with use_backend("numpy"), sn.no_grad():
            for points, bound in ((nearest, low), (farthest, high)):
                z = layer(points.reshape(-1, points.shape[2])).data.reshape(points.shape[0], points.shape[1], -1)
                np.testing.assert_allclose(np.einsum("bii->bi", z), bound, rtol=0, atol=TOL)
