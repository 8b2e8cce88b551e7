"""The attacks: the threat model is respected, the special cases are exact, APGD and restarts keep their
promises, and an attack leaves the model as it found it."""

from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet import attacks
from scratchnet import functional as F
from scratchnet.nn import BatchNorm1d, Dropout, Linear, ReLU, Sequential

CLASSES, FEATURES = 5, 12


def small_model(seed):
    return sn.nn.models.mlp([FEATURES, 16, CLASSES], seed=seed)


def batch(seed, n=8):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 3, 4), dtype=np.float32), rng.integers(0, CLASSES, n)


ATTACKS = {
    "fgsm": lambda m, x, y, eps, norm, rng: attacks.fgsm(m, x, y, eps) if norm == "inf" else attacks.fgm(m, x, y, eps),
    "pgd uniform": lambda m, x, y, eps, norm, rng: attacks.pgd(m, x, y, eps, steps=5, norm=norm, rng=rng),
    "pgd gaussian": lambda m, x, y, eps, norm, rng: attacks.pgd(m, x, y, eps, steps=5, norm=norm, rng=rng,
                                                                random_start="gaussian", loss="kl"),
    "pgd cw restarts": lambda m, x, y, eps, norm, rng: attacks.pgd(m, x, y, eps, steps=3, norm=norm, rng=rng,
                                                                   loss="cw", restarts=2),
    "apgd ce": lambda m, x, y, eps, norm, rng: attacks.apgd(m, x, y, eps, steps=10, norm=norm, rng=rng),
    "apgd-t dlr": lambda m, x, y, eps, norm, rng: attacks.apgd(m, x, y, eps, steps=5, norm=norm, rng=rng,
                                                               loss="dlr", targeted=True, n_targets=2),
}


def distance(a, b, norm):
    d = (a - b).reshape(len(a), -1).astype(np.float64)
    return np.abs(d).max(axis=1) if norm == "inf" else np.sqrt(np.sum(d ** 2, axis=1))


@settings(deadline=None, max_examples=30)
@given(name=st.sampled_from(sorted(ATTACKS)), norm=st.sampled_from(["inf", "2"]),
       eps=st.floats(0.0, 2.0), seed=st.integers(0, 100))
def test_every_attack_stays_in_the_eps_ball_and_the_bounds(name, norm, eps, seed):
    x, y = batch(seed)
    x_adv = ATTACKS[name](small_model(seed), x, y, eps, norm, seed)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert np.all(distance(x_adv, x, norm) <= eps * (1 + 1e-6) + 1e-7)
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("norm", ["inf", "2"])
def test_eps_zero_returns_x(name, norm):
    x, y = batch(1)
    np.testing.assert_array_equal(ATTACKS[name](small_model(1), x, y, 0.0, norm, 0), x)


def input_gradient_by_backward(model, x, y):
    """d sum CE / dx through Tensor.backward, independently of `scratchnet.grad` used by the attacks."""
    x_t = sn.Tensor(x, requires_grad=True)
    F.cross_entropy(model(x_t), y, reduction="sum").backward()
    return x_t.grad


@settings(deadline=None, max_examples=20)
@given(eps=st.floats(0.01, 0.5), seed=st.integers(0, 100))
def test_fgsm_is_one_signed_step_of_size_eps_and_equals_one_pgd_step(eps, seed):
    model, (x, y) = small_model(seed), batch(seed)
    g = input_gradient_by_backward(model, x, y)
    expected = np.clip(x + np.float32(eps) * np.sign(g), 0, 1)
    np.testing.assert_allclose(attacks.fgsm(model, x, y, eps), expected, atol=1e-6)
    one_step = attacks.pgd(model, x, y, eps, steps=1, step_size=eps, random_start=False)
    np.testing.assert_array_equal(one_step, attacks.fgsm(model, x, y, eps))
    g_norm = np.sqrt(np.sum(g.reshape(len(g), -1).astype(np.float64) ** 2, axis=1)).reshape(-1, 1, 1, 1)
    expected_l2 = np.clip(x + eps * g / (g_norm + 1e-12), 0, 1)
    np.testing.assert_allclose(attacks.fgm(model, x, y, eps), expected_l2, atol=1e-6)


