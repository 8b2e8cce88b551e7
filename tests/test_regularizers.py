"""scratchnet.regularizers: the norm subgradient against central differences, Algorithm 1's momentum, singular
value clipping (exact without a crop, closer with repeats), BatchNorm projection, and norm decay plugged into
`training.fit` between the backward pass and the optimizer step."""

import numpy as np
import pytest

from scratchnet import nn, norms, optim, regularizers
from scratchnet.data import ArrayDataset, BatchLoader
from scratchnet.training import Callback, fit

NORM = {("l1", 4): norms.conv_l1_norm, ("linf", 4): norms.conv_linf_norm,
        ("l1", 2): norms.linear_l1_norm, ("linf", 2): norms.linear_linf_norm}


@pytest.mark.parametrize("norm", ["l1", "linf"])
@pytest.mark.parametrize(("shape", "stride"), [((3, 2, 3, 3), 1), ((3, 2, 3, 3), 2), ((4, 5), 1)])
def test_subgradient_is_the_derivative_of_the_norm_where_the_maximum_is_unique(norm, shape, stride):
    w = np.random.default_rng(3).standard_normal(shape)
    value = (lambda v: NORM[norm, 4](v, stride, 1, 8).value) if len(shape) == 4 else (lambda v: NORM[norm, 2](v).value)
    numeric = np.zeros_like(w)
    for index in np.ndindex(w.shape):
        step = np.zeros_like(w)
        step[index] = 1e-6
        numeric[index] = (value(w + step) - value(w - step)) / 2e-6
    np.testing.assert_allclose(regularizers.norm_subgradient(w, norm, stride), numeric, atol=1e-8)


def test_norm_decay_follows_algorithm_1():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2)).to(np.float64)
    decay = regularizers.NormDecay(model, beta=0.3, norm="linf", momentum=0.5)
    p = [regularizers.norm_subgradient(m.weight.data, "linf") for m in (model[0], model[2])]
    decay.step()
    assert np.allclose(model[0].weight.grad, 0.3 / 2 * 0.5 * p[0])
    model[2].weight.grad = np.ones((2, 2))
    decay.step()  # h = 0.5 (0.5 p) + 0.5 p = 0.75 p, added to the loss gradient
    assert np.allclose(model[2].weight.grad, 1 + 0.3 / 2 * 0.75 * p[1])


def test_norm_decay_lowers_the_norm_under_sgd():
    model = nn.Sequential(nn.Linear(6, 4)).to(np.float64)
    before = norms.linear_l1_norm(model[0].weight.data).value
    decay = regularizers.NormDecay(model, beta=0.1, norm="l1")
    for _ in range(20):
        model.zero_grad()
        decay.step()
        model[0].weight.data -= model[0].weight.grad
    assert norms.linear_l1_norm(model[0].weight.data).value < before - 0.1


def test_clipping_is_exact_when_the_kernel_fills_the_input():
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3))
    clipped = regularizers.clip_singular_values(w, 3, 1.0)
    assert norms.circular_conv_singular_values(clipped, 3).max() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(regularizers.clip_singular_values(w, 3, 1e6), w, atol=1e-12)


def test_repeated_clipping_comes_closer_to_the_bound_than_one_clip():
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
    once = norms.circular_conv_singular_values(regularizers.clip_singular_values(w, 6, 1.0), 6).max()
    ten = norms.circular_conv_singular_values(regularizers.clip_singular_values(w, 6, 1.0, repeats=10), 6).max()
    assert once > 1.1 and 1.0 < ten < 1.05


def test_singular_value_clipping_runs_every_n_steps():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1)).to(np.float64)
    clipping = regularizers.SingularValueClipping(model, (2, 5, 5), clip=0.1, every=3)
    weights = []
    for _ in range(4):
        model[0].weight.data += 1.0
        clipping.step()
        weights.append(model[0].weight.data.copy())
    clipped = [norms.circular_conv_singular_values(w, 5).max() < 1.0 for w in weights]
    assert clipped == [True, False, False, True]


def test_batchnorm_projection_clips_only_the_channels_above_the_bound():
    model = nn.Sequential(nn.BatchNorm2d(3)).to(np.float64)
    model[0].weight.data[:] = [-8.0, 1.0, 3.0]
    model[0].running_var[:] = [1.0, 1.0, 0.25]
    regularizers.project_batchnorm(model, 2.0)
    sigma = np.sqrt(np.array([1.0, 1.0, 0.25]) + model[0].eps)
    np.testing.assert_allclose(model[0].weight.data, [-2.0 * sigma[0], 1.0, 2.0 * sigma[2]])


