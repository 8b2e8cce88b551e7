"""Training an l-inf-dist net with its weights, optimizer state and activations resident on the GPU.

The autograd (`scratchnet.tensor`) keeps NumPy arrays on the host, so with backend "cuda" every kernel call copies its
inputs to the GPU and its result back. `ResidentTrainer` keeps the net (Zhang et al. 2021) on the GPU
instead: the weights, biases, running means and Adam's moments live there, and a training step runs the forward and
backward passes layer by layer with the CUDA kernels (distances: `kernels/cuda/linf_dist.py` and `lp_dist.py`; input
normalization, mean shift and Adam: `kernels/cuda/elementwise.py`). Only a batch's images go in, and only its [B,
classes] output and the loss gradient there cross back and forth: the loss (the hinge, or the clipped hinge plus
cross-entropy, of `scratchnet.linf_dist_training`) runs in the ordinary autograd on the host, with the objective's own
code, on a few hundred numbers.

A step computes what `fit` computes with `LinfDistNet` and `Adam` (tests/test_linf_dist_gpu.py compares them);
`to_host` copies the state back into the model and the optimizer, for evaluation, certification and checkpoints.
`FitAdapter` lets `fit` drive the trainer, with its schedules, end-of-epoch callbacks, checkpoints and resume.
"""

import math

import numpy as np
from numba import cuda

from scratchnet.kernels.cuda import elementwise as E
from scratchnet.kernels.cuda import linf_dist as D
from scratchnet.kernels.cuda import lp_dist as P
from scratchnet.nn.linf_dist import LinfDistNet, set_p
from scratchnet.optim import Adam
from scratchnet.tensor import Tensor


class _GivenLogits:
    """Stands in for the model inside an objective's `loss`: returns the logits already computed on the GPU and
    converts radii as the model does."""

    def __init__(self, model, logits: Tensor):
        self.model, self.logits = model, logits

    def __call__(self, x) -> Tensor:
        return self.logits

    def scale_eps(self, eps):
        return self.model.scale_eps(eps)


