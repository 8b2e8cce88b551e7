"""Certified robustness of l-inf-dist nets: the margin rule, interval bounds, and certified accuracy.

Zhang et al. 2021, "Towards Certifying l-inf Robustness using Neural Networks with l-inf-dist Neurons" (ICML);
the rules as the papers' code applies them are in shared/specs/linf-dist-nets.md, section 2.

- Margin rule (`LinfDistNet`): at p = inf in eval mode the logits g are 1-Lipschitz in l-inf (in normalized
  units), so each moves by at most eps' = eps / std. If g_y(x) - max_{j != y} g_j(x) > 2 eps', no point of the
  eps-ball changes the prediction.
- Interval rule (`LinfDistNet`): propagate the input box [max(x - eps, low), min(x + eps, high)] through every
  layer with the exact range of each l-inf-dist neuron (`LinfDist.bounds`); the negation swaps the bounds, and
  the worst margins m_j = upper(g_j) - lower(g_y) must all be < 0 (ties are not certified). Each interval lies
  inside [z - eps', z + eps'], so this certifies every point the margin rule does, and more.
- Interval bound propagation through the MLP head (`LinfDistNetMLP`, Gowal et al. 2018, attacks-and-training.md
  section 5): linear layers map (center c, radius r) to (W c + b, |W| r), tanh maps the bounds, and the last layer
  is elided: m_j = (W_j - W_y) c + (b_j - b_y) + |W_j - W_y| r. `head_margins` works on Tensors, so training
  (`scratchnet.linf_dist_training.IBPLoss`) differentiates the same code that certifies.

Every certificate is computed for the network at p = inf in eval mode (`infinite_p`), whatever p it trains with.
Through the l-inf-dist layers the intervals hold bit for bit for the activations the float32 forward computes:
the box is normalized by the forward's own operations, and every step (a difference, its absolute value, a max,
the mean shift and bias) is increasing, as is its rounding. The margin rule and the head's interval arithmetic
are statements in exact arithmetic, which float32 evaluation meets to rounding (about 1e-6 relative).
"""

from __future__ import annotations

import numbers

import numpy as np

import scratchnet.functional as F
from scratchnet import attacks
from scratchnet.functional.losses import check_labels
from scratchnet.nn.linf_dist import LinfDistNet, LinfDistNetMLP, infinite_p
from scratchnet.nn.module import eval_mode
from scratchnet.tensor import Tensor, as_tensor, no_grad

METHODS = ("interval", "margin")


def _check_model(model) -> None:
    if not isinstance(model, LinfDistNet | LinfDistNetMLP):
        raise TypeError(f"model must be a LinfDistNet or LinfDistNetMLP, got {type(model).__name__}")


