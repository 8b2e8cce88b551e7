"""Entropy-SGD (Chaudhari et al. 2017, Algorithm 1): a hand-computed update on a quadratic, the scoping of gamma,
the thermal noise, determinism of adversarial training with `fit`, and bad hyperparameters."""

import numpy as np
import pytest

from scratchnet import nn, optim, streams
from scratchnet.data import ArrayDataset, BatchLoader
from scratchnet.objectives import PGDAT
from scratchnet.training import fit, standard

A = np.array([[2.0, 0.5], [0.5, 1.0]])  # f(theta) = theta^T A theta / 2, grad f = A theta


def quadratic_step(theta0, steps=1, **hyper):
    """Run EntropySGD on f from theta0 for `steps` outer steps; return the weights after each."""
    p = nn.Parameter(np.array(theta0, dtype=np.float64))
    opt = optim.EntropySGD([p], **hyper)

    def closure():
        p.grad = A @ p.data

    weights = []
    for _ in range(steps):
        closure()
        opt.step(closure)
        weights.append(p.data.copy())
    return weights


@pytest.mark.parametrize("wd", [0.0, 0.3])
def test_one_step_on_a_quadratic_equals_the_hand_computed_update(wd):
    theta = np.array([1.0, -2.0])
    lr, gamma, eta, alpha = 0.5, 0.1, 0.2, 0.25
    # L = 2 SGLD steps without noise, written out; weight decay adds wd * theta' to the inner gradient
    t1 = theta - eta * (A @ theta + wd * theta)  # theta' = theta at the first step: the coupling term is 0
    mu1 = (1 - alpha) * theta + alpha * t1
    t2 = t1 - eta * (A @ t1 + wd * t1 - gamma * (theta - t1))
    mu2 = (1 - alpha) * mu1 + alpha * t2
    expected = theta - lr * gamma * (theta - mu2)
    (got,) = quadratic_step(theta, lr=lr, L=2, gamma=gamma, scoping=0.0, inner_lr=eta, noise=0.0, alpha=alpha,
                            weight_decay=wd)
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert not np.allclose(got, theta)


def test_scoping_multiplies_gamma_by_one_plus_scoping_per_outer_step():
    """L = 1: mu = (1 - alpha) theta + alpha (theta - eta A theta), so theta moves by -lr gamma_t alpha eta A theta."""
    theta, lr, eta, alpha, gamma, scoping = np.array([1.0, 1.0]), 1.0, 0.1, 0.5, 0.2, 0.5
    w1, w2 = quadratic_step(theta, steps=2, lr=lr, L=1, gamma=gamma, scoping=scoping, inner_lr=eta, noise=0.0,
                            alpha=alpha)
    np.testing.assert_allclose(w1, theta - lr * gamma * alpha * eta * (A @ theta), rtol=1e-14)
    np.testing.assert_allclose(w2, w1 - lr * gamma * (1 + scoping) * alpha * eta * (A @ w1), rtol=1e-14)


def test_the_thermal_noise_is_sglds_with_the_documented_generator():
    theta, eta, alpha, gamma, noise, seed = np.array([0.5, 0.0]), 0.1, 1.0, 0.3, 0.01, 7
    (got,) = quadratic_step(theta, lr=1.0, L=1, gamma=gamma, scoping=0.0, inner_lr=eta, noise=noise, alpha=alpha,
                            seed=seed)
    xi = streams.generator(seed, "noise", 0).standard_normal(2)
    mu = theta - eta * (A @ theta) + noise * np.sqrt(2 * eta) * xi  # alpha = 1: mu is the last SGLD iterate
    np.testing.assert_allclose(got, theta - gamma * (theta - mu), rtol=1e-14)


def adversarial_run(seed):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 32)
    x = np.clip(0.5 + 0.2 * (2 * y[:, None] - 1) + 0.1 * rng.standard_normal((32, 4)), 0, 1)
    model = nn.models.mlp([4, 8, 2], seed=0)
    opt = optim.EntropySGD(model.parameters(), lr=1.0, L=3, gamma=0.5, inner_lr=0.1, noise=1e-3, seed=seed)
    history = fit(model, BatchLoader(ArrayDataset(x.astype(np.float32), y), 8, seed=0), objective=PGDAT(eps=0.1,
                  steps=3), optimizer=opt, epochs=1, seed=seed, progress=False)
    return model.state_dict(), history[0]["train_loss"]


def test_adversarial_training_with_fit_is_deterministic_for_a_fixed_seed():
    (a, loss_a), (b, loss_b), (c, _) = adversarial_run(0), adversarial_run(0), adversarial_run(1)
    assert loss_a == loss_b and np.isfinite(loss_a)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)  # the seed reaches the noise and the attacks


def test_fit_gives_the_optimizer_a_closure_that_computes_the_loss_on_a_new_minibatch_each_call():
    seen, calls = [], []  # the examples of every objective call; the losses the closure returns

    def objective(model, x, y, rng):
        seen.append(y.copy())
        return standard(model, x, y, rng)

    class Counting(optim.EntropySGD):
        def step(self, closure=None):
            super().step(lambda: calls.append(closure().item()))

    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.standard_normal((8, 3)).astype(np.float32), np.arange(8))  # labels name the examples
    model = nn.models.mlp([3, 8], seed=0)
    before = model.state_dict()
    fit(model, BatchLoader(data, 4), objective=objective,
        optimizer=Counting(model.parameters(), L=3, gamma=1.0, noise=0.0), epochs=1, progress=False)
    assert len(calls) == 2 * 2 and np.all(np.isfinite(calls))  # L - 1 calls per batch: the first gradient is fit's
    assert any(not np.array_equal(before[k], v) for k, v in model.state_dict().items())
    # each outer step's inner calls draw the next two batches of the stream: together one pass over all 8 examples
    outer, inner = [seen[0], seen[3]], [seen[1:3], seen[4:6]]
    assert sorted(np.concatenate(outer).tolist()) == list(range(8))
    for batches in inner:
        assert sorted(np.concatenate(batches).tolist()) == list(range(8))


@pytest.mark.parametrize("name, value", [
    ("L", 0), ("L", 2.5), ("gamma", 0.0), ("gamma", -1.0), ("scoping", -0.1), ("inner_lr", -1.0), ("noise", -1e-4),
    ("alpha", 0.0), ("alpha", 1.5), ("weight_decay", -1.0), ("lr", float("nan")),
])
def test_bad_hyperparameters_raise_a_value_error_naming_the_argument(name, value):
    with pytest.raises(ValueError, match=name):
        optim.EntropySGD([nn.Parameter(np.zeros(2))], **{name: value})


def test_a_step_with_several_inner_steps_and_no_closure_raises():
    p = nn.Parameter(np.zeros(2))
    p.grad = np.ones(2)
    with pytest.raises(ValueError, match="closure"):
        optim.EntropySGD([p], L=2).step()


def test_fit_refuses_a_loader_without_a_stream_for_the_inner_minibatches():
    class EpochsOnly:
        def __len__(self):
            return 1

        def epoch(self, e):
            return iter([(np.zeros((2, 3), np.float32), np.zeros(2, int))])

    model = nn.models.mlp([3, 2], seed=0)
    with pytest.raises(TypeError, match="stream"):
        fit(model, EpochsOnly(), optimizer=optim.EntropySGD(model.parameters(), L=2), progress=False)
