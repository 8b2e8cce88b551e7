"""The training loop: `fit` runs epochs of minibatch steps with a pluggable objective, evaluates after each epoch,
and can checkpoint and resume.

An objective is a function `objective(model, x, y, rng) -> (loss, logits)`: the loss to minimize on the batch and
the logits whose accuracy the progress bar reports. The standard objective is cross-entropy; adversarial
training plugs in an objective that first attacks the batch (`scratchnet.objectives`), without touching the loop.
An objective with a `schedule(t)` method is told the fractional epoch t before every step, as the learning rate.

Randomness inside a step comes from `streams.generator(seed, "step", epoch, step)` and the batches from the
loader's own per-epoch generator, so a run resumed from a checkpoint repeats exactly what an uninterrupted run would do.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import scratchnet.functional as F
from scratchnet import streams
from scratchnet.checkpoint import load_arrays, save_arrays
from scratchnet.nn.module import eval_mode
from scratchnet.tensor import Tensor, no_grad


def standard(model, x, y, rng) -> tuple[Tensor, Tensor]:
    """Plain training: cross-entropy of the model's logits on the clean batch."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


def predict(model, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """The model's logits on `x` in eval mode, batch by batch, without a graph. Each module's mode is restored."""
    with eval_mode(model), no_grad():
        return np.concatenate([model(x[i:i + batch_size]).data for i in range(0, len(x), batch_size)])


def evaluate(model, dataset, batch_size: int = 500) -> dict[str, float]:
    """Mean cross-entropy and accuracy of `model` (in eval mode) on a dataset with `.x` and `.y`."""
    logits = predict(model, dataset.x, batch_size)
    loss = F.cross_entropy(Tensor(logits), dataset.y).item()
    return {"loss": loss, "accuracy": float(np.mean(logits.argmax(axis=1) == dataset.y))}


@dataclass
class FitState:
    """What a callback sees: the objects being trained and where training is. Set `stop = True` to end training
    after the current epoch."""

    model: object
    optimizer: object
    epoch: int = 0
    step: int = 0
    epoch_time: float = 0.0
    history: list = field(default_factory=list)
    stop: bool = False


class Callback:
    """Hooks called by `fit`; override the ones you need."""

    def before_step(self, state: FitState) -> None:
        """After the backward pass and before the optimizer step: the gradients are there to change (e.g. norm
        decay, `scratchnet.regularizers`). Called after every gradient the optimizer uses, so with Entropy-SGD also
        after each later inner step's, at its inner weights: a regularizer's state (a momentum, a count) then moves
        L times per outer step."""

    def on_step(self, state: FitState) -> None:
        """After each optimizer step (`state.epoch_time` is the fractional epoch just reached)."""

    def on_epoch_end(self, state: FitState) -> None:
        """After each epoch's evaluation; `state.history[-1]` is that epoch's record."""


def _stateful(callbacks) -> dict:
    """The callbacks that carry state of their own (e.g. a weight average), by their place in the list."""
    return {f"callback{i}/": c for i, c in enumerate(callbacks) if callable(getattr(c, "state_dict", None))}


def _save_checkpoint(path: Path, state: FitState, callbacks) -> None:
    arrays = {f"model/{k}": v for k, v in state.model.state_dict().items()}
    arrays.update({f"optimizer/{k}": v for k, v in state.optimizer.state_dict().items()})
    for prefix, callback in _stateful(callbacks).items():
        arrays.update({prefix + k: v for k, v in callback.state_dict().items()})
    arrays["fit/epoch"], arrays["fit/step"] = np.array(state.epoch), np.array(state.step)
    arrays["fit/stop"] = np.array(state.stop)  # a run a callback ended stays ended when resumed
    arrays["fit/history"] = np.array(json.dumps(state.history))
    save_arrays(arrays, path)


def _load_checkpoint(path: Path, state: FitState, callbacks) -> None:
    arrays = load_arrays(path)

    def part(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    state.model.load_state_dict(part("model/"))
    state.optimizer.load_state_dict(part("optimizer/"))
    for prefix, callback in _stateful(callbacks).items():
        callback.load_state_dict(part(prefix))
    state.epoch, state.step = int(arrays["fit/epoch"]), int(arrays["fit/step"])
    state.stop = bool(arrays["fit/stop"]) if "fit/stop" in arrays else False  # not in older checkpoints
    state.history = json.loads(str(arrays["fit/history"]))


def _check_per_step_callbacks(optimizer, callbacks) -> None:
    """Refuse per-step callbacks where the model's host weights move only once an epoch (an optimizer with
    `host_weights_per_step = False`, such as `linf_dist_gpu.FitAdapter`): there before_step would find no gradient
    to change (the step has happened on the GPU) and on_step would read the weights of the last epoch's end."""
    if getattr(optimizer, "host_weights_per_step", True):
        return
    for callback in callbacks:
        if not isinstance(callback, Callback):  # it must define every hook: the ones that act cannot be told apart
            continue
        hooks = [name for name in ("before_step", "on_step")
                 if getattr(type(callback), name, None) is not getattr(Callback, name)]
        if hooks:
            raise ValueError(f"{type(optimizer).__name__} updates the model's host weights only at the end of an "
                             f"epoch, so the {' and '.join(hooks)} of {type(callback).__name__} would act on stale "
                             f"weights (or find no gradient): use on_epoch_end, or train on the host")


def fit(model, train, test=None, objective=standard, optimizer=None, schedule=None, epochs: int = 1,
        callbacks=(), checkpoint=None, resume: bool = False, seed: int = 0, progress: bool = True) -> list[dict]:
    """Train `model` for `epochs` epochs and return the history: one record (a dict of numbers) per epoch.

    train: a `BatchLoader` (anything with `epoch(e)` yielding (x, y) batches and `len`, and, for an optimizer that
    takes a closure, `stream(e)`: endless batches for its inner steps); test: a dataset with
    `.x` and `.y`, evaluated after every epoch, or None. `schedule(t)` sets the learning rate at fractional
    epoch t before every step. With `checkpoint`, the model, optimizer and history are saved atomically after
    every epoch (and so is the state of every callback with a `state_dict` method); with `resume=True` as well,
    training continues from that file when it exists.
    """
    if optimizer is None:
        raise ValueError("fit needs an optimizer, e.g. scratchnet.optim.SGD(model.parameters(), lr=0.1)")
    if not callable(getattr(train, "epoch", None)):
        raise TypeError(f"train must be a BatchLoader (with an epoch(e) method), got {type(train).__name__}")
    if getattr(optimizer, "takes_closure", False) and not callable(getattr(train, "stream", None)):
        raise TypeError(f"{type(optimizer).__name__} draws a new minibatch for each inner step: train must be a "
                        f"BatchLoader (with a stream(e) method), got {type(train).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    _check_per_step_callbacks(optimizer, callbacks)
    state = FitState(model, optimizer)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if resume and checkpoint is not None and checkpoint.exists():
        try:
            _load_checkpoint(checkpoint, state, callbacks)
        except ValueError as error:
            raise ValueError(f"the checkpoint {checkpoint} was written by another model or optimizer: resume with "
                             f"the settings that wrote it, or move it away ({error})") from error

    batches = len(train)
    if batches == 0:  # every epoch would be empty, and its record a loss of 0 from no step at all
        raise ValueError("fit: the loader has no batches (fewer examples than batch_size with drop_last?)")
    while state.epoch < epochs and not state.stop:
        record = _train_epoch(model, train, objective, optimizer, schedule, callbacks, state, batches, seed,
                              progress, epochs)
        if test is not None:
            record.update({f"test_{k}": v for k, v in evaluate(model, test).items()})
        state.history.append(record)
        state.epoch += 1
        for callback in callbacks:
            callback.on_epoch_end(state)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, state, callbacks)
    return state.history


def _closure(model, objective, batches, rng, callbacks, state):
    """What a step does before the optimizer, as a function: run the objective at the current weights on the next
    batch of `batches` (with the step's rng, so an attack starts afresh) and backpropagate; for optimizers with
    `takes_closure`. Entropy-SGD's inner steps each draw a new minibatch (Chaudhari et al. 2017, Algorithm 1)."""

    def closure():
        model.train()
        x, y = next(batches)
        loss, _ = objective(model, x, y, rng)
        loss.backward()
        for callback in callbacks:
            callback.before_step(state)
        return loss

    return closure


def _train_epoch(model, train, objective, optimizer, schedule, callbacks, state, batches, seed, progress,
                 epochs) -> dict:
    epoch = state.epoch
    model.train()
    loss_sum, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    inner = train.stream(epoch) if getattr(optimizer, "takes_closure", False) else None
    bar = tqdm(train.epoch(epoch), total=batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
               disable=not progress, unit="batch")
    for i, (x, y) in enumerate(bar):
        if schedule is not None:
            optimizer.lr = schedule(epoch + i / batches)
        if hasattr(objective, "schedule"):  # e.g. an adversarial objective's eps warm-up
            objective.schedule(epoch + i / batches)
        rng = streams.generator(seed, "step", epoch, i)
        loss, logits = objective(model, x, y, rng)
        if not math.isfinite(loss.item()):
            raise ValueError(f"the loss became {loss.item()} at epoch {epoch}, step {i}")
        optimizer.zero_grad()
        loss.backward()
        for callback in callbacks:
            callback.before_step(state)
        if getattr(optimizer, "takes_closure", False):  # Entropy-SGD: more gradients, at its inner iterates
            optimizer.step(_closure(model, objective, inner, rng, callbacks, state))
        else:
            optimizer.step()
        model.train()  # an objective may have switched to eval mode to attack

        loss_sum += loss.item() * len(y)
        correct += int(np.sum(logits.data.argmax(axis=1) == y))
        seen += len(y)
        state.step, state.epoch_time = state.step + 1, epoch + (i + 1) / batches
        for callback in callbacks:
            callback.on_step(state)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                        img_s=f"{seen / (time.perf_counter() - start):.0f}")
    seconds = time.perf_counter() - start
    return {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
            "lr": optimizer.lr, "seconds": seconds, "images_per_second": seen / seconds if seconds else 0.0}