def linear_binary_model(w):
    """Logits (0, w.x): label 1 means y = +1 in the usual +-1 notation, label 0 means y = -1."""
    model = Sequential(Linear(len(w), 2)).to(np.float64)
    model[0].weight.data[...] = np.stack([np.zeros_like(w), w])
    model[0].bias.data[...] = 0
    return model


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 1000), eps=st.floats(0.05, 1.0))
def test_on_a_linear_binary_model_the_attacks_reach_the_closed_form_optimum(seed, eps):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(6)
    w[np.abs(w) < 0.05] = 0.5  # sign(w) must be clear
    labels = rng.integers(0, 2, 10)
    sign = np.where(labels == 1, 1.0, -1.0)[:, None]
    # correctly classified with a margin no point of the ball can overcome, so that every attack, APGD too,
    # returns its point of highest loss
    x = rng.uniform(-1, 1, (10, 6))
    x += (sign * (eps * np.abs(w).sum() + 0.1) - x @ w[:, None]) * w / (w @ w)
    model, bounds = linear_binary_model(w), (-100.0, 100.0)
    linf = x - eps * sign * np.sign(w)
    l2 = x - eps * sign * w / np.linalg.norm(w)
    found = {
        "fgsm": (attacks.fgsm(model, x, labels, eps, bounds=bounds), linf),
        "pgd": (attacks.pgd(model, x, labels, eps, steps=20, step_size=eps / 5, rng=seed, bounds=bounds), linf),
        "apgd": (attacks.apgd(model, x, labels, eps, steps=20, rng=seed, bounds=bounds), linf),
        "fgm": (attacks.fgm(model, x, labels, eps, bounds=bounds), l2),
        "pgd l2": (attacks.pgd(model, x, labels, eps, steps=5, step_size=eps / 2, norm="2", random_start=False,
                               bounds=bounds), l2),
    }
    for name, (ours, optimum) in found.items():
        np.testing.assert_allclose(ours, optimum, atol=1e-6, err_msg=name)


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 1000), loss=st.sampled_from(["ce", "dlr"]), norm=st.sampled_from(["inf", "2"]))
def test_apgd_best_loss_never_decreases_and_is_the_loss_of_what_it_returns(seed, loss, norm):
    model, (x, y) = small_model(seed), batch(seed, n=16)
    y = sn.training.predict(model, x).argmax(axis=1)  # APGD attacks the correctly classified points
    trace = []
    x_adv = attacks.apgd(model, x, y, 0.1, steps=25, norm=norm, loss=loss, rng=seed, trace=trace)
    best = np.array([b for b, _ in trace])
    assert best.shape == (25, len(x)) and np.all(np.diff(best, axis=0) >= 0)
    steps = np.array([s for _, s in trace])
    assert np.all(np.diff(steps, axis=0) <= 0) and np.all(steps[0] == 0.2)
    logits = model(x_adv).data
    robust = logits.argmax(axis=1) == y
    objective = attacks.attack_loss(loss, y)
    np.testing.assert_allclose(objective(sn.Tensor(logits)).data[robust], best[-1][robust], rtol=1e-5, atol=1e-6)


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 1000), norm=st.sampled_from(["inf", "2"]), restarts=st.integers(1, 2))
def test_apgd_for_training_returns_every_examples_highest_loss_iterate(seed, norm, restarts):
    """With maximize_loss every example is attacked, misclassified ones too, and ends at the best loss of its
    runs. With every example classified correctly, the evaluation's first run is the same run (same start), and
    the evaluation's output (the first fooling point) never has the higher loss."""
    model, (x, labels) = small_model(seed), batch(seed, n=16)
    predicted = sn.training.predict(model, x).argmax(axis=1)
    for y in (labels, predicted):  # random labels: some examples misclassified before the attack
        trace = []
        x_train = attacks.apgd(model, x, y, 0.1, steps=25, norm=norm, rng=seed, trace=trace, restarts=restarts,
                               maximize_loss=True)
        loss_train = attacks.attack_loss("ce", y)(model(x_train)).data
        assert len(trace) == 25 * restarts and np.all(distance(x_train, x, norm) > 0)
        np.testing.assert_allclose(loss_train, np.max([b for b, _ in trace], axis=0), rtol=1e-5, atol=1e-6)
    x_eval = attacks.apgd(model, x, predicted, 0.1, steps=25, norm=norm, rng=seed)
    assert np.all(loss_train >= attacks.attack_loss("ce", predicted)(model(x_eval)).data - 1e-6)
    with pytest.raises(ValueError, match="maximize_loss"):
        attacks.apgd(model, x, y, 0.1, loss="dlr", targeted=True, maximize_loss=True)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_apgd_starts_on_the_sphere_as_croce_and_heins_code(norm):
    """x + eps t / ||t|| with t uniform in [-1, 1]^d (l-inf) or Gaussian (l2): for l-inf only the largest
    coordinate reaches eps, the start is not a corner of the cube. A model with zero weights has zero gradients,
    so APGD returns its start for the points it attacks (those classified correctly)."""
    model = Sequential(sn.nn.Flatten(), Linear(FEATURES, CLASSES))
    for p in model.parameters():
        p.data[...] = 0
    x, y = np.full((8, 1, 3, 4), 0.5, np.float32), np.zeros(8, int)  # class 0: the argmax of equal logits
    start = attacks.apgd(model, x, y, 0.1, steps=3, norm=norm, rng=0)
    np.testing.assert_allclose(distance(start, x, norm), 0.1, rtol=1e-5)
    at_eps = np.abs(start - x).reshape(8, -1) >= 0.1 * (1 - 1e-5)
    assert norm == "2" or np.all(at_eps.sum(axis=1) == 1)


