"""The l-inf-dist layer and the two networks built from it.

Zhang et al. 2021, "Towards Certifying l-inf Robustness using Neural Networks with l-inf-dist Neurons" (ICML),
and the ICLR 2022 follow-up; the facts as their code has them are in shared/specs/linf-dist-nets.md, sections 1
and 3 (the papers' own section numbers are not quoted: their bodies were not at hand):

- `LinfDist`: x [B, n] -> y[b, i] = ||x[b] - w_i||_p (- mean shift) (+ b_i). p = inf is the l-inf-dist neuron;
  a finite p is the lp relaxation used during training (the p schedule sets `layer.p`). Mean shift is batch
  normalization without variance scaling or affine map: the batch mean is subtracted in training (gradients flow
  through it) and a running mean (momentum 0.1) in eval, where it is a constant and so keeps the layer
  1-Lipschitz in l-inf.
- `LinfDistNet`: hidden l-inf-dist layers with mean shift and no bias, then an l-inf-dist output layer with a bias
  and no mean shift; the logits are the negated distances g_k(x) = -(||h - w_k|| + b_k). At p = inf in eval mode
  the whole map is 1-Lipschitz in l-inf, so a margin g_y - max_{j != y} g_j > 2 eps certifies the eps-ball.
- `LinfDistNetMLP`: the l-inf-dist layers as a feature extractor, then the head linear -> tanh -> linear (the
  paper's l-inf-dist Net+MLP), certified by interval bound propagation through the head (`scratchnet.certify`).

Inputs are normalized by (x - mean) / std with ONE scalar std, so the l-inf ball stays a ball: an input radius eps
is the radius eps / std for the network (`scale_eps`).
"""

from __future__ import annotations

import contextlib
import math
import numbers

import numpy as np

import scratchnet.functional as F
from scratchnet.backend import kernel
from scratchnet.functional.conv import check_int
from scratchnet.nn.init import as_rng
from scratchnet.nn.module import Module, Parameter
from scratchnet.tensor import Tensor, as_tensor

IDENTITY_C = 10.0  # the identity-map init puts -C on one weight per neuron (spec section 3, "Init")


def check_p(p) -> float:
    """p as a float in [1, inf], or a TypeError/ValueError naming it."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number >= 1 or math.inf, got {type(p).__name__} {p!r}")
    if not p >= 1:  # also rejects NaN
        raise ValueError(f"p must be >= 1 (math.inf for the l-inf-dist neuron), got {p}")
    return float(p)


def _input(x, dtype, features: int, where: str) -> Tensor:
    """x as a [B, features] Tensor: arrays are cast to the layer's dtype, [B, ...] is flattened."""
    x = x if isinstance(x, Tensor) else as_tensor(np.asarray(x), dtype)
    if x.ndim < 2:
        raise ValueError(f"{where}: x must be [B, {features}] (or [B, ...] with {features} values), got {x.shape}")
    if x.ndim > 2:
        x = F.flatten(x, 1)
    if x.shape[1] != features:
        raise ValueError(f"{where}: x must have {features} features per example, got shape {x.shape}")
    return x


