"""White-box attacks and robust evaluation: FGSM / FGM, PGD (Madry et al. 2018), APGD (Croce & Hein 2020) and an
AutoAttack-style `robust_accuracy`. The conventions and the pitfalls they avoid are in
shared/specs/attacks-and-training.md.

Every attack takes a model, a batch x in `bounds` with integer labels y, and a radius `eps` in the `norm` "inf"
or "2", and returns x' with ||x' - x|| <= eps and x' in bounds. The model runs in eval mode (BatchNorm uses its
running statistics, dropout is off) and is restored afterwards; an attack differentiates the loss with respect to
the input only (`scratchnet.grad`), so parameters, their `.grad` and running statistics are never touched.
The arithmetic of a step (move, project onto the ball, clip to the bounds) is one fused kernel
(`kernels/attack.py`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from tqdm.auto import tqdm

import scratchnet.functional as F
from scratchnet.backend import kernel
from scratchnet.functional.losses import check_labels, dlr, margin
from scratchnet.nn.module import eval_mode
from scratchnet.tensor import Tensor, grad, no_grad

NORMS = ("inf", "2")
LOSSES = ("ce", "kl", "cw", "dlr")
TRADES_START_STD = 0.001  # the "gaussian" random start of TRADES and MART: x + 0.001 N(0, I)


# ---------------------------------------------------------------------------------------------- shared pieces


def _check(x, y, eps, norm, bounds) -> tuple[np.ndarray, np.ndarray, float, float]:
    x, y = (np.asarray(a.data if isinstance(a, Tensor) else a) for a in (x, y))
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be 1-D integer labels, one per example of x {x.shape}, got {y.dtype} {y.shape}")
    _check_eps(eps)
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    lo, hi = (float(b) for b in bounds)
    if not lo < hi:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    check_in_bounds(x, (lo, hi))
    return x, y, lo, hi


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def check_epsilons(eps) -> list[float]:
    """One eps or a list of them, as a non-empty list of finite numbers >= 0."""
    epsilons = [_check_eps(e) for e in np.atleast_1d(eps).tolist()]
    if not epsilons:
        raise ValueError("eps must be a finite number >= 0 or a list of them, got an empty list")
    return epsilons


def check_in_bounds(x: np.ndarray, bounds) -> None:
    """Refuse inputs outside the data's bounds, or with a NaN: an attack or a certificate around them means nothing."""
    low, high = bounds
    if not np.all((x >= low) & (x <= high)):  # NaN fails both comparisons
        nans = int(np.isnan(x).sum())
        found = f"{nans} NaN value(s)" if nans else f"values from {x.min()} to {x.max()}"
        raise ValueError(f"x must lie in bounds {tuple(bounds)}, got {found}")


