"""The l-inf-dist layer and nets (mean shift, identity init, p), the training pieces of Zhang et al. 2021 / 2022
(p schedule, losses against NumPy formulas, lp-aware weight decay), certification on hand-made cases, bad input,
and a short end-to-end run. Tiny shapes run on the NumPy kernels (thread start-up dominates Numba's there)."""

import math

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import certify
from scratchnet import linf_dist_training as T
from scratchnet.backend import use_backend
from scratchnet.data import ArrayDataset, BatchLoader


@pytest.fixture(autouse=True)
def numpy_kernels():
    with use_backend("numpy"):
        yield


def dist(x, w, p=math.inf):
    d = np.abs(x[:, None, :] - w[None, :, :])
    return d.max(axis=2) if math.isinf(p) else (d**p).sum(axis=2) ** (1 / p)


def ce(z, y):
    z = z - z.max(axis=1, keepdims=True)
    return np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y])


# ------------------------------------------------------------------------------------------------ the layer


def test_mean_shift_uses_the_batch_mean_in_training_and_the_running_mean_in_eval():
    rng = np.random.default_rng(0)
    layer = sn.nn.LinfDist(5, 3, identity_init=False, rng=1).to(np.float64)
    x1, x2 = rng.random((6, 5)), rng.random((4, 5))
    d1, d2 = dist(x1, layer.weight.data), dist(x2, layer.weight.data)
    np.testing.assert_allclose(layer(x1).data, d1 - d1.mean(axis=0), atol=1e-12)
    layer(x2)
    running = 0.9 * (0.1 * d1.mean(axis=0)) + 0.1 * d2.mean(axis=0)
    np.testing.assert_allclose(layer.running_mean, running, atol=1e-12)
    layer.eval()
    np.testing.assert_allclose(layer(x1).data, d1 - running, atol=1e-12)
    np.testing.assert_allclose(layer(x1[:1]).data, (d1 - running)[:1], atol=1e-12)  # examples are independent
    np.testing.assert_allclose(layer.running_mean, running, atol=1e-12)  # eval does not update it


def test_the_gradient_flows_through_the_batch_mean():
    layer = sn.nn.LinfDist(3, 2, identity_init=False, rng=0).to(np.float64)
    x = sn.Tensor(np.random.default_rng(1).random((4, 3)), requires_grad=True)
    layer(x).sum().backward()  # the shifted outputs sum to 0 over the batch for any x
    np.testing.assert_allclose(x.grad, 0, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, 0, atol=1e-12)


def test_bias_and_finite_p_and_set_p():
    rng = np.random.default_rng(2)
    layer = sn.nn.LinfDist(4, 3, p=8, mean_shift=False, bias=True, rng=0).to(np.float64)
    layer.bias.data[:] = [1.0, -2.0, 0.5]
    x = rng.random((5, 4))
    np.testing.assert_allclose(layer(x).data, dist(x, layer.weight.data, 8) + layer.bias.data, rtol=1e-10)
    model = sn.nn.LinfDistNet(4, 3, 6, 2)
    sn.nn.set_p(model, 16)
    assert [layer.p for layer in model.layers] == [16.0] * 3
    with sn.nn.infinite_p(model):
        assert all(math.isinf(layer.p) for layer in model.layers)
    assert [layer.p for layer in model.layers] == [16.0] * 3


def test_identity_init_puts_minus_c_on_one_weight_per_neuron_when_fan_in_is_at_most_fan_out():
    wide = sn.nn.LinfDist(3, 7, rng=0)
    np.testing.assert_array_equal(wide.weight.data[np.arange(7), np.arange(7) % 3], -10.0)
    narrow = sn.nn.LinfDist(7, 3, rng=0)
    assert not np.any(narrow.weight.data == -10.0)
    assert not np.any(sn.nn.LinfDist(3, 7, identity_init=False, rng=0).weight.data == -10.0)
    # the neuron is x_{i mod n} + 10 (the -10 entry dominates), and mean shift removes the constant
    x = np.random.default_rng(0).random((8, 3)).astype(np.float32)
    wide.mean_shift = False
    np.testing.assert_allclose(wide(x).data, x[:, np.arange(7) % 3] + 10, rtol=1e-6)


