"""The binary linear logistic model in closed form: optimal attacks, adversarial losses and their Danskin
gradients, derived in shared/specs/width-depth-and-smoothness.md B3; they match the statement of Kanai et al.
2021, "Smoothness Analysis of Adversarial Training" (its v2 abstract), whose body was not at hand.

The model is f(x) = w^T x with labels y in {-1, +1} and the logistic loss l(z) = log(1 + e^-z) of the margin
z = y w^T x. Since l is decreasing, the attack minimizes the margin, and by Hölder's inequality

    min_{||delta||_p <= eps} y w^T delta = -eps ||w||_q,    1/p + 1/q = 1,

attained at delta* = -eps y d(w), where d(w) is the unit-p-norm vector with w^T d(w) = ||w||_q. The adversarial
loss is L(w) = (1/N) sum_n l(z~_n) with the adversarial margin z~_n = y_n w^T x_n - eps ||w||_q, and Danskin's
theorem gives its gradient l'(z~) (y x - eps d(w)) = l'(z~) y (x + delta*). For p = 2, d(w) = w / ||w||_2 is smooth
away from w = 0; for p = inf, d(w) = sign(w) jumps across every hyperplane w_i = 0.
"""

from __future__ import annotations

import math

import numpy as np


def logistic_loss(z) -> np.ndarray:
    """l(z) = log(1 + e^-z), computed without overflow."""
    return np.logaddexp(0.0, -np.asarray(z, dtype=float))


def logistic_derivative(z) -> np.ndarray:
    """l'(z) = -1 / (1 + e^z), in (-1, 0)."""
    return -0.5 * (1.0 - np.tanh(0.5 * np.asarray(z, dtype=float)))  # the sigmoid without overflow


def dual_exponent(p: float) -> float:
    """q with 1/p + 1/q = 1 (p = 1 gives inf, p = inf gives 1)."""
    p = float(p)
    if not p >= 1:
        raise ValueError(f"p must be >= 1 (a number or math.inf), got {p}")
    return math.inf if p == 1 else 1.0 if p == math.inf else p / (p - 1)


def dual_direction(w: np.ndarray, p: float) -> np.ndarray:
    """The maximizer d(w) of w^T d over ||d||_p <= 1, so w^T d(w) = ||w||_q: sign(w) for p = inf,
    w / ||w||_2 for p = 2, sign(w_j) e_j at the largest |w_j| for p = 1, sign(w) |w|^(q-1) / ||w||_q^(q-1) else.
    Zero where w = 0 (a subgradient of the norm)."""
    w = np.asarray(w, dtype=float)
    q = dual_exponent(p)
    if q == 1:
        return np.sign(w)
    if q == math.inf:
        d = np.zeros_like(w)
        j = np.argmax(np.abs(w))
        d[j] = np.sign(w[j])
        return d
    norm = np.linalg.norm(w, q)
    if norm == 0:
        return np.zeros_like(w)
    return np.sign(w) * (np.abs(w) / norm) ** (q - 1)


def _check(w, x, y, eps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w, x, y = np.asarray(w, dtype=float), np.atleast_2d(np.asarray(x, dtype=float)), np.atleast_1d(y)
    if w.ndim != 1 or x.shape[1] != len(w):
        raise ValueError(f"w must be a vector and x rows of the same length, got w {w.shape} and x {x.shape}")
    if len(y) != len(x) or not np.all(np.abs(y) == 1):
        raise ValueError(f"y must hold one label in {{-1, +1}} per row of x, got {y!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return w, x, y.astype(float)


def optimal_perturbation(w, x, y, eps: float, p: float) -> np.ndarray:
    """delta*_n = -eps y_n d(w): the perturbation in the lp ball of radius eps that maximizes l(y w^T (x + delta))."""
    w, x, y = _check(w, x, y, eps)
    return -eps * y[:, None] * dual_direction(w, p)[None, :]


def adversarial_margin(w, x, y, eps: float, p: float) -> np.ndarray:
    """z~_n = y_n w^T x_n - eps ||w||_q: the margin at the optimal attack."""
    w, x, y = _check(w, x, y, eps)
    return y * (x @ w) - eps * np.linalg.norm(w, dual_exponent(p))


def adversarial_loss(w, x, y, eps: float, p: float) -> float:
    """L(w) = (1/N) sum_n max_{||delta||_p <= eps} l(y_n w^T (x_n + delta)) = mean l(z~_n); eps = 0: the clean loss."""
    return float(np.mean(logistic_loss(adversarial_margin(w, x, y, eps, p))))


def adversarial_gradient(w, x, y, eps: float, p: float) -> np.ndarray:
    """Danskin: grad L(w) = (1/N) sum_n l'(z~_n) (y_n x_n - eps d(w))."""
    w, x, y = _check(w, x, y, eps)
    slope = logistic_derivative(adversarial_margin(w, x, y, eps, p))
    return (slope * y) @ x / len(y) - eps * np.mean(slope) * dual_direction(w, p)


def l2_adversarial_hessian(w, x, y, eps: float) -> np.ndarray:
    """The Hessian of the l2 adversarial loss at w != 0 (B3): mean of l''(z~) v v^T - l'(z~) eps (I - u u^T) / ||w||,
    with u = w / ||w|| and v = y x - eps u."""
    w, x, y = _check(w, x, y, eps)
    norm = np.linalg.norm(w)
    if norm == 0:
        raise ValueError("the l2 adversarial loss is not twice differentiable at w = 0")
    u = w / norm
    z = adversarial_margin(w, x, y, eps, 2)
    slope = logistic_derivative(z)
    curvature = -slope * (1 + slope)  # l'' = sigma(z) sigma(-z) = -l' (1 + l')
    v = y[:, None] * x - eps * u
    projector = np.eye(len(w)) - np.outer(u, u)
    return (v.T * curvature) @ v / len(y) - eps * np.mean(slope) * projector / norm


def l2_smoothness_bound(w, x, eps: float) -> float:
    """The local smoothness constant of B3: mean_n (||x_n|| + eps)^2 / 4 + eps / ||w|| (since l'' <= 1/4 and
    |l'| < 1); it bounds ||Hessian||_2 of the l2 adversarial loss at w and grows without bound as w -> 0."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    return float(np.mean((np.linalg.norm(x, axis=1) + eps) ** 2) / 4 + eps / np.linalg.norm(w))