def margins(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """g_y - max_{j != y} g_j for each example (the true class excluded with -inf, never by masking to 0)."""
    y = check_labels(y, logits, "margins")
    rows = np.arange(len(y))
    others = logits.astype(np.float64, copy=True)
    others[rows, y] = -np.inf
    return logits[rows, y] - others.max(axis=1)


def margin_certified(model, x, y, eps: float) -> np.ndarray:
    """Which examples the margin rule certifies at input radius eps: margin > 2 eps / std (the LinfDistNet is
    1-Lipschitz in l-inf at p = inf in eval mode). The model's mode and p are restored."""
    if not isinstance(model, LinfDistNet):
        raise TypeError(f"the margin rule needs a LinfDistNet (1-Lipschitz), got {type(model).__name__}")
    x, y = _check_data(model, x, y)
    (eps,) = attacks.check_epsilons(eps)
    with infinite_p(model), eval_mode(model), no_grad():
        logits = model(x).data
    return margins(logits, y) > 2 * model.scale_eps(eps)


def input_box(model, x, eps: float, bounds=(0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """The box [max(x - eps, low), min(x + eps, high)] in the model's normalized units, [B, input_dim] each. x must
    lie in the bounds: outside them the clipped box would not contain x, and its certificate would say nothing."""
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    attacks.check_in_bounds(x, bounds)
    low, high = bounds
    return model.normalize_box(np.maximum(x - eps, low), np.minimum(x + eps, high))


def layer_bounds(model, lower: np.ndarray, upper: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The interval of every neuron of every l-inf-dist layer (eval mode, p = inf) for a normalized input box."""
    result = []
    for layer in model.layers:
        lower, upper = layer.bounds(lower, upper)
        result.append((lower, upper))
    return result


def linear_bounds(layer, center: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
    """(W c + b, |W| r): the center and radius of a linear layer's output box (Gowal et al. 2018)."""
    w = layer.effective_weight()
    return F.linear(center, w, layer.bias), F.matmul(radius, F.abs(w).T)


def head_margins(model: LinfDistNetMLP, center, radius, y) -> Tensor:
    """The worst margins m_j = max over the feature box of g_j - g_y (m_y = 0), for the box center +- radius of
    the features z, through linear -> tanh -> the elided last linear layer. Differentiable (Tensors)."""
    center, radius = as_tensor(center), as_tensor(radius, center.dtype)
    c, r = linear_bounds(model.fc1, center, radius)
    low, high = F.tanh(c - r), F.tanh(c + r)  # tanh is increasing
    c, r = (high + low) * 0.5, (high - low) * 0.5
    w, b = model.fc2.effective_weight(), model.fc2.bias
    y = np.asarray(y)
    dw = w[None, :, :] - w[y][:, None, :]  # [B, K, hidden]: W_j - W_y
    db = b[None, :] - b[y][:, None]
    return (dw * c[:, None, :]).sum(axis=2) + db + (F.abs(dw) * r[:, None, :]).sum(axis=2)


def worst_margins(model, x, y, eps: float, bounds=(0.0, 1.0)) -> np.ndarray:
    """m_j (m_y = 0) for each example: the largest g_j - g_y over the clipped eps-box, from interval bounds.
    Certified iff every m_j with j != y is < 0. The model's mode and p are restored."""
    _check_model(model)
    x, y = _check_data(model, x, y)
    (eps,) = attacks.check_epsilons(eps)
    with infinite_p(model), eval_mode(model), no_grad():
        lower, upper = layer_bounds(model, *input_box(model, x, eps, bounds))[-1]
        rows = np.arange(len(y))
        if isinstance(model, LinfDistNet):  # logits are -(distance): upper(g_j) = -lower_j, lower(g_y) = -upper_y
            m = upper[rows, y][:, None] - lower
        else:
            m = head_margins(model, (upper + lower) / 2, (upper - lower) / 2, y).data
    m[rows, y] = 0
    return m


def interval_certified(model, x, y, eps: float, bounds=(0.0, 1.0)) -> np.ndarray:
    """Which examples the interval rule certifies at input radius eps: all worst margins m_j < 0, j != y."""
    m = worst_margins(model, x, y, eps, bounds)
    m[np.arange(len(y)), y] = -np.inf
    return m.max(axis=1) < 0


def _check_data(model, x, y) -> tuple[np.ndarray, np.ndarray]:
    """x and y as arrays, y one label in [0, num_classes) per example (NumPy would read a label -1 as the last
    class, and certify it)."""
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be 1-D integer labels, one per example of x {x.shape}, got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= model.num_classes):
        raise ValueError(f"y must be in [0, {model.num_classes}), got labels from {y.min()} to {y.max()}")
    return x, y


def certified_accuracy(model, x, y, eps, method: str = "interval", bounds=(0.0, 1.0), batch_size: int = 500):
    """The fraction of examples that are correctly classified and certified at input radius eps (one number, or a
    list for a list of eps), by the `method` "interval" (the tighter rule; the only one for LinfDistNetMLP) or
    "margin" (LinfDistNet only). Computed at p = inf in eval mode."""
    _check_model(model)
    x, y = _check_data(model, x, y)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    certify = interval_certified if method == "interval" else margin_certified
    extra = {"bounds": bounds} if method == "interval" else {}
    result = []
    for e in attacks.check_epsilons(eps):
        certified = [certify(model, x[i:i + batch_size], y[i:i + batch_size], e, **extra)
                     for i in range(0, len(x), batch_size)]
        result.append(float(np.mean(np.concatenate(certified))) if len(x) else 0.0)
    return result if np.ndim(eps) else result[0]


def robustness_report(model, x, y, eps, pgd_steps: int = 20, method: str = "interval", bounds=(0.0, 1.0),
                      seed: int = 0) -> dict:
    """Clean, PGD and certified accuracy side by side at p = inf, for one eps or a list:
    {"eps": [...], "clean": acc, "pgd": [...], "certified": [...]}. PGD with the papers' loss and steps
    (cross-entropy, `pgd_steps` steps of eps / 4) but from a uniform random start in the eps-cube (the papers' code
    starts from N(0, (eps / 4)^2) clipped to +-eps / 2). Certified <= PGD <= clean when the certificates are sound."""
    _check_model(model)
    x, y = _check_data(model, x, y)
    epsilons = attacks.check_epsilons(eps)

    def pgd(m, xs, ys, e):
        return attacks.pgd(m, xs, ys, e, steps=pgd_steps, step_size=e / 4, bounds=bounds, rng=seed)

    with infinite_p(model):
        robust = attacks.robust_accuracy(model, x, y, {"pgd": pgd}, epsilons, bounds=bounds, progress=False)
        certified = certified_accuracy(model, x, y, epsilons, method, bounds)
    return {"eps": epsilons, "clean": robust["clean"], "pgd": robust["attacks"]["pgd"], "certified": certified}
