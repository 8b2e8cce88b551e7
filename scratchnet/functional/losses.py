"""Losses: cross-entropy from logits, KL divergence between softmaxes, mean squared error, multi-class hinge.

Every loss refuses non-finite inputs: a NaN that reaches a loss means training has already diverged, and
silently averaging it away would hide that.
"""

import numpy as np

from scratchnet.functional.activations import log_softmax
from scratchnet.functional.elementwise import clip, operands
from scratchnet.functional.reductions import mean, sum
from scratchnet.tensor import FLOAT_DTYPES, Tensor, as_tensor

REDUCTIONS = ("mean", "sum", "none")


def check_finite(t: Tensor, name: str, op: str) -> None:
    if not np.all(np.isfinite(t.data)):
        bad = int(np.size(t.data) - np.count_nonzero(np.isfinite(t.data)))
        raise ValueError(f"{op}: {name} contains {bad} NaN or infinite value(s)")


def _check_logits(logits: Tensor, op: str, name: str = "logits") -> None:
    if logits.ndim != 2:
        raise ValueError(f"{op}: {name} must be 2-D [batch, classes], got shape {logits.shape}")
    if logits.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {logits.dtype}")
    check_finite(logits, name, op)


def check_labels(y, logits, op: str) -> np.ndarray:
    """The labels as an array of their own (a backward reads them later; the caller may refill theirs), each a
    class of the [batch, classes] logits (a Tensor or an array): a label -1 would index the last class."""
    y = np.array(y.data if isinstance(y, Tensor) else y)
    if y.ndim != 1 or y.shape[0] != logits.shape[0]:
        raise ValueError(f"{op}: y must be 1-D with one label per row of logits {logits.shape}, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{op}: y must hold integer class labels, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise ValueError(f"{op}: y must be in [0, {logits.shape[1]}), got labels from {y.min()} to {y.max()}")
    return y


def reduce(losses: Tensor, reduction: str, op: str) -> Tensor:
    """Per-example losses -> their mean, their sum, or themselves."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return mean(losses) if reduction == "mean" else sum(losses) if reduction == "sum" else losses


def cross_entropy(logits: Tensor, y, reduction: str = "mean") -> Tensor:
    """-log softmax(z)_y per example, from logits z [B, K] and integer labels y [B].

    Fused for stability and speed: the gradient with respect to z is softmax(z) - onehot(y).
    """
    _check_logits(logits, "cross_entropy")
    y = check_labels(y, logits, "cross_entropy")
    rows = np.arange(len(y))
    log_p = log_softmax(logits.detach()).data
    losses = -log_p[rows, y]

    def vjp(g):
        grad = np.exp(log_p)
        grad[rows, y] -= 1
        return grad * g[:, None]

    return reduce(Tensor.from_op(losses, [(logits, vjp)], "cross_entropy"), reduction, "cross_entropy")


def kl_div(logits_p: Tensor, logits_q: Tensor, reduction: str = "mean") -> Tensor:
    """KL(p || q) = sum_k p_k (log p_k - log q_k) per example, with p = softmax(logits_p), q = softmax(logits_q).

    Gradients flow through both arguments (TRADES differentiates both). "mean" divides the batch sum by B.
    """
    _check_logits(logits_p, "kl_div", "logits_p")
    _check_logits(logits_q, "kl_div", "logits_q")
    if logits_p.shape != logits_q.shape:
        raise ValueError(f"kl_div: logits_p {logits_p.shape} and logits_q {logits_q.shape} differ in shape")
    log_p, log_q = log_softmax(logits_p), log_softmax(logits_q)
    losses = sum(log_p.exp() * (log_p - log_q), axis=1)
    return reduce(losses, reduction, "kl_div")


def mse(a: Tensor, b, reduction: str = "mean") -> Tensor:
    """Squared differences (a - b)^2, averaged over every entry ("mean"), summed, or kept elementwise."""
    a, b = operands(a, b, "mse", broadcast=False)
    if a.shape != b.shape:
        raise ValueError(f"mse: a {a.shape} and b {b.shape} differ in shape")
    check_finite(a, "a", "mse")
    check_finite(b, "b", "mse")
    diff = a - b
    return reduce(diff * diff, reduction, "mse")


def multi_margin(logits: Tensor, y, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """Multi-class hinge: sum_{j != y} max(0, margin - z_y + z_j) / K per example (Weston & Watkins; PyTorch)."""
    _check_logits(logits, "multi_margin")
    y = check_labels(y, logits, "multi_margin")
    rows = np.arange(len(y))
    z_y = logits[rows, y].reshape(-1, 1)
    hinge = (margin - z_y + logits).relu()
    others = np.ones(logits.shape, dtype=logits.dtype)
    others[rows, y] = 0
    return reduce(sum(hinge * as_tensor(others), axis=1) / logits.shape[1], reduction, "multi_margin")


def margin(logits: Tensor, y, kappa: float = np.inf, reduction: str = "mean") -> Tensor:
    """The Carlini-Wagner margin min(max_{j != y} z_j - z_y, kappa), which an attack maximizes: it is positive
    exactly when the example is misclassified. The true class is excluded from the max with -inf, never by
    multiplying by (1 - onehot), which picks the wrong class when the other logits are negative."""
    _check_logits(logits, "margin")
    y = check_labels(y, logits, "margin")
    rows = np.arange(len(y))
    mask = np.zeros(logits.shape, dtype=logits.dtype)
    mask[rows, y] = -np.inf
    runner_up = (logits + as_tensor(mask)).max(axis=1)
    gap = runner_up - logits[rows, y]
    if np.isfinite(kappa):
        gap = clip(gap, None, kappa)
    return reduce(gap, reduction, "margin")


def dlr(logits: Tensor, y, target=None, reduction: str = "mean") -> Tensor:
    """The Difference of Logits Ratio of Croce & Hein (ICML 2020), which an attack maximizes.

    Untargeted: -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3), with z_pi the logits sorted in decreasing order;
    targeted at t: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2). Shifting or scaling the logits leaves it
    unchanged, so a saturated softmax cannot hide the gradient. Computed in float64 (the denominator of
    near-tied logits loses precision in float32); needs 3 classes, 4 when targeted.
    """
    _check_logits(logits, "dlr")
    y = check_labels(y, logits, "dlr")
    needed = 3 if target is None else 4
    if logits.shape[1] < needed:
        raise ValueError(f"dlr: needs at least {needed} classes, got logits of shape {logits.shape}")
    rows, z = np.arange(len(y)), logits.data.astype(np.float64)
    order = np.argsort(-z, axis=1, kind="stable")
    if target is None:
        others = z.copy()
        others[rows, y] = -np.inf
        rival = others.argmax(axis=1)
        tail = [(order[:, 2], 1.0)]
    else:
        rival = check_labels(target, logits, "dlr")
        tail = [(order[:, 2], 0.5), (order[:, 3], 0.5)]
    gap = z[rows, y] - z[rows, rival]
    spread = z[rows, order[:, 0]] - _weighted_sum(z, rows, tail) + 1e-12
    losses = -gap / spread

    def vjp(g):
        # d/dz of -gap / spread: -1/spread on z_y, +1/spread on the rival, +gap/spread^2 on d spread / dz
        grad = np.zeros_like(z)
        scale = g.astype(np.float64) / spread
        np.add.at(grad, (rows, y), -scale)
        np.add.at(grad, (rows, rival), scale)
        ratio = scale * gap / spread
        np.add.at(grad, (rows, order[:, 0]), ratio)
        for column, weight in tail:
            np.add.at(grad, (rows, column), -weight * ratio)
        return grad.astype(logits.dtype)

    return reduce(Tensor.from_op(losses.astype(logits.dtype), [(logits, vjp)], "dlr"), reduction, "dlr")


def _weighted_sum(z: np.ndarray, rows: np.ndarray, columns) -> np.ndarray:
    """sum over (column, weight) of weight * z[rows, column]."""
    return np.sum([weight * z[rows, column] for column, weight in columns], axis=0)