@pytest.mark.parametrize(("call", "name"), [
    (lambda: regularizers.norm_subgradient(np.ones((2, 2)), "l2"), "norm"),
    (lambda: regularizers.norm_subgradient(np.ones(3), "l1"), "weight"),
    (lambda: regularizers.NormDecay(nn.Linear(2, 2), beta=-1.0), "beta"),
    (lambda: regularizers.NormDecay(nn.Linear(2, 2), beta=1.0, momentum=1.0), "momentum"),
    (lambda: regularizers.clip_singular_values(np.ones((1, 1, 3, 3)), 2, 1.0), "size"),
    (lambda: regularizers.clip_singular_values(np.ones((1, 1, 3, 3)), 3, 0.0), "clip"),
    (lambda: regularizers.project_batchnorm(nn.BatchNorm1d(2), 0.0), "bound"),
    (lambda: regularizers.norm_subgradient(np.ones((1, 1, 3, 3)), "l1", stride=0), "stride"),
    (lambda: regularizers.NormDecay(nn.ReLU(), beta=1.0), "Conv2d or Linear"),
    (lambda: regularizers.clip_singular_values(np.ones((3, 3)), 3, 1.0), "weight"),
    (lambda: regularizers.clip_singular_values(np.ones((1, 1, 3, 3)), (8,) * 3, 1.0), "size must be"),
    (lambda: regularizers.clip_singular_values(np.ones((1, 1, 3, 3)), 8.5, 1.0), "size must be"),
    (lambda: regularizers.SingularValueClipping(nn.Conv2d(1, 1, 3), (1, 5, 5), 1.0, repeats=0), "repeats"),
])
def test_bad_arguments_raise_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


class DecayBeforeStep(Callback):
    """Norm decay as `fit` runs it: on the loss gradient, before the optimizer step."""

    def __init__(self, decay):
        self.decay, self.gradients_seen = decay, []

    def before_step(self, state):
        self.gradients_seen.append(all(m.weight.grad is not None for m in self.decay.layers))
        self.decay.step()


@pytest.mark.parametrize("norm", ["l1", "linf"])
def test_norm_decay_through_fit_lowers_every_layer_norm(norm):
    rng = np.random.default_rng(0)
    x = rng.random((96, 1, 6, 6)).astype(np.float32)
    data = ArrayDataset(x, (x[:, 0, :3].sum(axis=(1, 2)) > x[:, 0, 3:].sum(axis=(1, 2))).astype(np.int64))

    def layer_norms(beta):
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=np.random.default_rng(1)), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 6 * 6, 2, rng=np.random.default_rng(2)))
        callbacks = [DecayBeforeStep(regularizers.NormDecay(model, beta=beta, norm=norm))]
        fit(model, BatchLoader(data, 32, seed=0), optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
            epochs=3, callbacks=callbacks, progress=False)
        assert callbacks[0].gradients_seen == [True] * 9  # called once per step, after backward
        return np.array([getattr(row, norm) for row in norms.layer_norms(model, (1, 6, 6))])

    plain, decayed = layer_norms(0.0), layer_norms(0.1)  # (much larger beta makes the argmax oscillate)
    assert np.all(decayed < 0.8 * plain), (plain, decayed)


@pytest.mark.parametrize("kind", ["norm decay", "clipping"])
def test_a_resumed_run_with_a_regularizer_equals_an_uninterrupted_one(tmp_path, kind):
    """Norm decay's momentum buffers and the clipping's step count were not checkpointed: a resumed run restarted
    h at 0 and shifted the clipping schedule. Through the layer_norms demo's callback, which checkpoints them."""
    from demos.layer_norms import Regularize

    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 6, 6)).astype(np.float32)
    data = ArrayDataset(x, (x[:, 0, :3].sum(axis=(1, 2)) > x[:, 0, 3:].sum(axis=(1, 2))).astype(np.int64))

    def run(epochs, checkpoint):
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=np.random.default_rng(1)), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 6 * 6, 2, rng=np.random.default_rng(2)))
        regularizer = (regularizers.NormDecay(model, beta=0.1) if kind == "norm decay" else
                       regularizers.SingularValueClipping(model, (1, 6, 6), 0.5, every=3))
        fit(model, BatchLoader(data, 32, seed=0), optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
            epochs=epochs, callbacks=[Regularize(regularizer)], checkpoint=checkpoint, resume=True, progress=False)
        return model.state_dict()

    whole = run(3, None)
    run(1, tmp_path / "run.npz")
    resumed = run(3, tmp_path / "run.npz")
    for name, value in whole.items():
        np.testing.assert_array_equal(resumed[name], value)