class ResidentTrainer:
    """Adam on a `LinfDistNet` with everything on the GPU. `adam` must be a plain `Adam` over `model.parameters()`
    without weight decay (the ICLR'22 recipe and the demo's default); its state carries over in both directions."""

    def __init__(self, model: LinfDistNet, adam: Adam):
        if not isinstance(model, LinfDistNet):
            raise TypeError(f"ResidentTrainer trains a LinfDistNet, got {type(model).__name__}")
        if type(adam) is not Adam or adam.weight_decay:
            raise ValueError("ResidentTrainer needs a plain Adam without weight decay, got "
                             f"{type(adam).__name__} with weight_decay={getattr(adam, 'weight_decay', None)}")
        if [id(p) for p in adam.params] != [id(p) for p in model.parameters()]:
            raise ValueError("adam must optimize exactly model.parameters(), in that order")
        self.model, self.adam = model, adam
        self.to_device()

    def to_device(self) -> None:
        """Copy the model's weights and running means and Adam's moments to the GPU (done on construction; again
        after the host copies change, e.g. when a checkpoint is loaded)."""
        model, adam = self.model, self.adam
        dtype = model.layers[0].weight.dtype
        self.mean = cuda.to_device(np.broadcast_to(model.mean, (model.input_dim,)).astype(dtype))
        # one entry per parameter: [host parameter, its index in adam, device value, device m, device v]
        self.params = {id(p): [p, i, cuda.to_device(p.data), cuda.to_device(adam.state["m"][i]),
                               cuda.to_device(adam.state["v"][i])] for i, p in enumerate(adam.params)}
        self.running = [cuda.to_device(layer.running_mean) if layer.mean_shift else None for layer in model.layers]

    def _device(self, parameter):
        """The GPU copy of a parameter of the model."""
        return self.params[id(parameter)][2]

    def forward(self, x):
        """The training-mode forward pass on a device batch x [B, input_dim]: the last layer's output (before the
        negation into logits) and, per layer, what its backward needs. Updates the running means."""
        h = E.normalize(x, self.mean, 1 / self.model.std)
        saved = []
        for layer, running in zip(self.model.layers, self.running, strict=True):
            w = self._device(layer.weight)
            if math.isinf(layer.p):
                out, index = D.linf_dist_forward(h, w)
                saved.append((h, index))
            else:
                distances = P.lp_dist_forward(h, w, layer.p)
                saved.append((h, distances))  # the lp backward needs the distances before the shift
                out = cuda.device_array_like(distances)
                out.copy_to_device(distances)
            if layer.mean_shift:
                if h.shape[0] < 2:
                    raise ValueError(f"mean shift in training needs a batch of at least 2, got {h.shape[0]}")
                mu = E.column_mean(out)
                E.add_row(out, mu, -1.0)
                E.lerp(running, mu, layer.momentum)
            if layer.bias is not None:
                E.add_row(out, self._device(layer.bias))
            h = out
        return h, saved

    def _update(self, parameter, gradient) -> None:
        _, i, w, m, v = self.params[id(parameter)]
        self.adam.updates[i] += 1  # the bias correction counts this parameter's own updates, as Adam.update
        E.adam(w, gradient, m, v, self.adam.lr, self.adam.beta1, self.adam.beta2, self.adam.eps,
               int(self.adam.updates[i]))

    def step(self, x, y, objective) -> tuple[Tensor, Tensor]:
        """One training step on the batch (x [B, ...] host images, y [B] labels) with the objective's loss at its
        current p (call `objective.schedule(t)` first, as `fit` does) and `adam.lr`. Returns (loss, logits)."""
        self.model.train()
        if getattr(objective, "p", None) is not None:
            set_p(self.model, objective.p)
        dtype = self.model.layers[0].weight.dtype
        x = cuda.to_device(np.ascontiguousarray(np.asarray(x).reshape(len(x), -1), dtype))
        out, saved = self.forward(x)
        logits = Tensor(-out.copy_to_host(), requires_grad=True)
        loss, _ = objective.loss(_GivenLogits(self.model, logits), None, np.asarray(y))
        loss.backward()
        g = cuda.to_device(-logits.grad)  # the gradient with respect to the last layer's output
        self.adam.steps += 1
        for layer, (h, stored) in zip(reversed(self.model.layers), reversed(saved), strict=True):
            if layer.bias is not None:
                self._update(layer.bias, E.column_sum(g))
            if layer.mean_shift:  # y - mean_b(y) passes g - mean_b(g)
                E.add_row(g, E.column_mean(g), -1.0)
            w = self._device(layer.weight)
            need_gx = layer is not self.model.layers[0]  # the input images need no gradient
            if math.isinf(layer.p):
                g, gw = D.linf_dist_backward(g, h, w, stored, need_gx)
            else:
                g, gw = P.lp_dist_backward(g, h, w, stored, layer.p, need_gx)
            self._update(layer.weight, gw)
        return loss, logits

    def to_host(self) -> None:
        """Copy the weights, running means and Adam's moments back into the model and the optimizer."""
        for parameter, i, w, m, v in self.params.values():
            parameter.data[...] = w.copy_to_host()
            self.adam.state["m"][i][...] = m.copy_to_host()
            self.adam.state["v"][i][...] = v.copy_to_host()
        for layer, running in zip(self.model.layers, self.running, strict=True):
            if running is not None:
                layer.running_mean[...] = running.copy_to_host()


class _StepOnGpu:
    """fit's objective for a FitAdapter: the whole step (forward, loss, backward, Adam) runs in the trainer."""

    def __init__(self, trainer: ResidentTrainer, objective):
        self.trainer, self.objective = trainer, objective

    def schedule(self, t: float) -> None:
        if hasattr(self.objective, "schedule"):
            self.objective.schedule(t)

    def __call__(self, model, x, y, rng) -> tuple[Tensor, Tensor]:
        return self.trainer.step(x, y, self.objective)


class FitAdapter:
    """Lets `fit` train with a ResidentTrainer: `fit(model, loader, test, adapter.objective, adapter, schedule,
    ...)`. fit sets the learning rate here (passed on to Adam); the step itself happens in `adapter.objective`, so
    this optimizer's `step` only counts, and after an epoch's last batch copies the state to the host, where fit's
    evaluation, callbacks and checkpoint read it. Loading a checkpoint copies it to the GPU. So a callback can
    act only at an epoch's end: fit refuses one with a before_step or on_step (`host_weights_per_step`)."""

    takes_closure = False
    host_weights_per_step = False

    def __init__(self, trainer: ResidentTrainer, objective, batches_per_epoch: int):
        if batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1, got {batches_per_epoch}")
        self.trainer, self.batches, self.taken = trainer, int(batches_per_epoch), 0
        self.objective = _StepOnGpu(trainer, objective)

    @property
    def lr(self) -> float:
        return self.trainer.adam.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.trainer.adam.lr = value

    def zero_grad(self) -> None:
        """Nothing to clear: the gradients live on the GPU, one step at a time."""

    def step(self) -> None:
        self.taken += 1
        if self.taken % self.batches == 0:
            self.trainer.to_host()

    def state_dict(self) -> dict:
        return self.trainer.adam.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.trainer.adam.load_state_dict(state)
        self.trainer.to_device()  # fit loads the model first, then the optimizer: both are on the host by now