def test_the_gaussian_start_of_trades_is_not_clipped_before_the_first_step():
    x = np.zeros((64, 12), np.float32)
    start = attacks.initial_point(x, 0.3, "inf", "gaussian", 0.0, 1.0, np.random.default_rng(0))
    assert start.dtype == x.dtype and start.min() < 0
    np.testing.assert_allclose(start.std(), attacks.TRADES_START_STD, rtol=0.1)


def test_apgd_checkpoints_are_those_of_the_paper():
    assert attacks.apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 1000), attack=st.sampled_from(["pgd", "apgd"]))
def test_restarts_never_make_the_worst_case_better_for_the_model(seed, attack):
    model, (x, y) = small_model(seed), batch(seed, n=32)
    run = partial(attacks.pgd, steps=3, step_size=0.02) if attack == "pgd" else partial(attacks.apgd, steps=5)
    once, thrice = (run(model, x, y, 0.05, rng=seed, restarts=r) for r in (1, 3))
    fooled_once, fooled_thrice = (sn.training.predict(model, a).argmax(axis=1) != y for a in (once, thrice))
    assert np.all(fooled_thrice >= fooled_once)
    if attack == "pgd":  # PGD also keeps the restart of highest loss on the points nothing fooled
        loss = attacks.attack_loss("ce", y)
        still = ~fooled_thrice
        assert np.all(loss(model(thrice)).data[still] >= loss(model(once)).data[still] - 1e-6)


def test_an_attack_leaves_parameters_gradients_running_statistics_and_modes_untouched():
    norm = BatchNorm1d(16)
    model = Sequential(sn.nn.Flatten(), Linear(FEATURES, 16), norm, ReLU(), Dropout(0.5), Linear(16, CLASSES))
    x, y = batch(3, n=16)
    model(x)  # gives the BatchNorm running statistics non-trivial values
    norm.eval()  # a frozen BatchNorm inside a training model must stay frozen
    for p in model.parameters():
        p.grad = np.full_like(p.data, 0.5)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    for name in ATTACKS:
        ATTACKS[name](model, x, y, 0.1, "inf", 0)
        assert [m.training for m in model.modules()] == [m is not norm for m in model.modules()], name
        after = model.state_dict()
        assert all(np.array_equal(before[k], after[k]) for k in before), name
        assert all(np.all(p.grad == 0.5) for p in model.parameters()), name


