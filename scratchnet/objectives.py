"""Adversarial-training objectives for `training.fit`: PGD-AT (Madry et al. 2018), TRADES (Zhang et al. 2019),
ALP (Kannan et al. 2018) and MART (Wang et al. 2020), as shared/specs/attacks-and-training.md section 4 states
them.

Each objective is called as `objective(model, x, y, rng) -> (loss, logits)` like `training.standard`. It first
crafts x' with PGD in eval mode (`attacks.pgd` restores train mode afterwards), then computes its loss in train
mode with gradients through the model only (x' is a constant). With `attack="apgd"` the inner maximization
is APGD-CE (Croce & Hein 2020) instead, with `steps` iterations and its own step-size rule: a stronger attack for
the last epochs of a curriculum in attack strength (Cai et al. 2018). It runs on every example and keeps each
one's highest-loss iterate (`maximize_loss`), not the evaluation's first misclassified point. `fit` calls
`objective.schedule(t)` with the fractional epoch before every step, which ramps eps up linearly over the first
`warmup_epochs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import scratchnet.functional as F
from scratchnet import attacks
from scratchnet.tensor import Tensor, as_tensor


@dataclass
class AdversarialObjective:
    """The attack settings shared by every framework: PGD with `steps` steps of `step_size` (default
    2.5 eps / steps) in the `norm` ball of radius `eps` (or, with `attack="apgd"`, APGD-CE with `steps`
    iterations), and an optional linear eps warm-up."""

    eps: float
    steps: int = 10
    step_size: float | None = None
    norm: str = "inf"
    bounds: tuple = (0.0, 1.0)
    warmup_epochs: float = 0.0
    attack: str = "pgd"

    start = True  # PGD's random start: uniform in the ball (Madry); TRADES, ALP and MART use "gaussian"
    attack_loss = "ce"

    def __post_init__(self):
        if not self.eps >= 0 or not self.warmup_epochs >= 0:
            raise ValueError(f"eps and warmup_epochs must be >= 0, got {self.eps!r} and {self.warmup_epochs!r}")
        if self.attack not in ("pgd", "apgd"):
            raise ValueError(f"attack must be 'pgd' or 'apgd', got {self.attack!r}")
        if self.attack == "apgd" and self.attack_loss != "ce":
            raise ValueError(f"{type(self).__name__} maximizes the {self.attack_loss} loss, which APGD does not "
                             "support: use attack='pgd'")
        self.current_eps = self.eps if self.warmup_epochs == 0 else 0.0

    def schedule(self, t: float) -> None:
        """Set eps for fractional epoch t: eps * min(1, t / warmup_epochs)."""
        self.current_eps = self.eps * min(1.0, t / self.warmup_epochs) if self.warmup_epochs else self.eps

    def adversarial_example(self, model, x, y, rng) -> np.ndarray:
        eps = self.current_eps
        if self.attack == "apgd":
            return attacks.apgd(model, x, y, eps, steps=self.steps, norm=self.norm, loss="ce", bounds=self.bounds,
                                rng=rng, maximize_loss=True)
        step_size = 2.5 * eps / self.steps if self.step_size is None else self.step_size
        return attacks.pgd(model, x, y, eps, steps=self.steps, step_size=step_size, norm=self.norm,
                           random_start=self.start, loss=self.attack_loss, bounds=self.bounds, rng=rng)

    def __call__(self, model, x, y, rng) -> tuple[Tensor, Tensor]:
        x_adv = self.adversarial_example(model, x, y, rng)
        return self.loss(model, x, x_adv, y)

    def loss(self, model, x, x_adv, y) -> tuple[Tensor, Tensor]:
        """(the training loss, the logits whose accuracy the progress bar shows) for a batch and its x'."""
        raise NotImplementedError


@dataclass
class PGDAT(AdversarialObjective):
    """Madry et al. (2018): min_theta E[max_{||delta|| <= eps} CE(f(x + delta), y)], the inner max by PGD."""

    def loss(self, model, x, x_adv, y):
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits


@dataclass
class TRADES(AdversarialObjective):
    """Zhang et al. (2019): CE(f(x), y) + beta * KL(p(x) || p(x')), x' maximizing the KL from x + 0.001 N(0, I);
    gradients flow through both p(x) and p(x')."""

    beta: float = 6.0
    start = "gaussian"
    attack_loss = "kl"

    def loss(self, model, x, x_adv, y):
        logits, logits_adv = model(x), model(x_adv)
        return F.cross_entropy(logits, y) + self.beta * F.kl_div(logits, logits_adv), logits


@dataclass
class ALP(AdversarialObjective):
    """Adversarial logit pairing (Kannan et al. 2018) in its common form: 0.5 CE(f(x), y) + 0.5 CE(f(x'), y)
    + lam * mean((z(x) - z(x'))^2), x' from CE-PGD."""

    lam: float = 1.0
    start = "gaussian"

    def loss(self, model, x, x_adv, y):
        logits, logits_adv = model(x), model(x_adv)
        pairing = F.mse(logits, logits_adv)
        return 0.5 * F.cross_entropy(logits, y) + 0.5 * F.cross_entropy(logits_adv, y) + self.lam * pairing, logits


@dataclass
class MART(AdversarialObjective):
    """Wang et al. (2020): the boosted CE of x', CE(f(x'), y) - log(1 - max_{k != y} p_k(x')), plus
    beta * KL(p(x) || p(x')) * (1 - p_y(x)), which weights the misclassified-looking examples more."""

    beta: float = 6.0
    start = "gaussian"

    def loss(self, model, x, x_adv, y):
        logits, logits_adv = model(x), model(x_adv)
        rows = np.arange(len(y))
        others = np.zeros(logits.shape, dtype=logits.dtype)
        others[rows, y] = -np.inf
        p_adv = F.softmax(logits_adv)
        runner_up = (p_adv + as_tensor(others)).max(axis=1)
        boosted = F.cross_entropy(logits_adv, y, reduction="none") - F.log(1.0001 - runner_up + 1e-12)
        p_clean = F.softmax(logits)
        weight = 1.0000001 - p_clean[rows, y]
        robust = F.kl_div(logits, logits_adv, reduction="none") * weight
        return boosted.mean() + self.beta * robust.mean(), logits
