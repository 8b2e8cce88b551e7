"""Weight averaging: the running average against its closed form, `applied`, and bit-identical resume."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scratchnet import optim
from scratchnet.data import BatchLoader
from scratchnet.training import Callback, fit
from scratchnet.weight_average import WeightAverage
from tests.test_training import blobs, small_model


class Snapshots(Callback):
    """The model's state after every step, to recompute the average by hand."""

    def __init__(self, model):
        self.model, self.states = model, []

    def on_step(self, state):
        self.states.append(self.model.state_dict())


def train(epochs, decay=0.99, checkpoint=None, resume=False):
    model = small_model()
    average, snapshots = WeightAverage(model, decay), Snapshots(model)
    fit(model, BatchLoader(blobs(), 32, shuffle=True, seed=0), optimizer=optim.SGD(model.parameters(), lr=0.1,
        momentum=0.9), epochs=epochs, callbacks=[average, snapshots], checkpoint=checkpoint, resume=resume,
        progress=False)
    return model, average, snapshots


@settings(max_examples=10, deadline=None)
@given(decay=st.floats(0.0, 0.999))
@example(decay=0.3)  # below the warm-up's (1 + n) / (10 + n) from step 3 on: the decay itself is used
def test_the_average_is_the_exponential_moving_average_of_the_trajectory(decay):
    model, average, snapshots = train(1, decay)
    expected = small_model().state_dict()
    for n, state in enumerate(snapshots.states):
        d = min(decay, (1 + n) / (10 + n))
        expected = {k: d * expected[k] + (1 - d) * v if np.issubdtype(v.dtype, np.floating) else v
                    for k, v in state.items()}
    assert average.updates == len(snapshots.states) == 8
    for name, value in expected.items():
        np.testing.assert_allclose(average.average[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
        assert average.average[name].dtype == value.dtype


def test_decay_zero_keeps_the_last_weights_and_a_positive_decay_does_not():
    model, average, _ = train(1, decay=0.0)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(average.average[name], value, err_msg=name)
    model, average, _ = train(1, decay=0.9)
    assert not np.array_equal(average.average["0.weight"], model.state_dict()["0.weight"])


def test_applied_swaps_the_average_in_and_the_trained_weights_back_even_on_error():
    model, average, _ = train(1)
    trained = model.state_dict()
    with pytest.raises(RuntimeError):
        with average.applied() as averaged:
            assert averaged is model
            np.testing.assert_array_equal(model.state_dict()["0.weight"], average.average["0.weight"])
            raise RuntimeError
    for name, value in trained.items():
        np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)


def test_the_average_is_checkpointed_and_a_resumed_run_averages_bit_identically(tmp_path):
    _, straight, _ = train(3, checkpoint=tmp_path / "straight.npz")
    train(1, checkpoint=tmp_path / "interrupted.npz")
    _, resumed, _ = train(3, checkpoint=tmp_path / "interrupted.npz", resume=True)
    assert resumed.updates == straight.updates == 24
    for name, value in straight.average.items():
        np.testing.assert_array_equal(resumed.average[name], value, err_msg=name)


def test_a_checkpoint_without_an_average_is_refused_by_name(tmp_path):
    path = tmp_path / "plain.npz"
    model = small_model()
    fit(model, BatchLoader(blobs(), 32), optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=1, checkpoint=path,
        progress=False)
    with pytest.raises(ValueError, match="plain.npz was written by another model"):
        train(2, checkpoint=path, resume=True)


@pytest.mark.parametrize("decay", [-0.1, 1.0, float("nan")])
def test_a_decay_outside_zero_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay must be in"):
        WeightAverage(small_model(), decay)


def test_a_refused_average_leaves_the_model_as_it_was():
    """A saved average of the wrong shape was accepted; applying it then failed halfway, after copying the entries
    before the bad one into the model, and nothing restored them."""
    model = small_model()
    average = WeightAverage(model)
    trained = model.state_dict()
    bad = average.state_dict()
    name = next(iter(trained))
    bad[f"average/{name}"] = np.zeros((1,) + trained[name].shape, trained[name].dtype)
    with pytest.raises(ValueError, match=f"the saved average of '{name}' has shape"):
        average.load_state_dict(bad)
    last = list(trained)[-1]
    average.average[last] = np.zeros((2,) + trained[last].shape, trained[last].dtype)  # past the check
    with pytest.raises(ValueError, match="has shape"):
        with average.applied():
            pass
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, trained[key])


def test_the_average_follows_a_cast_of_the_model():
    """After Module.to(float64) the float64 weights were averaged into float32 arrays, and applied() then failed."""
    model = small_model()
    average = WeightAverage(model)
    model.to(np.float64)
    average.on_step(None)
    assert all(a.dtype == v.dtype for a, v in zip(average.average.values(), model.state_dict().values(),
                                                   strict=True))
    with average.applied():
        pass
