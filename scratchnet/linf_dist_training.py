"""Training l-inf-dist nets: the p schedule, the papers' losses as `training.fit` objectives, the lp-aware weight
decay and the learning-rate schedule.

Zhang et al. 2021, "Towards Certifying l-inf Robustness using Neural Networks with l-inf-dist Neurons" (ICML),
and Zhang et al. 2022 (ICLR, "Boosting the Certified Robustness of L-infinity Distance Nets");
shared/specs/linf-dist-nets.md section 3 gives every formula and hyperparameter used here.

- `PSchedule`: p = 8 before epoch e_p0, then p = 8 (1000 / 8)^r with r = (t - e_p0) / (e_p1 - e_p0), and exactly
  p = inf from e_p1 on. Every objective here takes one; `fit` calls `objective.schedule(t)` before every minibatch
  and the objective sets p of every LinfDist layer (`nn.set_p`) before its forward pass.
- `HingeLoss` (ICML, pure net): m_j = g_j - g_y + theta for j != y, m_y = 0, theta = 2 eps_train (in normalized
  units); loss = mix mean_b(max_j m_j^+) + (1 - mix) mean_{b, j}(m_j^+), the mean over all K classes.
- `ClippedHingeCE` (ICLR follow-up, pure net): max_j clip(m_j / theta, 0, 1) + lambda CE(g, y), lambda decaying
  geometrically from lambda_0 to lambda_end with the same r as p.
- `IBPLoss` (ICML, Net+MLP): kappa CE(worst-margin logits of the box z +- eps) + (1 - kappa) CE(g, y), eps ramped
  linearly from 0 over the first `warmup_epochs`; the box is valid because the features are 1-Lipschitz.
- `LpWeightDecay`: the ICML optimizer's decoupled decay w <- w - lr wd grad(||w||_p^2 / 2) per l-inf-dist neuron,
  plain decay w <- (1 - lr wd) w elsewhere, wrapped around any optimizer of `scratchnet.optim`.
- `DelayedCosine`: the ICML learning rate, constant until e_p0, then a cosine to 0 at the last epoch.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

import scratchnet.functional as F
from scratchnet.certify import head_margins
from scratchnet.nn.linf_dist import LinfDistNetMLP, dist_layers, set_p
from scratchnet.optim import Cosine
from scratchnet.tensor import Tensor


@dataclass
class PSchedule:
    """p(t) at fractional epoch t: `p_start` for t < start, geometric growth p_start (p_end / p_start)^r with
    r = (t - start) / (end - start) for start <= t < end, and exactly inf for t >= end (ICML: MNIST 50 / 350 of
    400 epochs; ICLR: MNIST 25 / 400 of 450).

    With `power_of_two` (the default) p is rounded to the nearest power of two in log scale (8, 16, ..., 1024),
    as the prototype in shared/specs/linf-dist-nets.md section 8 did: the lp kernels compile each integer
    exponent into a short chain of squarings that vectorizes (one compilation per distinct p), while any other p
    costs a libm `pow` per term (about 50x slower than p = 8 on the CPU). p then grows in 7 doublings instead of
    continuously."""

    start: float
    end: float
    p_start: float = 8.0
    p_end: float = 1000.0
    power_of_two: bool = True

    def __post_init__(self):
        if not 0 <= self.start < self.end < math.inf:
            raise ValueError(f"need 0 <= start < end < inf (epochs), got start={self.start}, end={self.end}")
        if not 1 <= self.p_start <= self.p_end < math.inf:
            raise ValueError(f"need 1 <= p_start <= p_end < inf, got p_start={self.p_start}, p_end={self.p_end}")

    def ratio(self, t: float) -> float:
        """r = (t - start) / (end - start), clipped to [0, 1]."""
        return min(max((t - self.start) / (self.end - self.start), 0.0), 1.0)

    def __call__(self, t: float) -> float:
        if t >= self.end:
            return math.inf
        p = self.p_start * (self.p_end / self.p_start) ** self.ratio(t)
        return 2.0 ** round(math.log2(p)) if self.power_of_two else p


def _check_fraction(value: float, name: str) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


@dataclass
class _PScheduled:
    """An objective whose p follows `p_schedule` (None: the layers keep their p). `eps` is eps_train in input
    units; the model converts it to its normalized units (`model.scale_eps`)."""

    eps: float
    p_schedule: PSchedule | None = None

    def __post_init__(self):
        if not (isinstance(self.eps, numbers.Real) and math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {self.eps!r}")
        self.schedule(0.0)

    def schedule(self, t: float) -> None:
        """Called by `fit` with the fractional epoch before every step."""
        self.t = t
        self.p = None if self.p_schedule is None else self.p_schedule(t)

    def __call__(self, model, x, y, rng) -> tuple[Tensor, Tensor]:
        if self.p is not None:
            set_p(model, self.p)
        return self.loss(model, x, np.asarray(y))

    def loss(self, model, x, y) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


def hinge_margins(logits: Tensor, y: np.ndarray, theta: float) -> Tensor:
    """m_j = g_j - g_y + theta for j != y and m_y = 0, [B, K]."""
    rows = np.arange(len(y))
    others = np.ones(logits.shape, dtype=logits.dtype)
    others[rows, y] = 0
    return (logits - logits[rows, y].reshape(-1, 1) + theta) * others


@dataclass
class HingeLoss(_PScheduled):
    """ICML pure net: mix mean_b(max_j m_j^+) + (1 - mix) mean_{b,j}(m_j^+), theta = 2 eps_train (normalized).
    mix = 0.75 (MNIST, CIFAR), 1.0 (Fashion-MNIST)."""

    mix: float = 0.75

    def __post_init__(self):
        _check_fraction(self.mix, "mix")
        super().__post_init__()

    def loss(self, model, x, y):
        logits = model(x)
        m = F.relu(hinge_margins(logits, y, 2 * model.scale_eps(self.eps)))
        return self.mix * m.max(axis=1).mean() + (1 - self.mix) * m.mean(), logits


@dataclass
class ClippedHingeCE(_PScheduled):
    """ICLR follow-up, pure net: mean_b max_j clip(m_j / theta, 0, 1) + lambda CE(g, y), theta = 2 eps_train,
    lambda = lam_start (lam_end / lam_start)^r with the p schedule's r (lam_start without a schedule).
    MNIST: eps_train 0.3 / 0.45 for eps 0.1 / 0.3, lambda 0.05 -> 2e-4."""

    lam_start: float = 0.05
    lam_end: float = 2e-4

    def __post_init__(self):
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0 (the hinge is divided by 2 eps), got {self.eps!r}")
        if not (0 < self.lam_start < math.inf and 0 < self.lam_end < math.inf):
            raise ValueError(f"lam_start and lam_end must be finite and > 0, got {self.lam_start}, {self.lam_end}")
        super().__post_init__()

    @property
    def lam(self) -> float:
        r = 0.0 if self.p_schedule is None else self.p_schedule.ratio(self.t)
        return self.lam_start * (self.lam_end / self.lam_start) ** r

    def loss(self, model, x, y):
        logits = model(x)
        theta = 2 * model.scale_eps(self.eps)
        hinge = F.clip(hinge_margins(logits, y, theta) * (1 / theta), 0.0, 1.0).max(axis=1).mean()
        return hinge + self.lam * F.cross_entropy(logits, y), logits


@dataclass
class IBPLoss(_PScheduled):
    """ICML Net+MLP: kappa CE(z_hat, y) + (1 - kappa) CE(g(x), y), z_hat the worst-margin logits (z_hat_y = 0,
    z_hat_j = m_j) of the feature box z +- eps' through the head; eps' = eps_t / std with eps_t ramping linearly
    from 0 to eps over `warmup_epochs`. MNIST: eps 0.35, kappa 0.5, warm-up 50 epochs."""

    kappa: float = 0.5
    warmup_epochs: float = 0.0

    def __post_init__(self):
        _check_fraction(self.kappa, "kappa")
        if not self.warmup_epochs >= 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}")
        super().__post_init__()

    @property
    def current_eps(self) -> float:
        return self.eps * min(1.0, self.t / self.warmup_epochs) if self.warmup_epochs else self.eps

    def loss(self, model, x, y):
        if not isinstance(model, LinfDistNetMLP):
            raise TypeError(f"IBPLoss needs a LinfDistNetMLP, got {type(model).__name__}")
        z = model.features(x)
        logits = model.head(z)
        radius = np.full(z.shape, model.scale_eps(self.current_eps), dtype=z.dtype)
        worst = head_margins(model, z, radius, y)
        robust = F.cross_entropy(worst, y)
        return self.kappa * robust + (1 - self.kappa) * F.cross_entropy(logits, y), logits


def lp_decay_direction(w: np.ndarray, p: float) -> np.ndarray:
    """grad of ||w_i||_p^2 / 2 for every row w_i: ||w_i||_p (|w_ij| / ||w_i||_p)^(p - 1) sign(w_ij), computed
    after dividing by the row max so no power overflows; at p = inf, max|w_i| sign on the first largest entry."""
    top = np.abs(w).max(axis=1, keepdims=True)
    safe = np.where(top > 0, top, 1)
    a = np.abs(w) / safe
    if math.isinf(p):
        g = np.zeros_like(w)
        rows = np.arange(len(w))
        columns = a.argmax(axis=1)
        g[rows, columns] = w[rows, columns]
        return g
    norm = np.sum(a**p, axis=1, keepdims=True) ** (1 / p)  # ||w_i||_p / max|w_i|, in [1, n^(1/p)]
    norm = np.where(top > 0, norm, 1)  # a zero row (norm 0) has the gradient 0, not 0 / 0
    return safe * norm * (a / norm) ** (p - 1) * np.sign(w)


class LpWeightDecay:
    """An optimizer wrapper with the ICML paper's decoupled, lp-aware weight decay: before each step of
    `optimizer`, every LinfDist weight row decays along grad(||w_i||_p^2 / 2) at the layer's current p,
    w <- w - lr wd grad, and every other parameter by w <- w (1 - lr wd). With Adam(betas=(0.9, 0.99), eps=1e-10)
    and wd = 5e-3 this is the ICML optimizer. `fit` uses it like any optimizer."""

    def __init__(self, optimizer, model, weight_decay: float = 5e-3):
        if not 0 <= weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.optimizer, self.weight_decay = optimizer, float(weight_decay)
        self.layers = {id(layer.weight): layer for layer in dist_layers(model)}
        if not self.layers:
            raise ValueError(f"model has no LinfDist layer, got {type(model).__name__}")

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def decay(self) -> None:
        """The decay step alone."""
        rate = self.optimizer.lr * self.weight_decay
        for w in self.optimizer.params:
            layer = self.layers.get(id(w))
            w.data -= rate * (w.data if layer is None else lp_decay_direction(w.data, layer.p)).astype(w.dtype)

    def step(self) -> None:
        self.decay()
        self.optimizer.step()

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)


class DelayedCosine:
    """The ICML learning rate: `base_lr` until epoch `start` (e_p0), then a cosine from base_lr to 0 at `total`."""

    def __init__(self, base_lr: float, start: float, total: float):
        if not 0 <= start < total:
            raise ValueError(f"need 0 <= start < total (epochs), got start={start}, total={total}")
        self.start, self.cosine = start, Cosine(base_lr, total - start)

    def __call__(self, epoch: float) -> float:
        return self.cosine(max(0.0, epoch - self.start))
