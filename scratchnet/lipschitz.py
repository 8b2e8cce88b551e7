"""An estimator of the gradient's Lipschitz constant, to check the claims of Kanai et al. (2021, "Smoothness
Analysis of Adversarial Training") numerically (shared/specs/width-depth-and-smoothness.md B7, a proposal of the
spec, not the paper's own procedure):

    R(theta, h) = max_u ||grad L(theta + h u) - grad L(theta)|| / h,   u random unit directions in parameter space.

If grad L is beta-Lipschitz within distance h of theta then R(theta, h) <= beta, and R tends to ||Hessian u|| as h -> 0
where L is twice differentiable. Where the gradient jumps by J within distance h of theta, R grows like J / h:
on a log-log plot of R against h, a smooth loss is flat and a non-smooth one has slope -1.

The gradient of an adversarial loss L_eps(theta) = mean_n max_{||delta_n|| <= eps} CE(f_theta(x_n + delta_n), y_n)
is, by Danskin's theorem, the gradient of the loss at the maximizer delta*(theta). `AdversarialGradient` finds
delta* by projected gradient ascent run to convergence (restarts at the base point, then warm starts from its
delta* at each perturbed theta, so that the error of the inner maximization stays below the h being probed).

The Lipschitz constant of the network itself, in its input, is what Huang et al. (2021, "Exploring Architectural
Ingredients of Adversarially Robust Deep Neural Networks", NeurIPS, Section 4; spec A4, A6) tie to the width and
depth of a wide ResNet. `local_lipschitz` is the metric of their code (mean ||f(x) - f(x')||_1 / ||x - x'||_inf
at PGD examples x'), and `residual_lipschitz_bound` a standard upper bound on the same ratio built from exact layer
norms; the bound is ours (spec A6 [D]), not the paper's theorem, which we could not read.
"""

from __future__ import annotations

import itertools

import numpy as np

import scratchnet.functional as F
from scratchnet import attacks, norms
from scratchnet.nn.layers import BatchNorm2d
from scratchnet.nn.module import eval_mode
from scratchnet.nn.wide_resnet import WideResNet
from scratchnet.tensor import Tensor, grad
from scratchnet.training import predict


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
    noise floor of R is about 1e-8 / h in float64. The model runs in eval mode (Dropout off, BatchNorm on its
    running statistics), both in the ascent and for the gradient, so that theta -> gradient is a function.
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
        with eval_mode(self.model):
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
            with eval_mode(self.model):  # the mode the ascent ran in, so the gradient is the one at its maximum
                x_adv = self._ascend(self.x_adv0.copy())[0] if self.eps > 0 else self.x
                loss = F.cross_entropy(self.model(Tensor(x_adv)), self.y)
                return np.concatenate([g.ravel() for g in grad(loss, self.params)])
        finally:
            unflatten_parameters(self.theta0, self.params)


# ---------------------------------------------------------------------------------------------- Huang et al. 2021
def local_lipschitz(model, x, x_adv, batch_size: int = 500) -> float:
    """The local Lipschitz metric of Huang et al. (2021, code `util.local_lip`, spec A4): the mean over the batch of
    ||f(x) - f(x')||_1 / ||x - x'||_inf, f the logits in eval mode and x' (typically) the PGD-20 example of x."""
    x, x_adv = (np.asarray(a.data if isinstance(a, Tensor) else a) for a in (x, x_adv))
    if x.shape != x_adv.shape or x.ndim < 2:
        raise ValueError(f"x and x_adv must be batches of the same shape, got {x.shape} and {x_adv.shape}")
    distance = np.abs(x - x_adv).reshape(len(x), -1).max(axis=1)
    if not np.all(distance > 0):
        raise ValueError("x_adv must differ from x in every example (||x - x_adv||_inf > 0)")
    logits, logits_adv = (predict(model, a, batch_size) for a in (x, x_adv))
    return float(np.mean(np.abs(logits - logits_adv).sum(axis=1) / distance))


def linf_to_l1_norm(weight) -> float:
    """||W||_{inf -> 1} = max_{||x||_inf <= 1} ||W x||_1 = max_{u in {-1, 1}^K} ||W^T u||_1 for W [K, C], by
    enumerating the 2^K sign vectors (the norm is NP-hard in general); for K > 16, the upper bound sum |W_kc|."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"weight must be a 2-D array [out, in], got shape {w.shape}")
    if w.shape[0] > 16:
        return float(np.abs(w).sum())
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=w.shape[0])))
    return float(np.abs(signs @ w).sum(axis=1).max())


def _bn(layer: BatchNorm2d) -> float:
    return norms.batchnorm_norm(None if layer.weight is None else layer.weight.data, layer.running_var,
                                layer.eps).value


def lipschitz_bound_factors(model: WideResNet, input_shape) -> list[tuple[str, float]]:
    """The factors of `residual_lipschitz_bound`, one (name, factor) per stem, block and head, in forward order."""
    if not isinstance(model, WideResNet):
        raise TypeError(f"model must be a WideResNet, got {type(model).__name__}")
    sizes = norms.conv_input_sizes(model, tuple(input_shape))

    def conv(layer) -> float:
        return norms.conv_linf_norm(layer.weight.data, layer.stride, layer.padding, sizes[layer]).value

    factors = [("stem", conv(model.stem))]
    for i, block in enumerate(model.blocks):
        residual = conv(block.conv1) * _bn(block.bn2) * conv(block.conv2)
        if block.shortcut is None:
            factors.append((f"blocks.{i}", 1.0 + _bn(block.bn1) * residual))
        elif block.shortcut_activated:
            factors.append((f"blocks.{i}", _bn(block.bn1) * (residual + conv(block.shortcut))))
        else:
            factors.append((f"blocks.{i}", _bn(block.bn1) * residual + conv(block.shortcut)))
    factors.append(("head", _bn(model.bn) * linf_to_l1_norm(model.fc.weight.data)))
    return factors


def residual_lipschitz_bound(model: WideResNet, input_shape) -> float:
    """A standard upper bound (NOT Huang et al.'s theorem; spec A6 [D]) on ||f(x) - f(x')||_1 / ||x - x'||_inf for
    every pair of inputs of shape `input_shape` (e.g. (1, 28, 28)), f a WideResNet in eval mode:

        Lip <= ||stem|| * prod_blocks L_block * ||BN|| ||W_fc||_{inf -> 1},
        L_block = 1 + ||BN1|| ||conv1|| ||BN2|| ||conv2||              (identity shortcut: x + g(x))
        L_block = ||BN1|| (||conv1|| ||BN2|| ||conv2|| + ||shortcut||)  (1x1 shortcut of the activated input)
        L_block = ||BN1|| ||conv1|| ||BN2|| ||conv2|| + ||shortcut||    (1x1 shortcut of x: a stride change only)

    with the exact l-inf operator norms of the convolutions (`norms.conv_linf_norm`, Liang & Huang 2021), BatchNorm's
    max |gamma| / sigma, and ReLU and the global average pool 1-Lipschitz in l-inf. More blocks add factors >= 1,
    and wider layers have larger l-inf norms, so the bound grows with width and depth."""
    return float(np.prod([factor for _, factor in lipschitz_bound_factors(model, input_shape)]))