def test_margin_excludes_the_true_class_even_when_every_other_logit_is_negative():
    logits = sn.Tensor(np.array([[5.0, -1.0, -2.0]]))
    assert F.losses.margin(logits, [0], reduction="none").data[0] == -6.0


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 1000), shift=st.floats(-50, 50), scale=st.floats(0.1, 10), targeted=st.booleans())
def test_dlr_is_invariant_to_shifting_and_scaling_the_logits(seed, shift, scale, targeted):
    rng = np.random.default_rng(seed)
    z, y = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    target = (y + 1 + rng.integers(0, 4, 6)) % 5 if targeted else None
    plain = F.losses.dlr(sn.Tensor(z), y, target=target, reduction="none").data
    moved = F.losses.dlr(sn.Tensor(scale * z + shift), y, target=target, reduction="none").data
    np.testing.assert_allclose(moved, plain, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("bad, message", [
    (dict(eps=-0.1), "eps"), (dict(eps=float("nan")), "eps"), (dict(norm="1"), "norm"), (dict(steps=0), "steps"),
    (dict(restarts=0), "restarts"), (dict(loss="mse"), "loss"), (dict(bounds=(1, 0)), "bounds"),
    (dict(random_start="normal"), "random_start"), (dict(step_size=-1.0), "step_size"), (dict(eps=True), "eps"),
])
def test_bad_attack_arguments_name_the_argument(bad, message):
    x, y = batch(0)
    arguments = dict(eps=0.1) | bad
    with pytest.raises(ValueError, match=message):
        attacks.pgd(small_model(0), x, y, **arguments)


def test_bad_data_is_refused():
    x, y = batch(0)
    with pytest.raises(ValueError, match="bounds"):
        attacks.fgsm(small_model(0), x + 2, y, 0.1)
    with_nan = x.copy()
    with_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="bounds"):  # refused up front, not by the loss it would poison
        attacks.pgd(small_model(0), with_nan, y, 0.1)
    with pytest.raises(ValueError, match="y must"):
        attacks.fgsm(small_model(0), x, y[:-1], 0.1)
    with pytest.raises(TypeError, match="x must"):
        attacks.fgsm(small_model(0), x.astype(np.int64), y, 0.1)
    three_classes = sn.nn.models.mlp([FEATURES, 3], seed=0)
    with pytest.raises(ValueError, match="classes"):
        attacks.apgd(three_classes, x, y % 3, 0.1, loss="dlr", targeted=True)


@pytest.mark.parametrize("bad, message", [
    (dict(targeted=True, n_targets=0), "n_targets"), (dict(targeted=True, n_targets=-3), "n_targets"),
    (dict(rho=float("nan")), "rho"), (dict(rho=5.0), "rho"), (dict(rho=-1.0), "rho"),
])
def test_bad_apgd_arguments_name_the_argument(bad, message):
    """APGD-T with no target ran no attack at all and returned the clean input: robust accuracy = clean."""
    x, y = batch(0)
    with pytest.raises(ValueError, match=message):
        attacks.apgd(small_model(0), x, y, 0.1, steps=2, **bad)


def threshold_model():
    """Class 0 where x[0] > 0.5, class 1 below: the margin of a point is |x[0] - 0.5|."""
    model = Linear(2, 2).to(np.float64)
    model.weight.data[...] = [[1.0, 0.0], [-1.0, 0.0]]
    model.bias.data[...] = [-0.5, 0.5]
    return model


def shift(direction, calls):
    """An attack moving x[0] by direction * eps (within the bounds), recording the batch sizes it is given."""
    def attack(model, x, y, eps):
        calls.append(len(x))
        return np.clip(x + direction * eps * np.array([1.0, 0.0]), 0.0, 1.0)
    return attack


@pytest.mark.parametrize("cascade", [True, False])
def test_robust_accuracy_counts_each_attack_and_the_worst_case_by_hand(cascade):
    x0 = np.array([0.9, 0.6, 0.65, 0.45, 0.1, 0.35, 0.55, 0.2, 0.8, 0.4])
    x = np.stack([x0, np.zeros(10)], axis=1)
    y = np.where(x0 > 0.5, 0, 1)
    y[9] = 0  # misclassified before any attack
    up, down = [], []
    result = attacks.robust_accuracy(threshold_model(), x, y, {"up": shift(1, up), "down": shift(-1, down)},
                                     eps=[0.0, 0.2], batch_size=3, cascade=cascade, progress=False)
    assert result["clean"] == 0.9
    # eps 0.2: up fools class-1 points 3 and 5; down fools class-0 points 1, 2 and 6; 0, 4, 7, 8 survive both
    assert result["attacks"]["up"] == [0.9, 0.7]
    assert result["attacks"]["down"] == [0.9, 0.4 if cascade else 0.6]
    assert result["worst_case"] == [0.9, 0.4]
    # batches of 3 indices; with the cascade, down sees only up's survivors: {0, 1, 2}, {4}, {6, 7, 8}
    assert up == [3, 3, 3] * 2
    assert down == [3, 3, 3] + ([3, 1, 3] if cascade else [3, 3, 3])


