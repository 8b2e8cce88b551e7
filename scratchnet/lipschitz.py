"""The gradient-Lipschitz estimator of Kanai et al. (2021, "Smoothness Analysis of Adversarial Training",
sections 4-5; shared/specs/width-depth-and-smoothness.md B7):

    R(theta, h) = max_u ||grad L(theta + h u) - grad L(theta)|| / h,   u random unit directions in parameter space.

If grad L is beta-Lipschitz near theta then R(theta, h) <= beta for every h, and R tends to ||Hessian u|| as h -> 0
where L is twice differentiable. Where the gradient jumps by J within distance h of theta, R grows like J / h:
on a log-log plot of R against h, a smooth loss is flat and a non-smooth one has slope -1.

The gradient of an adversarial loss L_eps(theta) = mean_n max_{||delta_n|| <= eps} CE(f_theta(x_n + delta_n), y_n)
is, by Danskin's theorem, the gradient of the loss at the maximizer delta*(theta). `AdversarialGradient` finds
delta* by projected gradient ascent run to convergence (restarts at the base point, then warm starts from its
delta* at each perturbed theta, so that the error of the inner maximization stays below the h being probed).
"""

from __future__ import annotations

import numpy as np

import scratchnet.functional as F
from scratchnet import attacks
from scratchnet.tensor import Tensor, grad


def flatten_parameters(params) -> np.ndarray:
    """theta: every parameter's values in one vector (a copy), in the order of `params`."""
    return np.concatenate([p.data.ravel() for p in params])


def unflatten_parameters(theta: np.ndarray, params) -> None:
    """Write the vector theta back into the parameters, in place: the inverse of `flatten_parameters`."""
    params = list(params)
    sizes = [p.size for p in params]
    if np.shape(theta) != (sum(sizes),):
        raise ValueError(f"theta must be a vector of {sum(sizes)} values, got shape {np.shape(theta)}")
    for p, part in zip(params, np.split(theta, np.cumsum(sizes)[:-1]), strict=True):
        p.data[...] = part.reshape(p.shape)


def unit_directions(dim: int, directions: int, seed=0) -> np.ndarray:
    """`directions` unit vectors drawn uniformly on the sphere of R^dim (rows)."""
    if directions < 1:
        raise ValueError(f"directions must be >= 1, got {directions}")
    u = np.random.default_rng(seed).standard_normal((directions, dim))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def lipschitz_curve(gradient, theta, hs, directions: int = 64, seed=0) -> np.ndarray:
    """R(theta, h) for each h in `hs`: max over the same `directions` random unit u of
    ||gradient(theta + h u) - gradient(theta)|| / h. `gradient` maps a parameter vector to its gradient."""
    theta = np.asarray(theta)
    hs = np.asarray(hs, dtype=float)
    if hs.ndim != 1 or not np.all(hs > 0):
        raise ValueError(f"hs must be a list of step lengths > 0, got {hs!r}")
    base = gradient(theta)
    us = unit_directions(theta.size, directions, seed)
    return np.array([max(np.linalg.norm(gradient(theta + h * u) - base) for u in us) / h for h in hs])


def gradient_lipschitz(gradient, theta, h: float, directions: int = 64, seed=0) -> float:
    """R(theta, h): the largest ||gradient(theta + h u) - gradient(theta)|| / h over random unit directions u."""
    return float(lipschitz_curve(gradient, theta, [h], directions, seed)[0])


class AdversarialGradient:
    """theta -> grad_theta L_eps(theta) for an `sn.nn` model on a fixed batch (x, y), with the cross-entropy loss
    and an lp attack ("inf" or "2") of radius eps; eps = 0 gives the clean gradient.

    The inner maximum is found by projected gradient ascent with backtracking: a proposed step that does not raise an
    example's loss is rejected and that example's step is halved, so the ascent is monotone and stops when each
    example's proposed move, or its step, is below `tol * eps` (in the l-inf norm). At the base point theta0 (the
    model's parameters when constructed) it starts from `restarts` random points and keeps the best; at any other
    theta it warm-starts from delta*(theta0). Calls leave the model's parameters at theta0. For l2 the loss is flat
    to second order at delta*, so the monotone test pins delta* to about sqrt(machine eps) relative accuracy: the
    noise floor of R is about 1e-8 / h in float64.
    """

    def __init__(self, model, x, y, eps: float, norm: str = "2", step_size: float | None = None, restarts: int = 5,
                 max_steps: int = 2000, tol: float = 1e-10, bounds=(-np.inf, np.inf), seed=0):
        self.model, self.params = model, model.parameters()
        self.x, self.y, self.lo, self.hi = attacks._check(x, y, eps, norm, bounds)
        attacks._check_steps(max_steps, restarts)
        self.eps, self.norm, self.tol, self.max_steps = float(eps), norm, float(tol), max_steps
        self.step_size = (2.0 if norm == "2" else 0.5) * self.eps if step_size is None else float(step_size)
        self.loss = attacks.attack_loss("ce", self.y)
        self.theta0 = flatten_parameters(self.params)
        self.unconverged = 0  # ascents that ran out of steps: their gradient is less accurate than tol
        self.x_adv0, best_loss = self.x.copy(), np.full(len(self.x), -np.inf)
        rng = np.random.default_rng(seed)
        for _ in range(restarts if self.eps > 0 else 0):
            x_adv, loss = self._ascend(attacks.initial_point(self.x, eps, norm, True, self.lo, self.hi, rng))
            better = loss > best_loss
            self.x_adv0[better], best_loss[better] = x_adv[better], loss[better]

    def _ascend(self, x_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Monotone projected gradient ascent from x_adv to convergence; returns (x_adv, per-example loss)."""
        with attacks.eval_mode(self.model):
            loss, g, _ = attacks.loss_and_gradient(self.model, x_adv, self.loss)
            alpha = np.full(len(x_adv), self.step_size)
            for _ in range(self.max_steps):
                proposal = attacks.step(x_adv, g, self.x, alpha, self.eps, self.norm, self.lo, self.hi)
                new_loss, new_g, _ = attacks.loss_and_gradient(self.model, proposal, self.loss)
                accept = new_loss > loss
                move = np.abs(proposal - x_adv).reshape(len(x_adv), -1).max(axis=1)
                x_adv[accept], loss[accept], g[accept] = proposal[accept], new_loss[accept], new_g[accept]
                alpha[~accept] /= 2
                alpha[(move <= self.tol * self.eps) | (alpha <= self.tol * self.eps)] = 0.0
                if not alpha.any():
                    return x_adv, loss
        self.unconverged += 1
        return x_adv, loss

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        unflatten_parameters(theta, self.params)
        try:
            x_adv = self._ascend(self.x_adv0.copy())[0] if self.eps > 0 else self.x
            loss = F.cross_entropy(self.model(Tensor(x_adv)), self.y)
            return np.concatenate([g.ravel() for g in grad(loss, self.params)])
        finally:
            unflatten_parameters(self.theta0, self.params)