def test_nets_have_the_papers_structure():
    net = sn.nn.LinfDistNet(6, depth=3, width=(8, 5), num_classes=4)
    assert [(layer.in_features, layer.out_features) for layer in net.layers] == [(6, 8), (8, 5), (5, 4)]
    assert [layer.mean_shift for layer in net.layers] == [True, True, False]
    assert [layer.bias is not None for layer in net.layers] == [False, False, True]
    x = np.random.default_rng(0).random((3, 2, 3)).astype(np.float32)  # [B, ...] is flattened
    net.eval()
    np.testing.assert_allclose(net(x).data, -net.activations(x)[-1].data)
    hybrid = sn.nn.LinfDistNetMLP(6, depth=2, width=8, num_classes=4, hidden=16)
    assert all(layer.mean_shift and layer.bias is None for layer in hybrid.layers)
    hybrid.eval()
    z = hybrid.features(x).data
    w1 = hybrid.fc1.weight.data / math.sqrt(8)
    w2 = hybrid.fc2.weight.data / math.sqrt(16)
    np.testing.assert_allclose(hybrid(x).data, np.tanh(z @ w1.T) @ w2.T, rtol=1e-5, atol=1e-6)


def test_input_normalization_by_one_std_and_eps_conversion():
    net = sn.nn.LinfDistNet(3, 2, 4, 2, mean=0.5, std=0.25).to(np.float64)
    other = sn.nn.LinfDistNet(3, 2, 4, 2).to(np.float64)
    other.load_state_dict(net.state_dict())
    net.eval(), other.eval()
    x = np.random.default_rng(0).random((5, 3))
    np.testing.assert_allclose(net(x).data, other((x - 0.5) / 0.25).data)
    assert net.scale_eps(0.1) == pytest.approx(0.4)


def test_state_dict_round_trip_keeps_weights_and_running_means(tmp_path):
    a = sn.nn.LinfDistNetMLP(5, 2, 6, 3, hidden=8, seed=0)
    a(np.random.default_rng(0).random((4, 5)).astype(np.float32))  # move the running means
    b = sn.nn.LinfDistNetMLP(5, 2, 6, 3, hidden=8, seed=1)
    sn.load(sn.save(a, tmp_path / "m.npz"), b)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value)
    x = np.random.default_rng(1).random((3, 5)).astype(np.float32)
    np.testing.assert_array_equal(a.eval()(x).data, b.eval()(x).data)


# ------------------------------------------------------------------------------------------------ training


def test_p_schedule_values():
    s = T.PSchedule(start=10, end=30, power_of_two=False)
    assert s(0) == s(9.99) == 8.0
    assert s(10) == pytest.approx(8.0)
    assert s(20) == pytest.approx(8 * 125**0.5)
    assert s(29.999) == pytest.approx(1000, rel=1e-3)
    assert s(30) == s(100) == math.inf
    ps = [s(t) for t in np.linspace(10, 29, 20)]
    np.testing.assert_allclose(np.diff(np.log(ps)), np.log(125) / 20)  # geometric growth
    rounded = T.PSchedule(start=10, end=30)
    for t in np.linspace(0, 29.9, 300):  # the power of two nearest to p in log scale
        assert rounded(t) in [2.0**k for k in range(3, 11)] and abs(math.log2(rounded(t) / s(t))) <= 0.5
    assert rounded(20) == 64.0 and rounded(29.9) == 1024.0 and rounded(30) == math.inf


def test_objectives_set_p_before_every_step():
    model = sn.nn.LinfDistNet(3, 2, 4, 2)
    objective = T.HingeLoss(0.1, T.PSchedule(1, 3))
    x, y = np.random.default_rng(0).random((4, 3)).astype(np.float32), np.array([0, 1, 0, 1])
    for t, p in ((0.5, 8.0), (2.0, 64.0), (3.0, math.inf)):
        objective.schedule(t)
        objective(model, x, y, None)
        assert [layer.p for layer in model.layers] == pytest.approx([p, p])


def hinge_setting(seed=0, classes=4):
    rng = np.random.default_rng(seed)
    model = sn.nn.LinfDistNet(5, 2, 6, classes, std=0.5, identity_init=False, seed=seed).to(np.float64)
    return model, rng.random((7, 5)), rng.integers(0, classes, 7)


def numpy_margins(z, y, theta):
    m = z - z[np.arange(len(y)), y][:, None] + theta
    m[np.arange(len(y)), y] = 0
    return m


@pytest.mark.parametrize("mix", [0.75, 1.0])
def test_hinge_loss_matches_the_formula(mix):
    model, x, y = hinge_setting()
    loss, logits = T.HingeLoss(0.1, mix=mix)(model, x, y, None)
    m = np.maximum(numpy_margins(logits.data, y, 2 * 0.1 / 0.5), 0)
    assert loss.item() == pytest.approx(mix * m.max(axis=1).mean() + (1 - mix) * m.mean(), rel=1e-12)