def test_robust_accuracy_refuses_an_attack_that_leaves_the_threat_model():
    x, y = np.full((4, 2), 0.5), np.zeros(4, dtype=int)
    too_far = {"too far": lambda model, x, y, eps: x + np.array([2 * eps, 0.0])}
    with pytest.raises(RuntimeError, match="'too far' returned points outside the eps = 0.1 inf-ball"):
        attacks.robust_accuracy(threshold_model(), x, y, too_far, eps=0.1, progress=False)
    out_of_bounds = {"out of bounds": lambda model, x, y, eps: x * 0 - eps / 2}
    with pytest.raises(RuntimeError, match="'out of bounds' returned points outside"):
        attacks.robust_accuracy(threshold_model(), np.zeros((4, 2)), 1 - y, out_of_bounds, eps=0.1, progress=False)
    with pytest.raises(ValueError, match="at least one attack"):
        attacks.robust_accuracy(threshold_model(), x, y, {}, eps=0.1, progress=False)


@pytest.mark.parametrize("where", ["everywhere", "one coordinate"])
def test_robust_accuracy_refuses_an_attack_that_returns_nan(where):
    """NaN passed every comparison of the check; the argmax of NaN logits is class 0, so class-0 points counted
    as robust and every other point as fooled."""
    def nan_attack(model, x, y, eps):
        out = x.copy()
        out[(slice(None) if where == "everywhere" else 0), 0] = np.nan
        return out

    x, y = np.full((4, 2), 0.9), np.zeros(4, dtype=int)
    with pytest.raises(RuntimeError, match="1 NaN value|4 NaN value"):
        attacks.robust_accuracy(threshold_model(), x, y, {"nan": nan_attack}, eps=0.1, progress=False)


@pytest.mark.parametrize("eps", [float("nan"), -0.1, [0.1, float("inf")], [], True])
def test_robust_accuracy_refuses_a_bad_eps(eps):
    """A NaN eps let any custom attack's output through the eps-ball check."""
    x, y = np.full((4, 2), 0.9), np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="eps must be"):
        attacks.robust_accuracy(threshold_model(), x, y, {"up": shift(1, [])}, eps=eps, progress=False)


@pytest.mark.parametrize("label", [-1, 2])
def test_robust_accuracy_refuses_a_label_outside_the_classes(label):
    x, y = np.full((4, 2), 0.9), np.array([0, 0, 0, label])
    with pytest.raises(ValueError, match=r"y must be in \[0, 2\)"):
        attacks.robust_accuracy(threshold_model(), x, y, {"up": shift(1, [])}, eps=0.1, progress=False)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_the_kl_attack_raises_the_kl_from_the_clean_prediction(norm):
    """TRADES's inner maximization: from x + 0.001 N(0, I), every example's KL(p(x) || p(x')) ends far above its
    start and above a random point of the ball; the labels play no part."""
    model = small_model(3)
    x, y = batch(3, n=16)
    x_adv = attacks.pgd(model, x, y, 0.2, steps=10, norm=norm, random_start="gaussian", loss="kl", rng=0)
    np.testing.assert_array_equal(x_adv, attacks.pgd(model, x, (y + 1) % CLASSES, 0.2, steps=10, norm=norm,
                                                     random_start="gaussian", loss="kl", rng=0))

    def kl(points):
        with sn.no_grad():
            return F.kl_div(model(x), model(points), reduction="none").data

    start = attacks.initial_point(x, 0.2, norm, "gaussian", 0.0, 1.0, np.random.default_rng(0))
    random = attacks.initial_point(x, 0.2, norm, "uniform", 0.0, 1.0, np.random.default_rng(1))
    assert np.all(kl(x_adv) > 10 * kl(start)) and np.all(kl(x_adv) > kl(random))