class LinfDist(Module):
    """A layer of lp-dist neurons, y_i = ||x - w_i||_p - mu_i + b_i (Zhang et al. 2021; spec section 1).

    mu_i is the mean shift (batch mean in training, running mean in eval; 0 without `mean_shift`), b_i the
    optional bias. Weights are N(0, 1), biases 0; with `identity_init` and in_features <= out_features, neuron i
    gets w[i, i mod in_features] = -C (C = 10), so that it starts as x_{i mod n} + C and, after the mean shift
    removes C, the layer starts near the identity (spec section 3, "Init").
    """

    def __init__(self, in_features: int, out_features: int, p: float = math.inf, mean_shift: bool = True,
                 bias: bool = False, identity_init: bool = True, momentum: float = 0.1, rng=None):
        super().__init__()
        self.in_features = check_int(in_features, "in_features", 1)
        self.out_features = check_int(out_features, "out_features", 1)
        self.p = p
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.mean_shift, self.momentum = bool(mean_shift), float(momentum)
        w = as_rng(rng).standard_normal((out_features, in_features)).astype(np.float32)
        if identity_init and in_features <= out_features:
            w[np.arange(out_features), np.arange(out_features) % in_features] = -IDENTITY_C
        self.weight = Parameter(w)
        self.bias = Parameter(np.zeros(out_features, np.float32)) if bias else None
        if self.mean_shift:
            self.register_buffer("running_mean", np.zeros(out_features, np.float32))

    @property
    def p(self) -> float:
        return self._p

    @p.setter
    def p(self, value) -> None:
        self._p = check_p(value)

    def distances(self, x: Tensor) -> Tensor:
        """||x - w_i||_p for every example and neuron, before mean shift and bias."""
        if math.isinf(self.p):
            return F.linf_dist(x, self.weight)
        return F.lp_dist(x, self.weight, self.p)

    def forward(self, x) -> Tensor:
        x = _input(x, self.weight.dtype, self.in_features, "LinfDist")
        y = self.distances(x)
        if self.mean_shift and self.training:
            if len(x) < 2:
                raise ValueError(f"LinfDist: mean shift in training needs a batch of at least 2, got {x.shape}")
            mu = y.mean(axis=0, keepdims=True)  # not detached: the gradient flows through the batch mean
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mu.data[0]
            y = y - mu
        elif self.mean_shift:
            y = y - self.running_mean.astype(y.dtype)
        return y if self.bias is None else y + self.bias

    def bounds(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact range of every neuron of the eval-mode l-inf-dist layer over the box lower <= x <= upper
        ([B, in_features] each): the `interval_bounds` kernel, then minus the running mean, plus the bias, in the
        forward's order and dtype: each step is increasing and so is its rounding, so the bounds hold bit for bit
        for the activations the forward computes."""
        if self.training or not math.isinf(self.p):
            raise ValueError(f"LinfDist.bounds holds for eval mode at p = inf, got training={self.training}, "
                             f"p={self.p}")
        dtype = self.weight.dtype

        def shifted(y):
            y = y - self.running_mean.astype(dtype) if self.mean_shift else y
            return y if self.bias is None else y + self.bias.data

        low, high = kernel("interval_bounds")(lower.astype(dtype), upper.astype(dtype), self.weight.data)
        return shifted(low), shifted(high)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, p={self.p}, mean_shift={self.mean_shift}, "
                f"bias={self.bias is not None}")


class ScaledLinear(Module):
    """y = x (W / sqrt(in_features))^T + b with W ~ N(0, 1) and b = 0: the head's linear layer as the paper's
    code writes it, the 1 / sqrt(fan_in) applied at run time (so Adam's step on W is on the N(0, 1) scale)."""

    def __init__(self, in_features: int, out_features: int, rng=None):
        super().__init__()
        self.in_features = check_int(in_features, "in_features", 1)
        self.out_features = check_int(out_features, "out_features", 1)
        self.weight = Parameter(as_rng(rng).standard_normal((out_features, in_features)).astype(np.float32))
        self.bias = Parameter(np.zeros(out_features, np.float32))

    def effective_weight(self) -> Tensor:
        return self.weight * (1 / math.sqrt(self.in_features))

    def forward(self, x) -> Tensor:
        return F.linear(as_tensor(x), self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}"


class _Normalized(Module):
    """Shared by both networks: input normalization by a mean (a number or one per input value) and one scalar
    std, and the l-inf-dist layers `self.layers` applied in order."""

    def __init__(self, input_dim: int, mean, std: float):
        super().__init__()
        self.input_dim = check_int(input_dim, "input_dim", 1)
        mean = np.asarray(mean, dtype=np.float64)
        if mean.shape not in ((), (input_dim,)) or not np.all(np.isfinite(mean)):
            raise ValueError(f"mean must be a finite number or {input_dim} numbers, got shape {mean.shape}")
        if isinstance(std, bool) or not isinstance(std, numbers.Real) or not (0 < std < math.inf):
            raise ValueError(f"std must be one finite number > 0 (a per-channel std would distort the l-inf "
                             f"ball), got {std!r}")
        self.mean, self.std = mean, float(std)

    def scale_eps(self, eps):
        """The radius in normalized units of an input radius eps: eps / std (the network is 1/std-Lipschitz in
        the input, 1-Lipschitz in the normalized input)."""
        return np.asarray(eps) / self.std if np.ndim(eps) else float(eps) / self.std

    def normalize(self, x) -> Tensor:
        """(x - mean) / std, flattened to [B, input_dim]."""
        x = _input(x, self.layers[0].weight.dtype, self.input_dim, type(self).__name__)
        return (x - self.mean.astype(x.dtype)) * (1 / self.std)

    def normalize_box(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An input box [lower, upper] in normalized units, by the very float operations of `normalize`: they are
        increasing and so is their rounding, so every point of the box normalizes into the result, bit for bit
        (a box computed in float64 and then rounded could miss a corner's float32 image by an ulp)."""
        return tuple(self.normalize(a).data for a in (lower, upper))

    def activations(self, x) -> list[Tensor]:
        """The output of every l-inf-dist layer for the input x."""
        h, outputs = self.normalize(x), []
        for layer in self.layers:
            h = layer(h)
            outputs.append(h)
        return outputs


class LinfDistNet(_Normalized):
    """The l-inf-dist net (Zhang et al. 2021; spec section 1): `depth` l-inf-dist layers, the hidden ones of `width`
    neurons (an int, or one width per hidden layer) with mean shift, the last with `num_classes` neurons and a
    bias; logits g_k(x) = -(||h - w_k||_p + b_k). Identity-map init where fan-in <= fan-out."""

    def __init__(self, input_dim: int, depth: int, width, num_classes: int, p: float = math.inf,
                 mean_shift: bool = True, hidden_bias: bool = False, identity_init: bool = True, mean=0.0,
                 std: float = 1.0, seed=0):
        super().__init__(input_dim, mean, std)
        depth = check_int(depth, "depth", 1)
        widths = [width] * (depth - 1) if isinstance(width, numbers.Integral) else list(width)
        if len(widths) != depth - 1:
            raise ValueError(f"width must be an int or {depth - 1} ints (one per hidden layer), got {width!r}")
        widths = [check_int(w, "width", 1) for w in widths]
        sizes = [self.input_dim, *widths, check_int(num_classes, "num_classes", 1)]
        rng = as_rng(seed)
        last = depth - 1
        self.layers = [LinfDist(sizes[i], sizes[i + 1], p, mean_shift=mean_shift and i < last,
                                bias=hidden_bias or i == last, identity_init=identity_init, rng=rng)
                       for i in range(depth)]

    @property
    def num_classes(self) -> int:
        return self.layers[-1].weight.shape[0]

    def forward(self, x) -> Tensor:
        return -self.activations(x)[-1]


class LinfDistNetMLP(_Normalized):
    """The l-inf-dist Net+MLP (Zhang et al. 2021; spec section 1): `depth` l-inf-dist layers of `width` neurons, all
    with mean shift and no bias, as features z; then the head linear(width -> hidden) -> tanh ->
    linear(hidden -> num_classes). The head is not 1-Lipschitz: certify it with interval bounds."""

    def __init__(self, input_dim: int, depth: int, width: int, num_classes: int, hidden: int = 512,
                 p: float = math.inf, identity_init: bool = True, mean=0.0, std: float = 1.0, seed=0):
        super().__init__(input_dim, mean, std)
        depth, width = check_int(depth, "depth", 1), check_int(width, "width", 1)
        rng = as_rng(seed)
        sizes = [self.input_dim] + [width] * depth
        self.layers = [LinfDist(sizes[i], sizes[i + 1], p, identity_init=identity_init, rng=rng)
                       for i in range(depth)]
        self.fc1 = ScaledLinear(width, check_int(hidden, "hidden", 1), rng=rng)
        self.fc2 = ScaledLinear(hidden, check_int(num_classes, "num_classes", 1), rng=rng)

    @property
    def num_classes(self) -> int:
        return self.fc2.weight.shape[0]

    def features(self, x) -> Tensor:
        """z, the output of the last l-inf-dist layer."""
        return self.activations(x)[-1]

    def head(self, z) -> Tensor:
        return self.fc2(F.tanh(self.fc1(z)))

    def forward(self, x) -> Tensor:
        return self.head(self.features(x))


def dist_layers(model) -> list[LinfDist]:
    """Every LinfDist layer of `model`."""
    return [m for m in model.modules() if isinstance(m, LinfDist)]


def set_p(model, p: float) -> None:
    """Set p of every LinfDist layer of `model` (what the p schedule does before each step)."""
    p = check_p(p)
    for layer in dist_layers(model):
        layer.p = p


@contextlib.contextmanager
def infinite_p(model):
    """Run a block with p = inf in every LinfDist layer of `model` (what is certified), then restore each p."""
    layers = dist_layers(model)
    saved = [layer.p for layer in layers]
    try:
        set_p(model, math.inf)
        yield model
    finally:
        for layer, p in zip(layers, saved, strict=True):
            layer.p = p
