"""The adversarial-training objectives: each loss is its formula, eps = 0 reduces PGD-AT, TRADES and ALP to plain
training, the eps warm-up ramps, and the objectives plug into `fit`."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet import objectives
from scratchnet.data import ArrayDataset, BatchLoader

CLASSES = 4


def setting(seed):
    rng = np.random.default_rng(seed)
    model = sn.nn.models.mlp([6, 8, CLASSES], seed=seed).to(np.float64)
    x = rng.random((5, 6))
    return model, x, np.clip(x + rng.uniform(-0.1, 0.1, x.shape), 0, 1), rng.integers(0, CLASSES, 5)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ce(z, y):
    return -np.log(softmax(z)[np.arange(len(y)), y])


def kl(z, z_adv):
    p, q = softmax(z), softmax(z_adv)
    return np.sum(p * (np.log(p) - np.log(q)), axis=1)


def expected_loss(name, z, z_adv, y):
    """Each framework's loss written out in NumPy from shared/specs/attacks-and-training.md section 4."""
    if name == "PGDAT":
        return ce(z_adv, y).mean()
    if name == "TRADES":
        return ce(z, y).mean() + 6.0 * kl(z, z_adv).mean()
    if name == "ALP":
        return 0.5 * ce(z, y).mean() + 0.5 * ce(z_adv, y).mean() + np.mean((z - z_adv) ** 2)
    p_adv, rows = softmax(z_adv), np.arange(len(y))
    runner_up = np.where(np.arange(CLASSES) == y[:, None], -np.inf, p_adv).max(axis=1)
    boosted = ce(z_adv, y) - np.log(1.0001 - runner_up + 1e-12)
    return boosted.mean() + 6.0 * np.mean(kl(z, z_adv) * (1.0000001 - softmax(z)[rows, y]))


FRAMEWORKS = ["PGDAT", "TRADES", "ALP", "MART"]


@settings(deadline=None, max_examples=20)
@given(name=st.sampled_from(FRAMEWORKS), seed=st.integers(0, 1000))
def test_each_loss_is_its_formula(name, seed):
    model, x, x_adv, y = setting(seed)
    loss, _ = getattr(objectives, name)(eps=0.1).loss(model, x, x_adv, y)
    z, z_adv = model(x).data, model(x_adv).data
    np.testing.assert_allclose(loss.item(), expected_loss(name, z, z_adv, y), rtol=1e-10)


@pytest.mark.parametrize("name", ["PGDAT", "TRADES", "ALP"])
def test_at_eps_zero_the_objective_is_plain_cross_entropy(name):
    model, x, _, y = setting(0)
    loss, _ = getattr(objectives, name)(eps=0.0)(model, x, y, np.random.default_rng(0))
    plain, _ = sn.training.standard(model, x, y, None)
    np.testing.assert_allclose(loss.item(), plain.item(), rtol=1e-12)


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_the_adversarial_example_respects_the_current_eps(name):
    model, x, _, y = setting(1)
    objective = getattr(objectives, name)(eps=0.2, steps=3, warmup_epochs=2)
    objective.schedule(0.5)
    assert objective.current_eps == pytest.approx(0.05)
    x_adv = objective.adversarial_example(model, x, y, np.random.default_rng(0))
    assert np.abs(x_adv - x).max() <= 0.05 + 1e-12 and x_adv.min() >= 0 and x_adv.max() <= 1
    objective.schedule(3.0)
    assert objective.current_eps == 0.2


# Each framework's inner maximization (shared/specs/attacks-and-training.md): PGD-AT from a uniform start on the
# CE; TRADES from x + 0.001 N(0, I) on the KL from p(x); MART and ALP's CE-PGD from x + 0.001 N(0, I)
INNER_ATTACK = {"PGDAT": (True, "ce"), "TRADES": ("gaussian", "kl"), "ALP": ("gaussian", "ce"),
                "MART": ("gaussian", "ce")}


@pytest.mark.parametrize("name", FRAMEWORKS)
@pytest.mark.parametrize("norm", ["inf", "2"])
def test_the_inner_maximization_is_each_frameworks_pgd(name, norm):
    model, x, _, y = setting(3)
    objective = getattr(objectives, name)(eps=0.2, steps=4, step_size=0.07, norm=norm)
    x_adv = objective.adversarial_example(model, x, y, np.random.default_rng(5))
    start, loss = INNER_ATTACK[name]
    expected = sn.attacks.pgd(model, x, y, 0.2, steps=4, step_size=0.07, norm=norm, random_start=start, loss=loss,
                              rng=np.random.default_rng(5))
    np.testing.assert_array_equal(x_adv, expected)
    assert not np.array_equal(x_adv, x)
    default = getattr(objectives, name)(eps=0.2, steps=4).adversarial_example(model, x, y, np.random.default_rng(5))
    np.testing.assert_array_equal(default, sn.attacks.pgd(model, x, y, 0.2, steps=4, step_size=2.5 * 0.2 / 4,
                                                          random_start=start, loss=loss, rng=np.random.default_rng(5)))


@given(seed=st.integers(0, 2**16), eps=st.floats(0.0, 0.3))
@settings(max_examples=20, deadline=None)
def test_with_attack_apgd_the_inner_maximization_is_apgd_ce(seed, eps):
    model, x, _, y = setting(seed)
    objective = objectives.MART(eps=eps, steps=5, attack="apgd")
    x_adv = objective.adversarial_example(model, x, y, np.random.default_rng(seed))
    np.testing.assert_array_equal(x_adv, sn.attacks.apgd(model, x, y, eps, steps=5, loss="ce", rng=seed,
                                                         maximize_loss=True))
    assert np.abs(x_adv - x).max() <= eps + 1e-12 and x_adv.min() >= 0 and x_adv.max() <= 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="eps"):
        objectives.TRADES(eps=-0.1)
    with pytest.raises(ValueError, match="warmup_epochs"):
        objectives.PGDAT(eps=0.1, warmup_epochs=-1)
    with pytest.raises(ValueError, match="attack must be"):
        objectives.PGDAT(eps=0.1, attack="fgsm")
    with pytest.raises(ValueError, match="APGD does not"):
        objectives.TRADES(eps=0.1, attack="apgd")


@pytest.mark.parametrize("name, attack", [(name, "pgd") for name in FRAMEWORKS] + [("PGDAT", "apgd")])
def test_the_objectives_train_through_fit_and_reduce_the_loss(name, attack):
    rng = np.random.default_rng(0)
    centers = rng.random((CLASSES, 6))
    y = rng.integers(0, CLASSES, 256)
    x = np.clip(centers[y] + 0.05 * rng.standard_normal((256, 6)), 0, 1)
    model = sn.nn.models.mlp([6, 16, CLASSES], seed=0).to(np.float64)
    loader = BatchLoader(ArrayDataset(x, y), batch_size=32, shuffle=True, seed=0)
    objective = getattr(objectives, name)(eps=0.02, steps=3, warmup_epochs=1, attack=attack)
    history = sn.training.fit(model, loader, None, objective, sn.optim.Adam(model.parameters(), lr=0.05),
                              epochs=5, progress=False)
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert model.training and objective.current_eps == 0.02