def _check_steps(steps, restarts) -> None:
    for name, value in (("steps", steps), ("restarts", restarts)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def attack_loss(name: str, y: np.ndarray, clean_logits: np.ndarray | None = None, target=None):
    """The per-example loss an attack maximizes, as a function of the logits: "ce" (cross-entropy; with a
    target, minus the cross-entropy of the target), "kl" (KL(p(x) || p(x')) with p(x) from `clean_logits`, as
    TRADES), "cw" (the Carlini-Wagner margin), "dlr" (Croce & Hein's logit ratio, targeted with `target`)."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    if name == "ce":
        if target is None:
            return lambda z: F.cross_entropy(z, y, reduction="none")
        return lambda z: -F.cross_entropy(z, target, reduction="none")
    if target is not None and name != "dlr":
        raise ValueError(f"a targeted attack needs loss 'ce' or 'dlr', got {name!r}")
    if name == "kl":
        if clean_logits is None:
            raise ValueError("the 'kl' loss needs the clean logits")
        clean = Tensor(clean_logits)
        return lambda z: F.kl_div(clean, z, reduction="none")
    if name == "cw":
        return lambda z: margin(z, y, reduction="none")
    return lambda z: dlr(z, y, target=target, reduction="none")


def loss_and_gradient(model, x_adv: np.ndarray, loss) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-example loss, its gradient with respect to x_adv, logits) at x_adv; only the input is differentiated."""
    x_t = Tensor(x_adv, requires_grad=True)
    logits = model(x_t)
    losses = loss(logits)
    (g,) = grad(losses.sum(), [x_t])
    return losses.data, g, logits.data


def _clean_logits(model, x):
    with no_grad():
        return model(x).data


def step(x_adv, g, x, step_size, eps, norm, lo, hi) -> np.ndarray:
    """One steepest-ascent step of size `step_size` (a number or one per example), projected."""
    name = "linf_step" if norm == "inf" else "l2_step"
    return kernel(name)(x_adv, g, x, step_size, eps, lo, hi)


def project(x_adv, x, eps, norm, lo, hi) -> np.ndarray:
    """x_adv projected onto the eps-ball around x and clipped to the bounds."""
    return kernel("linf_project" if norm == "inf" else "l2_project")(x_adv, x, eps, lo, hi)


def initial_point(x, eps, norm, kind, lo, hi, rng) -> np.ndarray:
    """The first iterate: x itself (kind False); uniform in the ball ("uniform", or True: the cube for l-inf, a
    uniform radius times a Gaussian direction for l2, as torchattacks), projected; or x + 0.001 N(0, I)
    ("gaussian", as TRADES and MART), neither projected nor clipped: the first step does that."""
    if kind is False or eps == 0:
        return x.copy()
    if kind == "gaussian":
        return x + (TRADES_START_STD * rng.standard_normal(x.shape)).astype(x.dtype)
    if kind in (True, "uniform") and norm == "inf":
        noise = rng.uniform(-eps, eps, x.shape)
    elif kind in (True, "uniform"):
        direction = rng.standard_normal(x.shape)
        norms = np.sqrt(np.sum(direction.reshape(len(x), -1) ** 2, axis=1)) + 1e-12
        radius = eps * rng.uniform(0, 1, len(x)) / norms
        noise = direction * radius.reshape((-1,) + (1,) * (x.ndim - 1))
    else:
        raise ValueError(f"random_start must be True, False, 'uniform' or 'gaussian', got {kind!r}")
    return project(x + noise.astype(x.dtype), x, eps, norm, lo, hi)


# ------------------------------------------------------------------------------------------------ FGSM and PGD


def pgd(model, x, y, eps: float, steps: int = 40, step_size: float | None = None, norm: str = "inf",
        random_start: bool | str = True, restarts: int = 1, loss: str = "ce", bounds=(0.0, 1.0),
        rng=None) -> np.ndarray:
    """Projected gradient ascent on `loss` (Madry et al. 2018): from a random start in the ball, `steps` steps
    of size `step_size` (default 2.5 eps / steps), each projected. Returns the last iterate.

    With restarts, each restart runs only on the examples that no earlier restart has fooled, and an example
    keeps the first restart that fools the model, or else the restart with the highest loss: more restarts can
    only make the result worse for the model.
    """
    x, y, lo, hi = _check(x, y, eps, norm, bounds)
    _check_steps(steps, restarts)
    step_size = 2.5 * eps / steps if step_size is None else step_size
    if not step_size >= 0:
        raise ValueError(f"step_size must be >= 0, got {step_size!r}")
    rng = np.random.default_rng(rng)
    with eval_mode(model):
        clean = _clean_logits(model, x) if loss == "kl" else None
        best, best_loss = x.copy(), np.full(len(x), -np.inf)
        fooled = np.zeros(len(x), dtype=bool)
        for _ in range(restarts):
            todo = np.flatnonzero(~fooled)
            if todo.size == 0:
                break
            x0, y0 = x[todo], y[todo]
            objective = attack_loss(loss, y0, None if clean is None else clean[todo])
            x_adv = initial_point(x0, eps, norm, random_start, lo, hi, rng)
            for _ in range(steps):
                _, g, _ = loss_and_gradient(model, x_adv, objective)
                x_adv = step(x_adv, g, x0, step_size, eps, norm, lo, hi)
            if restarts == 1:
                return x_adv
            with no_grad():
                logits = model(x_adv)
                losses = objective(logits).data
            wrong = logits.data.argmax(axis=1) != y0
            better = wrong | (losses > best_loss[todo])
            best[todo[better]], best_loss[todo[better]] = x_adv[better], losses[better]
            fooled[todo[wrong]] = True
    return best


def fgsm(model, x, y, eps: float, loss: str = "ce", bounds=(0.0, 1.0)) -> np.ndarray:
    """The fast gradient sign method (Goodfellow et al. 2015): x + eps sign(grad), clipped to the bounds."""
    return pgd(model, x, y, eps, steps=1, step_size=eps, norm="inf", random_start=False, loss=loss, bounds=bounds)


def fgm(model, x, y, eps: float, loss: str = "ce", bounds=(0.0, 1.0)) -> np.ndarray:
    """The fast gradient method in l2: x + eps grad / ||grad||_2, clipped to the bounds."""
    return pgd(model, x, y, eps, steps=1, step_size=eps, norm="2", random_start=False, loss=loss, bounds=bounds)


# ------------------------------------------------------------------------------------------------------ APGD


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations after which APGD may halve its step (Croce & Hein 2020, section 3.2): the first after
    22% of the budget, then intervals shrinking by 3% of it down to a floor of 6%."""
    interval, shrink, floor = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    checkpoints, at = [], interval
    while at <= steps:
        checkpoints.append(at)
        interval = max(interval - shrink, floor)
        at += interval
    return checkpoints


def _apgd_run(model, x, y, eps, steps, norm, objective, lo, hi, rng, rho, trace):
    """One APGD run. Returns (the point that evaluation keeps for each example: the first iterate that fools the
    model if there was one, else the iterate of highest loss; the iterate of highest loss; that loss). Appends
    (best loss, step size) after every iteration to `trace`."""
    direction = rng.uniform(-1, 1, x.shape) if norm == "inf" else rng.standard_normal(x.shape)
    flat = np.abs(direction).reshape(len(x), -1)
    length = flat.max(axis=1) if norm == "inf" else np.sqrt(np.sum(flat ** 2, axis=1))
    unit = direction / np.maximum(length, 1e-12).reshape((-1,) + (1,) * (x.ndim - 1))
    x_adv = project(x + (eps * unit).astype(x.dtype), x, eps, norm, lo, hi)

    loss, g, logits = loss_and_gradient(model, x_adv, objective)
    eta = np.full(len(x), 2.0 * eps)
    x_best, g_best, loss_best = x_adv.copy(), g.copy(), loss.copy()
    out = x_best.copy()
    fooled = logits.argmax(axis=1) != y
    x_prev, loss_now = x_adv, loss
    checkpoints = set(apgd_checkpoints(steps))
    previous_check, increases = 0, np.zeros(len(x), dtype=int)
    halved_last, loss_best_last = np.zeros(len(x), dtype=bool), loss_best.copy()
    for k in range(steps):
        z = step(x_adv, g, x, eta, eps, norm, lo, hi)
        a = 1.0 if k == 0 else 0.75
        x_next = project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), x, eps, norm, lo, hi)
        x_prev, x_adv = x_adv, x_next
        loss, g, logits = loss_and_gradient(model, x_adv, objective)

        wrong = logits.argmax(axis=1) != y
        out[wrong & ~fooled] = x_adv[wrong & ~fooled]
        fooled |= wrong
        increases += loss > loss_now
        loss_now = loss
        improved = loss > loss_best
        x_best[improved], g_best[improved], loss_best[improved] = x_adv[improved], g[improved], loss[improved]

        if k + 1 in checkpoints:
            oscillating = increases <= rho * (k + 1 - previous_check)
            stalled = ~halved_last & (loss_best_last >= loss_best) if previous_check > 0 else False
            halve = oscillating | stalled
            eta[halve] /= 2
            x_adv[halve], g[halve] = x_best[halve], g_best[halve]
            halved_last, loss_best_last = halve, loss_best.copy()
            previous_check, increases = k + 1, np.zeros(len(x), dtype=int)
        if trace is not None:
            trace.append((loss_best.copy(), eta.copy()))
    out[~fooled] = x_best[~fooled]
    return out, x_best, loss_best


def apgd(model, x, y, eps: float, steps: int = 100, norm: str = "inf", loss: str = "ce", targeted: bool = False,
         n_targets: int = 9, restarts: int = 1, rho: float = 0.75, bounds=(0.0, 1.0), rng=None,
         trace: list | None = None, maximize_loss: bool = False) -> np.ndarray:
    """Auto-PGD (Croce & Hein, ICML 2020): PGD with momentum whose per-example step size starts at 2 eps and is
    halved at checkpoints when the loss stops rising, restarting from the best point.

    Untargeted with loss "ce" or "dlr"; `targeted=True` runs the targeted DLR (or CE) against each of the
    `n_targets` classes with the highest clean logits after the true one, as APGD-T. For evaluation (AutoAttack's
    rule) every run attacks only the examples still classified correctly, and an example keeps the first iterate
    that fools the model. With `maximize_loss` (the inner maximization of adversarial training) every example is
    attacked and keeps its iterate of highest loss over all runs: a point just across the decision boundary, or
    an example left unperturbed because it was misclassified already, would be a weak training input. `trace`, if
    a list, receives (best loss, step size) per iteration of each run.
    """
    x, y, lo, hi = _check(x, y, eps, norm, bounds)
    _check_steps(steps, restarts)
    if loss not in ("ce", "dlr"):
        raise ValueError(f"APGD's loss must be 'ce' or 'dlr', got {loss!r}")
    if maximize_loss and targeted:
        raise ValueError("maximize_loss is for the untargeted attack inside training, not for APGD-T")
    if isinstance(n_targets, bool) or not isinstance(n_targets, numbers.Integral) or n_targets < 1:
        raise ValueError(f"n_targets must be an int >= 1 (none would leave every example unattacked), got "
                         f"{n_targets!r}")
    if not (isinstance(rho, numbers.Real) and 0 <= rho <= 1):
        raise ValueError(f"rho, the fraction of increasing steps below which the step halves, must be in [0, 1], "
                         f"got {rho!r}")
    rng = np.random.default_rng(rng)
    if maximize_loss:
        return _apgd_highest_loss(model, x, y, eps, steps, norm, attack_loss(loss, y), restarts, lo, hi, rng, rho,
                                  trace)
    result = x.copy()
    with eval_mode(model):
        clean = _clean_logits(model, x)
        classes = clean.shape[1]
        if loss == "dlr" and classes < (4 if targeted else 3):
            raise ValueError(f"the {'targeted ' if targeted else ''}DLR loss needs more classes, got {classes}")
        ranks = range(2, 2 + min(n_targets, classes - 1)) if targeted else [None]
        for rank in ranks:
            for _ in range(restarts):
                todo = np.flatnonzero(_clean_logits(model, result).argmax(axis=1) == y)
                if todo.size == 0:
                    return result
                target = None if rank is None else np.argsort(-clean[todo], axis=1, kind="stable")[:, rank - 1]
                objective = attack_loss(loss, y[todo], target=target)
                result[todo] = _apgd_run(model, x[todo], y[todo], eps, steps, norm, objective, lo, hi, rng, rho,
                                         trace)[0]
    return result


def _apgd_highest_loss(model, x, y, eps, steps, norm, objective, restarts, lo, hi, rng, rho, trace):
    """`apgd` with `maximize_loss`: every run attacks every example; each keeps its highest-loss iterate."""
    result, best = x.copy(), np.full(len(x), -np.inf)
    with eval_mode(model):
        for _ in range(restarts):
            _, x_best, loss_best = _apgd_run(model, x, y, eps, steps, norm, objective, lo, hi, rng, rho, trace)
            better = loss_best > best
            result[better], best[better] = x_best[better], loss_best[better]
    return result


# --------------------------------------------------------------------------------------------- robust accuracy


def robust_accuracy(model, x, y, attacks: dict, eps, batch_size: int = 500, cascade: bool = True,
                    norm: str = "inf", bounds=(0.0, 1.0), progress: bool = True) -> dict:
    """Accuracy under each attack and under the worst case of all of them, for one eps or a list.

    `attacks` maps a name to `attack(model, x, y, eps) -> x'` (e.g. `functools.partial(pgd, steps=40)`).
    With `cascade` (AutoAttack's protocol) each attack runs only on the points that survived the previous ones,
    and an attack's entry is the accuracy left after it; otherwise every attack runs on every correctly
    classified point and its entry is its own accuracy. Either way "worst_case" counts the points that no
    attack fooled. Each attack's output is checked to lie in the eps-ball and the bounds.

    Returns {"eps": [...], "clean": accuracy, "attacks": {name: [accuracy per eps]}, "worst_case": [...]}.
    """
    x, y, lo, hi = _check(x, y, 0.0, norm, bounds)
    epsilons = check_epsilons(eps)
    if not attacks:
        raise ValueError("attacks must name at least one attack")
    logits = _logits(model, x, batch_size)
    correct = logits.argmax(axis=1) == check_labels(y, logits, "robust_accuracy")
    result = {"eps": epsilons, "clean": float(correct.mean()), "attacks": {name: [] for name in attacks},
              "worst_case": []}
    bar = tqdm(total=len(epsilons) * len(attacks), desc="robust accuracy", disable=not progress, leave=False)
    for e in epsilons:
        survivors = correct.copy()
        for name, attack in attacks.items():
            alive = survivors.copy() if cascade else correct.copy()
            for start in range(0, len(x), batch_size):
                index = start + np.flatnonzero(alive[start:start + batch_size])
                if index.size:
                    x_adv = attack(model, x[index], y[index], e)
                    _check_inside(x_adv, x[index], e, norm, lo, hi, name)
                    alive[index] = _predictions(model, x_adv, batch_size) == y[index]
            survivors &= alive
            result["attacks"][name].append(float(alive.mean()))
            bar.update()
            bar.set_postfix(eps=e, attack=name, accuracy=f"{alive.mean():.4f}")
        result["worst_case"].append(float(survivors.mean()))
    bar.close()
    return result


def _logits(model, x, batch_size):
    with eval_mode(model):
        return np.concatenate([_clean_logits(model, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _predictions(model, x, batch_size):
    return _logits(model, x, batch_size).argmax(axis=1)


def _check_inside(x_adv, x, eps, norm, lo, hi, name):
    """Refuse an attack whose output leaves the threat model, or holds a NaN: either would fake a success (the
    argmax of NaN logits is class 0). Every test is written so that a NaN fails it."""
    x_adv = np.asarray(x_adv)
    if x_adv.shape != x.shape:
        raise RuntimeError(f"attack {name!r} returned shape {x_adv.shape} for inputs of shape {x.shape}")
    delta = (x_adv - x).reshape(len(x), -1).astype(np.float64)
    size = np.abs(delta).max(axis=1, initial=0) if norm == "inf" else np.sqrt(np.sum(delta ** 2, axis=1))
    slack = 1e-6 * max(eps, 1.0)
    inside = np.all(size <= eps + slack) and np.all((x_adv >= lo - slack) & (x_adv <= hi + slack))
    if not inside:
        nans = int(np.isnan(x_adv).sum())
        found = f" ({nans} NaN value(s))" if nans else ""
        raise RuntimeError(f"attack {name!r} returned points outside the eps = {eps} {norm}-ball or the "
                           f"bounds{found}")
