"""The GPU-resident training of an l-inf-dist net (scratchnet/linf_dist_gpu.py) against the same steps in the
autograd on the CPU, and its element-wise kernels (scratchnet/kernels/cuda/elementwise.py) against NumPy.

CI runs these in Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), so the nets are tiny; on a GPU the same tests
run on it. Sums run in other orders on the two sides, so values agree to float32 rounding, not bit for bit.
"""

import math
import os

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet import linf_dist_training as T
from scratchnet.backend import cuda_problem
from scratchnet.weight_average import WeightAverage

pytestmark = pytest.mark.skipif(cuda_problem() is not None, reason=f"CUDA kernels cannot run: {cuda_problem()}")
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
FEW = settings(deadline=None, max_examples=4 if SIMULATED else 30)
THREADS = 32 if SIMULATED else 256  # threads per block of the one-dimensional kernels (kernels/cuda/launch.py)
CLOSE = {"rtol": 2e-4, "atol": 2e-5}


def _resident():
    from scratchnet import linf_dist_gpu

    return linf_dist_gpu


def _elementwise():
    from scratchnet.kernels.cuda import elementwise

    return elementwise


@FEW
@given(batch=st.integers(2, 5), p=st.sampled_from([8.0, 2.5, math.inf]), clipped=st.booleans(),
       seed=st.integers(0, 2**16))
def test_resident_steps_equal_the_autograd_steps(batch, p, clipped, seed):
    """Three steps of ResidentTrainer and of objective -> backward -> Adam.step on the host, from the same net: the
    same losses, weights, biases, running means and Adam moments."""
    rng = np.random.default_rng(seed)
    x = rng.random((3, batch, 6), dtype=np.float32)
    y = rng.integers(0, 3, (3, batch))

    def setup():
        # a first layer wider than a block of THREADS: its column sums and means, running mean and Adam
        model = sn.nn.LinfDistNet(6, 3, [THREADS + 3, 5], 3, p=p, mean=0.2, std=0.5, seed=seed)
        # eps 1e-2, not the recipe's 1e-10: Adam divides by sqrt(v), which turns a gradient that is zero up to
        # rounding (the identity-init weights have many) into a full step whose sign is the rounding noise's
        adam = sn.optim.Adam(model.parameters(), lr=0.05, betas=(0.9, 0.99), eps=1e-2)
        objective = T.ClippedHingeCE(0.1) if clipped else T.HingeLoss(0.1)
        return model, adam, objective

    host_model, host_adam, host_objective = setup()
    host_losses = []
    for i in range(3):
        loss, _ = host_objective(host_model, x[i], y[i], None)
        host_adam.zero_grad()
        loss.backward()
        host_adam.step()
        host_losses.append(loss.item())

    model, adam, objective = setup()
    trainer = _resident().ResidentTrainer(model, adam)
    losses = [trainer.step(x[i], y[i], objective)[0].item() for i in range(3)]
    trainer.to_host()

    np.testing.assert_allclose(losses, host_losses, **CLOSE)
    for got, want in zip(model.parameters(), host_model.parameters(), strict=True):
        np.testing.assert_allclose(got.data, want.data, **CLOSE)
    for got, want in zip(model.layers, host_model.layers, strict=True):
        if want.mean_shift:
            np.testing.assert_allclose(got.running_mean, want.running_mean, **CLOSE)
    for name in ("m", "v"):
        for got, want in zip(adam.state[name], host_adam.state[name], strict=True):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
    assert adam.steps == host_adam.steps == 3


@FEW
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 5)), seed=st.integers(0, 2**16))
@example(shape=(3, 2 * THREADS + 3), seed=0)  # columns past two blocks
def test_elementwise_kernels_match_numpy(shape, seed):
    from numba import cuda

    E = _elementwise()
    rng = np.random.default_rng(seed)
    y, v = rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape[1], dtype=np.float32)
    close = {"rtol": 1e-6, "atol": 1e-6}
    np.testing.assert_allclose(E.normalize(cuda.to_device(y), cuda.to_device(v), 2.0).copy_to_host(), (y - v) * 2,
                               **close)
    np.testing.assert_allclose(E.column_mean(cuda.to_device(y)).copy_to_host(), y.mean(axis=0), **close)
    np.testing.assert_allclose(E.column_sum(cuda.to_device(y)).copy_to_host(), y.sum(axis=0), **close)
    np.testing.assert_allclose(E.add_row(cuda.to_device(y), cuda.to_device(v), -1.0).copy_to_host(), y - v, **close)
    running = cuda.to_device(v)
    E.lerp(running, cuda.to_device(y[0]), 0.1)
    np.testing.assert_allclose(running.copy_to_host(), 0.9 * v + 0.1 * y[0], **close)

    w, g = rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)
    host = sn.nn.Parameter(w.copy())
    adam = sn.optim.Adam([host], lr=0.1, betas=(0.8, 0.9), eps=1e-8)
    wd, m, s = cuda.to_device(w), cuda.to_device(np.zeros_like(w)), cuda.to_device(np.zeros_like(w))
    for step in (1, 2):
        host.grad = g * step
        adam.step()
        E.adam(wd, cuda.to_device(g * step), m, s, 0.1, 0.8, 0.9, 1e-8, step)
    np.testing.assert_allclose(wd.copy_to_host(), host.data, **close)
    np.testing.assert_allclose(m.copy_to_host(), adam.state["m"][0], **close)
    np.testing.assert_allclose(s.copy_to_host(), adam.state["v"][0], **close)