def test_clipped_hinge_with_decaying_lambda_matches_the_formula():
    model, x, y = hinge_setting(1)
    objective = T.ClippedHingeCE(0.1, T.PSchedule(0, 10), lam_start=0.1, lam_end=1e-3)
    objective.schedule(5.0)
    assert objective.lam == pytest.approx(0.1 * 0.01**0.5)
    loss, logits = objective(model, x, y, None)
    theta = 2 * 0.1 / 0.5
    hinge = np.clip(numpy_margins(logits.data, y, theta) / theta, 0, 1).max(axis=1).mean()
    assert loss.item() == pytest.approx(hinge + objective.lam * ce(logits.data, y), rel=1e-10)


def test_ibp_loss_matches_interval_arithmetic_by_hand():
    rng = np.random.default_rng(3)
    model = sn.nn.LinfDistNetMLP(4, 2, 5, 3, hidden=6, std=0.5, seed=3).to(np.float64)
    x, y = rng.random((6, 4)), rng.integers(0, 3, 6)
    objective = T.IBPLoss(0.2, kappa=0.5, warmup_epochs=4)
    objective.schedule(2.0)  # half-way through the warm-up: eps_t = 0.1, 0.2 in normalized units
    loss, logits = objective(model, x, y, None)
    model_copy = sn.nn.LinfDistNetMLP(4, 2, 5, 3, hidden=6, std=0.5, seed=3).to(np.float64)
    z = model_copy.features(x).data  # a fresh copy: the same batch statistics
    w1, w2 = model.fc1.weight.data / math.sqrt(5), model.fc2.weight.data / math.sqrt(6)
    b1, b2 = model.fc1.bias.data, model.fc2.bias.data
    c, r = z @ w1.T + b1, np.full((6, 5), 0.2) @ np.abs(w1).T
    low, high = np.tanh(c - r), np.tanh(c + r)
    c, r = (low + high) / 2, (high - low) / 2
    worst = np.empty((6, 3))
    for b in range(6):
        dw, db = w2 - w2[y[b]], b2 - b2[y[b]]
        worst[b] = dw @ c[b] + db + np.abs(dw) @ r[b]
    assert np.allclose(worst[np.arange(6), y], 0)
    assert loss.item() == pytest.approx(0.5 * ce(worst, y) + 0.5 * ce(logits.data, y), rel=1e-10)


@pytest.mark.parametrize("p", [1.5, 2.0, 8.0, 37.5])
def test_lp_decay_direction_is_the_gradient_of_half_the_squared_norm(p):
    w = np.random.default_rng(int(p)).standard_normal((3, 5))
    direction = T.lp_decay_direction(w, p)
    h = 1e-6
    for i, j in np.ndindex(w.shape):
        plus, minus = w.copy(), w.copy()
        plus[i, j] += h
        minus[i, j] -= h
        numeric = (np.sum(np.abs(plus[i]) ** p) ** (2 / p) - np.sum(np.abs(minus[i]) ** p) ** (2 / p)) / (4 * h)
        assert direction[i, j] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    if p == 2.0:
        np.testing.assert_allclose(direction, w)
    huge = T.lp_decay_direction(1e30 * w, 1000.0)  # no overflow in the powers
    assert np.all(np.isfinite(huge))
    w[1] = 0  # a zero row: the gradient of 0 is 0, not 0 / 0
    np.testing.assert_array_equal(T.lp_decay_direction(w, p)[1], np.zeros(5))


def test_lp_decay_at_infinity_moves_only_the_largest_entry_and_the_wrapper_applies_it():
    w = np.array([[1.0, -3.0, 2.0], [0.5, 0.1, -0.2]])
    np.testing.assert_array_equal(T.lp_decay_direction(w, math.inf), [[0, -3.0, 0], [0.5, 0, 0]])
    model = sn.nn.LinfDistNet(2, 2, 3, 2).to(np.float64)
    sn.nn.set_p(model, 4.0)
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    optimizer = T.LpWeightDecay(sn.optim.SGD(model.parameters(), lr=0.1), model, weight_decay=0.5)
    optimizer.zero_grad()
    optimizer.step()  # no gradients: only the decay moves the weights
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            expected = before[name] - 0.05 * T.lp_decay_direction(before[name], 4.0)
        else:
            expected = before[name] * (1 - 0.05)
        np.testing.assert_allclose(p.data, expected, rtol=1e-12)
    optimizer.lr = 0.3
    assert optimizer.optimizer.lr == 0.3


