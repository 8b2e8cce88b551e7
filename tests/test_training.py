"""The training loop: learning, determinism, callbacks, checkpoints and bit-identical resume."""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn, optim
from scratchnet.data import ArrayDataset, BatchLoader
from scratchnet.training import Callback, evaluate, fit

TIMING = ("seconds", "images_per_second")


def blobs(n=256, seed=0):
    """Three Gaussian clusters in 5-D (fixed centres; `seed` draws the sample): a task learned in a few epochs."""
    centres = np.random.default_rng(42).standard_normal((3, 5)) * 3
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return ArrayDataset((centres[y] + rng.standard_normal((n, 5))).astype(np.float32), y)


def small_model(seed=0):
    """Has BatchNorm running statistics and Dropout masks: the state that resume must restore."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(5, 16, rng=rng), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2, seed=seed),
                         nn.Linear(16, 3, rng=rng))


def train(epochs, checkpoint=None, resume=False, seed=0, callbacks=()):
    model = small_model()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    loader = BatchLoader(blobs(), 32, shuffle=True, seed=seed)
    history = fit(model, loader, blobs(128, seed=1), optimizer=optimizer, schedule=optim.Cosine(0.1, 4),
                  epochs=epochs, checkpoint=checkpoint, resume=resume, seed=seed, progress=False,
                  callbacks=list(callbacks))
    return model, optimizer, history


def strip_timing(history):
    return [{k: v for k, v in record.items() if k not in TIMING} for record in history]


def test_fit_learns_and_reports_one_record_per_epoch():
    model, _, history = train(4)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_accuracy"] > 0.9
    assert evaluate(model, blobs(128, seed=1))["accuracy"] == history[-1]["test_accuracy"]


def test_the_schedule_sets_the_learning_rate_before_every_step():
    class RecordRates(Callback):
        rates = []

        def before_step(self, state):
            self.rates.append(state.optimizer.lr)

    _, optimizer, history = train(2, callbacks=[RecordRates()])
    batches = len(BatchLoader(blobs(), 32))  # 8 steps an epoch
    steps = [epoch + i / batches for epoch in range(2) for i in range(batches)]
    np.testing.assert_allclose(RecordRates.rates, [optim.Cosine(0.1, 4)(t) for t in steps], rtol=1e-15)
    assert [record["lr"] for record in history] == [RecordRates.rates[batches - 1], RecordRates.rates[-1]]
    assert optimizer.lr == RecordRates.rates[-1] < 0.1


def test_the_same_seed_gives_the_same_loss_curve_and_another_seed_does_not():
    assert strip_timing(train(2)[2]) == strip_timing(train(2)[2])
    assert strip_timing(train(2)[2]) != strip_timing(train(2, seed=1)[2])


def test_resume_from_a_checkpoint_continues_bit_identically(tmp_path):
    straight, straight_opt, straight_history = train(4, checkpoint=tmp_path / "straight.npz")
    train(2, checkpoint=tmp_path / "interrupted.npz")

    class CountSteps(Callback):
        steps = 0

        def on_step(self, state):
            self.steps += 1

    counter = CountSteps()
    resumed, resumed_opt, resumed_history = train(4, checkpoint=tmp_path / "interrupted.npz", resume=True,
                                                  callbacks=[counter])
    assert counter.steps == 2 * 256 // 32  # epochs 3 and 4 only: resumed, not retrained from the start
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for name, a in straight_opt.state_dict().items():
        np.testing.assert_array_equal(a, resumed_opt.state_dict()[name], err_msg=name)
    assert strip_timing(straight_history) == strip_timing(resumed_history)


def test_resuming_another_models_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "run.npz"
    train(1, checkpoint=path)
    other = nn.Sequential(nn.Linear(5, 3))
    loader = BatchLoader(blobs(), 32)
    with pytest.raises(ValueError, match="run.npz was written by another model"):
        fit(other, loader, optimizer=optim.SGD(other.parameters(), lr=0.1), epochs=2, checkpoint=path, resume=True,
            progress=False)


def test_callbacks_see_every_step_and_can_stop_training():
    class Recorder(Callback):
        def __init__(self):
            self.times, self.epochs = [], []

        def on_step(self, state):
            self.times.append(state.epoch_time)

        def on_epoch_end(self, state):
            self.epochs.append(state.epoch)
            state.stop = state.epoch == 2

    recorder = Recorder()
    model = small_model()
    history = fit(model, BatchLoader(blobs(), 64, seed=0), optimizer=optim.SGD(model.parameters(), lr=0.1),
                  epochs=5, callbacks=[recorder], progress=False)
    assert len(history) == 2 and recorder.epochs == [1, 2]
    assert recorder.times == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])


def test_a_run_a_callback_stopped_stays_stopped_when_resumed(tmp_path):
    class StopAfterOne(Callback):
        def on_epoch_end(self, state):
            state.stop = True

    model, path = small_model(), tmp_path / "run.npz"
    loader, optimizer = BatchLoader(blobs(), 64, seed=0), optim.SGD(model.parameters(), lr=0.1)
    fit(model, loader, optimizer=optimizer, epochs=4, callbacks=[StopAfterOne()], checkpoint=path, progress=False)
    history = fit(model, loader, optimizer=optimizer, epochs=4, checkpoint=path, resume=True, progress=False)
    assert len(history) == 1


def test_the_objective_is_pluggable_and_a_diverging_loss_stops_training():
    calls = []

    def objective(model, x, y, rng):
        calls.append(rng.integers(1 << 30))
        logits = model(x)
        return sn.functional.cross_entropy(logits, y) * 2.0, logits

    model = small_model()
    fit(model, BatchLoader(blobs(), 128, seed=0), objective=objective, optimizer=optim.SGD(model.parameters(), 0.1),
        epochs=1, progress=False)
    assert len(calls) == 2 and calls[0] != calls[1]  # each step gets its own generator

    def explode(model, x, y, rng):
        logits = model(x)
        return sn.functional.cross_entropy(logits, y) * np.inf, logits

    with pytest.raises(ValueError, match="the loss became inf"):
        fit(model, BatchLoader(blobs(), 128, seed=0), objective=explode,
            optimizer=optim.SGD(model.parameters(), 0.1), epochs=1, progress=False)


def test_fit_refuses_a_loader_with_no_batches():
    """40 examples in batches of 64 with drop_last: no step would run, and the history would record a loss of 0."""
    data = ArrayDataset(np.zeros((40, 3), np.float32), np.zeros(40, int))
    model = nn.models.mlp([3, 2], seed=0)
    with pytest.raises(ValueError, match="no batches"):
        fit(model, BatchLoader(data, 64, drop_last=True), optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=1,
            progress=False)