def test_resident_trainer_refuses_what_it_cannot_train():
    model = sn.nn.LinfDistNet(4, 2, 5, 3, seed=0)
    trainer = _resident().ResidentTrainer
    with pytest.raises(TypeError, match="LinfDistNet"):
        trainer(sn.nn.models.mnist_cnn(seed=0), sn.optim.Adam(model.parameters()))
    with pytest.raises(ValueError, match="without weight decay"):
        trainer(model, sn.optim.AdamW(model.parameters()))
    with pytest.raises(ValueError, match="without weight decay"):
        trainer(model, sn.optim.Adam(model.parameters(), weight_decay=1e-4))
    with pytest.raises(ValueError, match="exactly model.parameters"):
        trainer(model, sn.optim.Adam(model.parameters()[:1]))


def test_fit_with_the_adapter_equals_fit_on_the_host_and_resumes(tmp_path):
    """Two epochs through `fit` (lr schedule, p schedule, evaluation, checkpoint): with FitAdapter as with the
    host autograd; and one epoch, a new trainer resumed from the checkpoint, then the second, as both at once."""
    rng = np.random.default_rng(0)
    data = sn.data.ArrayDataset(rng.random((12, 6), dtype=np.float32), rng.integers(0, 3, 12))

    def run(resident, epochs, checkpoint=None):
        model = sn.nn.LinfDistNet(6, 3, 7, 3, mean=0.2, std=0.5, seed=1)
        adam = sn.optim.Adam(model.parameters(), lr=0.05, betas=(0.9, 0.99), eps=1e-2)
        objective = T.HingeLoss(0.1, T.PSchedule(0.5, 1.5))
        loader = sn.data.BatchLoader(data, 4, shuffle=True, seed=0)
        optimizer = adam
        if resident:
            optimizer = _resident().FitAdapter(_resident().ResidentTrainer(model, adam), objective, len(loader))
            objective = optimizer.objective
        history = sn.training.fit(model, loader, data, objective, optimizer, sn.optim.Cosine(0.05, 2), epochs,
                                  checkpoint=checkpoint, resume=True, progress=False)
        return model, history

    host, host_history = run(False, 2)
    resident, history = run(True, 2)
    for key in ("train_loss", "test_loss", "lr"):
        np.testing.assert_allclose([r[key] for r in history], [r[key] for r in host_history], **CLOSE)
    for got, want in zip(resident.state_dict().values(), host.state_dict().values(), strict=True):
        np.testing.assert_allclose(got, want, **CLOSE)

    run(True, 1, tmp_path / "net.npz")
    resumed, resumed_history = run(True, 2, tmp_path / "net.npz")
    assert len(resumed_history) == 2
    for got, want in zip(resumed.state_dict().values(), resident.state_dict().values(), strict=True):
        np.testing.assert_allclose(got, want, **CLOSE)


class _StepHook(sn.training.Callback):
    def before_step(self, state) -> None:
        pass


def test_fit_with_the_adapter_refuses_per_step_callbacks_and_runs_end_of_epoch_ones():
    """The adapter's host weights move once an epoch: a weight average (on_step) averaged the weights of the last
    epoch's end, and a regularizer (before_step) found no gradient, both silently. An end-of-epoch callback sees
    the epoch's final weights."""
    rng = np.random.default_rng(0)
    data = sn.data.ArrayDataset(rng.random((8, 6), dtype=np.float32), rng.integers(0, 3, 8))
    model = sn.nn.LinfDistNet(6, 2, 5, 3, seed=1)
    adam = sn.optim.Adam(model.parameters(), lr=0.05)
    trainer = _resident().ResidentTrainer(model, adam)
    optimizer = _resident().FitAdapter(trainer, T.HingeLoss(0.1), 2)
    loader = sn.data.BatchLoader(data, 4, shuffle=True, seed=0)
    for callback, hooks in ((WeightAverage(model), "on_step"), (_StepHook(), "before_step")):
        with pytest.raises(ValueError, match=f"the {hooks} of {type(callback).__name__} would act on stale"):
            sn.training.fit(model, loader, None, optimizer.objective, optimizer, epochs=1, callbacks=[callback],
                            progress=False)
    seen = []

    class Snapshot(sn.training.Callback):
        def on_epoch_end(self, state) -> None:
            seen.append(state.model.layers[0].weight.data.copy())

    first = model.layers[0].weight.data.copy()
    sn.training.fit(model, loader, None, optimizer.objective, optimizer, epochs=1, callbacks=[Snapshot()],
                    progress=False)
    assert not np.array_equal(seen[0], first)
    np.testing.assert_array_equal(seen[0], trainer._device(model.layers[0].weight).copy_to_host())


def test_fit_with_the_adapter_lets_a_callback_that_is_not_a_callback_subclass_pass():
    """Such a callback must define every hook, so its do-nothing ones cannot be told from acting ones: not refused."""
    rng = np.random.default_rng(0)
    data = sn.data.ArrayDataset(rng.random((4, 6), dtype=np.float32), rng.integers(0, 3, 4))
    model = sn.nn.LinfDistNet(6, 2, 5, 3, seed=1)
    optimizer = _resident().FitAdapter(_resident().ResidentTrainer(model, sn.optim.Adam(model.parameters())),
                                       T.HingeLoss(0.1), 2)
    ends = []

    class EndOfEpoch:
        def before_step(self, state):
            pass

        def on_step(self, state):
            pass

        def on_epoch_end(self, state):
            ends.append(state.epoch)

    sn.training.fit(model, sn.data.BatchLoader(data, 2, seed=0), None, optimizer.objective, optimizer, epochs=1,
                    callbacks=[EndOfEpoch()], progress=False)
    assert ends == [1]