def test_delayed_cosine():
    schedule = T.DelayedCosine(0.02, start=10, total=30)
    assert schedule(0) == schedule(10) == 0.02
    assert schedule(20) == pytest.approx(0.01)
    assert schedule(30) == pytest.approx(0)


# ------------------------------------------------------------------------------------------------ certification


def two_anchor_net(std=1.0):
    """g_0(x) = -|x - 0.3|, g_1(x) = -|x - 1| on one input in [0, 1]: class 0 below 0.65, class 1 above."""
    net = sn.nn.LinfDistNet(1, 1, 1, 2, std=std).to(np.float64)
    net.layers[0].weight.data[:] = [[0.3 / std], [1.0 / std]]
    net.layers[0].bias.data[:] = 0
    return net.eval()


@pytest.mark.parametrize(("x", "eps", "margin", "interval"), [
    (0.1, 0.34, True, True),    # margin 0.7 > 0.68
    (0.1, 0.36, False, True),   # box [0, 0.46]: g_0 >= -0.3 > -0.54 >= g_1
    (0.1, 0.5, False, True),    # box [0, 0.6]: the clipping at 0 is what makes the interval rule tighter
    (0.1, 0.56, False, False),  # box [0, 0.66] crosses 0.65
    (0.65, 0.0, False, False),  # a tie is never certified
    (0.9, 0.2, True, True),
])
def test_certification_rules_on_a_hand_made_net(x, eps, margin, interval):
    net, xs, y = two_anchor_net(), np.array([[x]]), np.array([int(x > 0.65)])
    assert certify.margin_certified(net, xs, y, eps)[0] == margin
    assert certify.interval_certified(net, xs, y, eps)[0] == interval
    assert certify.certified_accuracy(net, xs, y, eps, "margin") == float(margin)


@pytest.mark.parametrize("x", [1.5, -0.5, np.nan])
def test_the_interval_rule_refuses_inputs_outside_the_bounds(x):
    # with anchors at 1.2 and 1.5 the net says class 1 at x = 1.5, but clipping to [0, 1] gives the box [1.4, 1],
    # which does not hold x, and whose bounds favour class 0: without the check, the wrong label is "certified"
    net = two_anchor_net()
    net.layers[0].weight.data[:] = [[1.2], [1.5]]
    xs, y = np.array([[x]]), np.array([0])
    for rule in (lambda: certify.interval_certified(net, xs, y, 0.1), lambda: certify.worst_margins(net, xs, y, 0.0),
                 lambda: certify.certified_accuracy(net, xs, y, [0.0, 0.1])):
        with pytest.raises(ValueError, match="bounds"):
            rule()


@pytest.mark.parametrize("label", [-1, 2])
@pytest.mark.parametrize("model", ["LinfDistNet", "LinfDistNetMLP"])
def test_every_rule_refuses_a_label_outside_the_classes(label, model):
    """NumPy reads a label -1 as the last class: a point of that class was certified under the label -1."""
    net = two_anchor_net() if model == "LinfDistNet" else sn.nn.LinfDistNetMLP(1, 1, 2, 2, hidden=2)
    xs, y = np.array([[0.9], [0.9]]), np.array([1, label])
    assert net.num_classes == 2
    rules = [lambda: certify.interval_certified(net, xs, y, 0.1), lambda: certify.worst_margins(net, xs, y, 0.1),
             lambda: certify.certified_accuracy(net, xs, y, 0.1)]
    if model == "LinfDistNet":
        rules += [lambda: certify.margin_certified(net, xs, y, 0.1),
                  lambda: certify.certified_accuracy(net, xs, y, 0.1, "margin"),
                  lambda: certify.margins(net(xs).data, y)]
    for rule in rules:
        with pytest.raises(ValueError, match=r"y must be in \[0, 2\)"):
            rule()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("eps", [0.0, 0.01, 0.1])
