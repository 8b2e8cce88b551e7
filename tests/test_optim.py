"""Optimizers against their closed-form update sequences, and the learning-rate schedules."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import nn, optim


def run(optimizer_factory, grads, w0):
    """Apply the optimizer to one parameter with a given sequence of gradients; return the weights after each."""
    p = nn.Parameter(w0.copy())
    opt = optimizer_factory([p])
    weights = []
    for g in grads:
        p.grad = g
        opt.step()
        weights.append(p.data.copy())
    return weights


@settings(deadline=None, max_examples=30)
@given(momentum=st.floats(0.0, 0.95), lr=st.floats(1e-3, 1.0), nesterov=st.booleans(), seed=st.integers(0, 99))
def test_sgd_momentum_equals_its_closed_form(momentum, lr, nesterov, seed):
    """b_t = sum_{s<=t} m^(t-s) g_s; w_t = w_0 - lr sum_{s<=t} (g_s + m b_s if Nesterov else b_s)."""
    nesterov = nesterov and momentum > 0
    rng = np.random.default_rng(seed)
    grads, w0 = rng.standard_normal((6, 3)), rng.standard_normal(3)
    weights = run(lambda p: optim.SGD(p, lr, momentum=momentum, nesterov=nesterov), grads, w0)
    for t in range(1, len(grads) + 1):
        buffers = [sum(momentum ** (s - r) * grads[r - 1] for r in range(1, s + 1)) for s in range(1, t + 1)]
        steps = [grads[s - 1] + momentum * buffers[s - 1] if nesterov else buffers[s - 1] for s in range(1, t + 1)]
        np.testing.assert_allclose(weights[t - 1], w0 - lr * sum(steps), rtol=1e-10, atol=1e-12)


def test_sgd_weight_decay_shrinks_geometrically_without_gradient_signal():
    weights = run(lambda p: optim.SGD(p, lr=0.1, weight_decay=0.5), [np.zeros(2)] * 4, np.array([1.0, -2.0]))
    np.testing.assert_allclose(weights[-1], np.array([1.0, -2.0]) * 0.95**4)


def test_adam_first_step_moves_each_weight_by_lr_against_the_gradient_sign():
    g = np.array([3.0, -0.01, 1e3])
    (w,) = run(lambda p: optim.Adam(p, lr=0.01), [g], np.zeros(3))
    np.testing.assert_allclose(w, -0.01 * np.sign(g), rtol=1e-5)


def test_adam_equals_its_definition_over_several_steps():
    rng = np.random.default_rng(0)
    grads, w = rng.standard_normal((5, 4)), rng.standard_normal(4)
    weights = run(lambda p: optim.Adam(p, lr=0.05, betas=(0.8, 0.9), eps=1e-6), grads, w)
    m = v = 0
    for t, g in enumerate(grads, start=1):
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        w = w - 0.05 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.9**t)) + 1e-6)
        np.testing.assert_allclose(weights[t - 1], w, rtol=1e-12)


def test_adamw_decays_the_weights_directly_and_adam_through_the_gradient():
    w0 = np.array([2.0, -1.0])
    (decoupled,) = run(lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.5), [np.zeros(2)], w0)
    np.testing.assert_allclose(decoupled, w0 * (1 - 0.1 * 0.5))  # zero gradient: only the decay moves w
    (coupled,) = run(lambda p: optim.Adam(p, lr=0.1, weight_decay=0.5), [np.zeros(2)], w0)
    np.testing.assert_allclose(coupled, w0 - 0.1 * np.sign(w0), rtol=1e-6)  # the decay became a gradient


@pytest.mark.parametrize("factory", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: optim.Adam(p, lr=0.01),
])
def test_optimizer_state_round_trip_continues_identically(factory):
    rng = np.random.default_rng(1)
    grads = rng.standard_normal((6, 3))
    p = nn.Parameter(np.ones(3))
    opt = factory([p])
    for g in grads[:3]:
        p.grad = g
        opt.step()
    state, w = opt.state_dict(), p.data.copy()
    for g in grads[3:]:
        p.grad = g
        opt.step()
    q = nn.Parameter(w)
    resumed = factory([q])
    resumed.load_state_dict(state)
    for g in grads[3:]:
        q.grad = g
        resumed.step()
    np.testing.assert_array_equal(q.data, p.data)


@pytest.mark.parametrize("factory", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: optim.Adam(p, lr=0.01),
])
def test_a_model_cast_after_its_optimizer_was_made_updates_in_the_new_dtype(factory):
    """The state was allocated once, in the parameter's first dtype: after `Module.to(float64)` every update ran
    through float32 moments (weights 3e-8 off after 20 steps)."""
    rng = np.random.default_rng(2)
    grads = rng.standard_normal((20, 2, 3))
    before, after = nn.Linear(3, 2), nn.Linear(3, 2)
    after.load_state_dict(before.state_dict())
    opt_before = factory(before.to(np.float64).parameters())
    opt_after = factory(after.parameters())
    after.to(np.float64)
    for g in grads:
        for model, opt in ((before, opt_before), (after, opt_after)):
            model.weight.grad, model.bias.grad = g, g[:, 0]
            opt.step()
    np.testing.assert_array_equal(after.weight.data, before.weight.data)
    state = opt_after.state_dict()
    assert all(a.dtype == np.float64 for name, a in state.items() if "." in name)
    model = nn.Linear(3, 2)
    reloaded = factory(model.parameters())  # state made in float32, then the model cast, then a float64 state loaded
    model.to(np.float64)
    reloaded.load_state_dict(state)  # was cast into the float32 arrays
    for name, a in reloaded.state_dict().items():
        np.testing.assert_array_equal(a, state[name])
        assert a.dtype == state[name].dtype


def test_parameters_without_gradient_are_left_alone():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    a.grad = np.ones(2)
    optim.SGD([a, b], lr=0.5).step()
    np.testing.assert_array_equal(b.data, np.ones(2))
    np.testing.assert_array_equal(a.data, np.full(2, 0.5))


def test_adams_bias_correction_counts_each_parameters_own_updates():
    a, b = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(2))
    opt = optim.Adam([a, b], lr=0.1)
    for _ in range(4):  # b has no gradient yet: it is neither moved nor counted
        a.grad, b.grad = np.ones(2), None
        opt.step()
    a.grad, b.grad = np.ones(2), np.ones(2)
    opt.step()
    np.testing.assert_allclose(b.data, -0.1, rtol=1e-6)  # its first update, like a first step: lr against the sign
    np.testing.assert_allclose(a.data, -0.5, rtol=1e-6)
    assert opt.updates.tolist() == [5, 1]
    with pytest.raises(ValueError, match="updates"):
        optim.Adam([a], lr=0.1).load_state_dict({k: v for k, v in optim.Adam([a]).state_dict().items()
                                                 if k != "updates"})


@pytest.mark.parametrize("factory, name", [
    (lambda p: optim.SGD(p, lr=math.inf), "lr"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=math.inf), "weight_decay"),
    (lambda p: optim.Adam(p, eps=math.inf), "eps"),
    (lambda p: optim.Adam(p, lr=math.nan), "lr"),
])
def test_infinite_or_nan_hyperparameters_are_refused(factory, name):
    with pytest.raises(ValueError, match=name):
        factory([nn.Parameter(np.zeros(2))])


def test_schedules():
    step = optim.MultiStep(0.1, milestones=[2, 4], gamma=0.1)
    assert [step(t) for t in (0, 1.99, 2, 3.5, 4)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    cosine = optim.Cosine(1.0, total_epochs=10, min_lr=0.1)
    assert cosine(0) == pytest.approx(1.0) and cosine(10) == pytest.approx(0.1) and cosine(20) == pytest.approx(0.1)
    assert cosine(5) == pytest.approx(0.55)
    assert cosine(2.5) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)
    warm = optim.LinearWarmup(optim.Constant(0.2), warmup_epochs=2)
    assert [warm(t) for t in (0, 0.5, 1, 2, 7)] == pytest.approx([0, 0.05, 0.1, 0.2, 0.2])
    with pytest.raises(ValueError, match="total_epochs"):
        optim.Cosine(0.1, total_epochs=0)
