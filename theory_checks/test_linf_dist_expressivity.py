"""l-inf-dist nets can express max, min, copy and negation, approximate 1-Lipschitz functions, and certify
separated data (Zhang et al. 2021, ICML; the constructions are shared/specs/linf-dist-nets.md section 6,
item 3, whose exact match with the paper's proofs is unverified).

Statement. For inputs |h_i| <= R and C >= 3R, one l-inf-dist neuron with bias -C computes
  MAX:     w = -C 1               ->  max_i h_i
  NEG-MIN: w = +C 1               ->  -min_i h_i
  COPY:    w_j = -C, |w_i| <= R   ->  h_j
  NEGATE:  w_j = +C, |w_i| <= R   ->  -h_j
and the max / min over a subset S, with weights in [-R, R] off S. Cone envelope: for anchors x_i with values
f(x_i) of a 1-Lipschitz f (in l-inf), the two-layer net c_i = ||x - x_i||_inf + f(x_i), then NEG-MIN, has negated
output g(x) = min_i c_i with f(x) <= g(x) <= f(x) + 2 min_i ||x - x_i||_inf, so within twice the covering radius
of the anchors. Nearest class: with cones on the training points, a NEG-MIN per class and a NEGATE, the logits
are g_k(x) = -dist_inf(x, S_k); if points of different classes are more than 2r apart, every training point has
margin > 2r and is certified at radius r.

Checked exactly (float64) on Hypothesis-drawn inputs with the library's LinfDist layers and LinfDistNet.
"""

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet import certify
from scratchnet.backend import use_backend

TOL = 1e-9


def neuron(weight, bias):
    """One eval-mode l-inf-dist neuron with the given weights and bias, as a plain layer (no mean shift)."""
    layer = sn.nn.LinfDist(len(weight), 1, mean_shift=False, bias=True).to(np.float64)
    layer.weight.data[0], layer.bias.data[0] = weight, bias
    return layer.eval()


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 8), st.floats(0.1, 10.0), st.floats(3.0, 10.0), st.integers(0, 2**32 - 1))
def test_gadgets(n, radius, factor, seed):
    rng = np.random.default_rng(seed)
    c = factor * radius
    h = rng.uniform(-radius, radius, (5, n))
    j = int(rng.integers(n))
    subset = rng.random(n) < 0.5
    subset[j] = True
    off = rng.uniform(-radius, radius, n)  # any weights in [-R, R] off the selected coordinates

    def run(weight):
        with use_backend("numpy"), sn.no_grad():
            return neuron(weight, -c)(h).data[:, 0]

    np.testing.assert_allclose(run(np.full(n, -c)), h.max(axis=1), atol=TOL * c)
    np.testing.assert_allclose(run(np.full(n, c)), -h.min(axis=1), atol=TOL * c)
    np.testing.assert_allclose(run(np.where(np.arange(n) == j, -c, off)), h[:, j], atol=TOL * c)
    np.testing.assert_allclose(run(np.where(np.arange(n) == j, c, off)), -h[:, j], atol=TOL * c)
    np.testing.assert_allclose(run(np.where(subset, -c, off)), h[:, subset].max(axis=1), atol=TOL * c)
    np.testing.assert_allclose(run(np.where(subset, c, off)), -h[:, subset].min(axis=1), atol=TOL * c)


def plain_net(input_dim, widths, classes):
    return sn.nn.LinfDistNet(input_dim, len(widths) + 1, widths, classes, mean_shift=False, hidden_bias=True,
                             identity_init=False).to(np.float64).eval()


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 3), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_cone_envelope_approximates_a_1_lipschitz_function(dim, anchors, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, dim)
    a /= 3 * np.abs(a).sum()  # ||3a||_1 = 1, so x -> sin(3 a.x) is 1-Lipschitz in l-inf
    center = rng.random(dim)

    def f(x):
        return 0.5 * np.sin(3 * x @ a) + 0.5 * np.abs(x - center).max(axis=1)

    points = rng.random((anchors, dim))
    net = plain_net(dim, [anchors], 1)
    net.layers[0].weight.data[:], net.layers[0].bias.data[:] = points, f(points)
    c = 3 * 2.0  # |c_i| <= diam + max|f| <= 2 on [0, 1]^dim
    net.layers[1].weight.data[:], net.layers[1].bias.data[:] = c, -c
    x = np.concatenate([rng.random((200, dim)), points])
    with use_backend("numpy"), sn.no_grad():
        g = net(x).data[:, 0]
    gap = np.abs(x[:, None, :] - points[None]).max(axis=2).min(axis=1)  # distance to the nearest anchor
    assert np.all(g >= f(x) - TOL)
    assert np.all(g <= f(x) + 2 * gap + TOL)
    np.testing.assert_allclose(g[-anchors:], f(points), atol=TOL)  # exact at the anchors


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 3), st.integers(4, 20), st.integers(2, 4), st.integers(0, 2**32 - 1))
def test_separated_data_is_certified_by_the_nearest_class_construction(dim, n, classes, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, dim)), rng.integers(0, classes, n)
    y[:classes] = np.arange(classes)  # every class has a point
    distance = np.abs(x[:, None, :] - x[None]).max(axis=2)
    apart = distance[y[:, None] != y[None]]
    assume(apart.size and apart.min() > 1e-3)
    r = 0.49 * apart.min()  # different classes are more than 2r apart
    net = plain_net(dim, [n, classes], classes)
    c = 3.0  # cones lie in [0, 1]
    first, second, last = net.layers
    first.weight.data[:], first.bias.data[:] = x, 0  # c_i = ||x - x_i||
    second.weight.data[:] = np.where(np.arange(classes)[:, None] == y[None], c, 0.0)  # NEG-MIN over S_k
    second.bias.data[:] = -c
    last.weight.data[:] = np.where(np.eye(classes, dtype=bool), c, 0.0)  # NEGATE; the logits negate again
    last.bias.data[:] = -c
    points = np.concatenate([x, rng.random((30, dim))])
    with use_backend("numpy"), sn.no_grad():
        logits = net(points).data
        by_class = [np.abs(points[:, None, :] - x[y == k][None]).max(axis=2).min(axis=1) for k in range(classes)]
        np.testing.assert_allclose(logits, -np.stack(by_class, axis=1), atol=TOL)  # g_k = -dist(x, S_k)
        assert certify.certified_accuracy(net, x, y, r, method="margin") == 1.0
        assert certify.certified_accuracy(net, x, y, r, method="interval") == 1.0