def test_float32_activations_of_every_point_of_the_box_lie_in_the_bounds_exactly(backend, eps):
    """The interval rule's box is normalized by the forward's own float32 operations, and rounding is monotone, so
    the float32 activations of the box's corners and of random float32 points lie in the bounds with no tolerance
    (a box normalized in float64 and then rounded missed corners by an ulp, at std 0.3)."""
    rng = np.random.default_rng(0)
    net = sn.nn.LinfDistNet(3, depth=3, width=6, num_classes=3, mean=0.45, std=0.3, seed=1).eval()
    for layer in net.layers:  # as after training: running means and biases that round
        if layer.mean_shift:
            layer.running_mean[:] = rng.normal(0, 0.5, layer.out_features)
        if layer.bias is not None:
            layer.bias.data[:] = rng.normal(0, 0.5, layer.out_features)
    x = rng.uniform(0, 1, (100, 3)).astype(np.float32)
    with use_backend(backend), sn.no_grad():
        bounds = certify.layer_bounds(net, *certify.input_box(net, x, eps))
        low, high = np.maximum(x - eps, 0), np.minimum(x + eps, 1)
        corners = [np.where((corner >> np.arange(3)) & 1, high, low) for corner in range(8)]
        inside = [(low + rng.random(x.shape, np.float32) * (high - low)).clip(low, high) for _ in range(3)]
        for point in corners + inside:
            for (lower, upper), a in zip(bounds, net.activations(point), strict=True):
                assert np.all(lower <= a.data) and np.all(a.data <= upper)


def test_a_layers_bounds_of_a_point_are_its_activation_bit_for_bit():
    """A zero-width box: the bounds subtract the running mean and add the bias in the forward's order (the sum of
    the two first, then added once, rounds differently)."""
    rng = np.random.default_rng(0)
    layer = sn.nn.LinfDist(4, 50, bias=True, rng=rng).eval()
    layer.running_mean[:] = rng.normal(0, 1, 50)
    layer.bias.data[:] = rng.normal(0, 1, 50)
    x = rng.normal(0, 1, (200, 4)).astype(np.float32)
    low, high = layer.bounds(x, x)
    with sn.no_grad():
        y = layer(x).data
    np.testing.assert_array_equal(low, y)
    np.testing.assert_array_equal(high, y)


def test_the_margin_rule_scales_eps_by_the_std():
    net = two_anchor_net(std=0.5)  # the same classifier, in normalized units x / 0.5
    xs, y = np.array([[0.1]]), np.array([0])
    assert certify.margin_certified(net, xs, y, 0.34)[0]
    assert not certify.margin_certified(net, xs, y, 0.36)[0]


def test_certified_accuracy_over_a_list_and_the_report():
    net = two_anchor_net()
    x = np.array([[0.05], [0.2], [0.5], [0.8], [0.95], [0.7]])
    y = np.array([0, 0, 0, 1, 1, 0])  # the last one is misclassified
    assert certify.certified_accuracy(net, x, y, [0.0, 0.1, 0.2, 0.5]) == pytest.approx([5 / 6, 5 / 6, 3 / 6, 1 / 6])
    report = certify.robustness_report(net, x, y, [0.1, 0.2], pgd_steps=10)
    assert report["clean"] == pytest.approx(5 / 6)
    assert report["certified"] == pytest.approx([5 / 6, 3 / 6])
    assert all(c <= p <= report["clean"] for c, p in zip(report["certified"], report["pgd"], strict=True))


def test_hybrid_certificates_are_computed_at_infinity_in_eval_mode():
    model = sn.nn.LinfDistNetMLP(3, 2, 4, 2, hidden=5, seed=0).to(np.float64)
    sn.nn.set_p(model, 8.0)
    x = np.random.default_rng(0).random((4, 3))
    y = np.zeros(4, dtype=np.int64)
    certify.certified_accuracy(model, x, y, 0.1)
    assert model.training and all(layer.p == 8.0 for layer in model.layers)
    m = certify.worst_margins(model, x, y, 0.0)
    with sn.nn.infinite_p(model), sn.nn.eval_mode(model):
        logits = model(x).data
    np.testing.assert_allclose(m, logits - logits[:, :1], atol=1e-9)  # eps = 0: the margins themselves


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("make", "error", "name"), [
    (lambda: sn.nn.LinfDist(0, 3), ValueError, "in_features"),
    (lambda: sn.nn.LinfDist(3, 3, p=0.5), ValueError, "p must be"),
    (lambda: sn.nn.LinfDist(3, 3, p="8"), TypeError, "p must be"),
    (lambda: sn.nn.LinfDist(3, 3, momentum=2), ValueError, "momentum"),
    (lambda: sn.nn.LinfDistNet(3, 0, 4, 2), ValueError, "depth"),
    (lambda: sn.nn.LinfDistNet(3, 3, (4,), 2), ValueError, "width"),
    (lambda: sn.nn.LinfDistNet(3, 2, 4, 2, std=0), ValueError, "std"),
    (lambda: sn.nn.LinfDistNet(3, 2, 4, 2, std=[0.2, 0.3]), ValueError, "std"),
    (lambda: sn.nn.LinfDistNet(3, 2, 4, 2, mean=[0.1, 0.2]), ValueError, "mean"),
    (lambda: sn.nn.LinfDistNet(3, 2, 4, 2)(np.zeros((2, 4), np.float32)), ValueError, "features"),
    (lambda: sn.nn.LinfDist(3, 2)(np.zeros((1, 3), np.float32)), ValueError, "batch of at least 2"),
    (lambda: sn.nn.LinfDist(3, 2).bounds(np.zeros((1, 3)), np.ones((1, 3))), ValueError, "eval mode"),
    (lambda: T.PSchedule(5, 2), ValueError, "start"),
    (lambda: T.PSchedule(0, 2, p_start=0.5), ValueError, "p_start"),
    (lambda: T.HingeLoss(-0.1), ValueError, "eps"),
    (lambda: T.HingeLoss(0.1, mix=1.5), ValueError, "mix"),
    (lambda: T.ClippedHingeCE(0.0), ValueError, "eps"),
    (lambda: T.IBPLoss(0.1, kappa=-1), ValueError, "kappa"),
    (lambda: T.IBPLoss(0.1)(sn.nn.LinfDistNet(2, 2, 3, 2), np.zeros((2, 2)), [0, 1], None), TypeError,
     "LinfDistNetMLP"),
    (lambda: T.LpWeightDecay(sn.optim.SGD(sn.nn.Linear(2, 2).parameters(), lr=0.1), sn.nn.Linear(2, 2)),
     ValueError, "LinfDist"),
    (lambda: T.DelayedCosine(0.1, 5, 5), ValueError, "start"),
    (lambda: certify.certified_accuracy(two_anchor_net(), np.zeros((1, 1)), np.zeros(1, int), -0.1), ValueError,
     "eps"),
    (lambda: certify.certified_accuracy(two_anchor_net(), np.zeros((1, 1)), np.zeros(1, int), 0.1, "box"),
     ValueError, "method"),
    (lambda: certify.certified_accuracy(two_anchor_net(), np.zeros((2, 1)), np.zeros(1, int), 0.1), ValueError,
     "y must be"),
    (lambda: certify.certified_accuracy(sn.nn.Linear(1, 2), np.zeros((1, 1)), np.zeros(1, int), 0.1), TypeError,
     "LinfDistNet"),
    (lambda: certify.margin_certified(sn.nn.LinfDistNetMLP(1, 1, 2, 2, hidden=2), np.zeros((1, 1)),
                                      np.zeros(1, int), 0.1), TypeError, "margin rule"),
])
def test_bad_input_names_the_argument(make, error, name):
    with pytest.raises(error, match=name):
        make()


# ------------------------------------------------------------------------------------------------ end to end


def test_a_few_epochs_of_hinge_training_give_non_trivial_certified_accuracy():
    """Two classes split by the first coordinate with a gap of 0.4: the ICML recipe (p schedule, hinge loss,
    lp-aware decay, cosine) trains a small net whose certificates at eps = 0.1 hold most test points, and that
    PGD never breaks."""
    rng = np.random.default_rng(0)

    def data(n):
        x = rng.random((n, 4))
        x[:, 0] = np.where(rng.random(n) < 0.5, rng.uniform(0, 0.3, n), rng.uniform(0.7, 1, n))
        return x.astype(np.float32), (x[:, 0] > 0.5).astype(np.int64)

    (x, y), (x_test, y_test) = data(256), data(256)
    model = sn.nn.LinfDistNet(4, 3, 16, 2, seed=0)
    optimizer = T.LpWeightDecay(sn.optim.Adam(model.parameters(), lr=0.02, betas=(0.9, 0.99), eps=1e-10), model)
    sn.training.fit(model, BatchLoader(ArrayDataset(x, y), 32), objective=T.HingeLoss(0.15, T.PSchedule(0, 4)),
                    optimizer=optimizer, schedule=T.DelayedCosine(0.02, 0, 8), epochs=8, progress=False)
    report = certify.robustness_report(model, x_test, y_test, [0.05, 0.1])
    assert report["clean"] >= 0.8
    assert report["certified"][1] >= 0.6
    assert all(c <= p for c, p in zip(report["certified"], report["pgd"], strict=True))
