"""Losses: cross-entropy from logits, KL divergence between softmaxes, mean squared error, multi-class hinge.

Every loss refuses non-finite inputs: a NaN that reaches a loss means training has already diverged, and
silently averaging it away would hide that.
"""

import numpy as np

from scratchnet.functional.activations import log_softmax
from scratchnet.functional.elementwise import operands
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


def _check_labels(y, logits: Tensor, op: str) -> np.ndarray:
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
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
    y = _check_labels(y, logits, "cross_entropy")
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
    y = _check_labels(y, logits, "multi_margin")
    rows = np.arange(len(y))
    z_y = logits[rows, y].reshape(-1, 1)
    hinge = (margin - z_y + logits).relu()
    others = np.ones(logits.shape, dtype=logits.dtype)
    others[rows, y] = 0
    return reduce(sum(hinge * as_tensor(others), axis=1) / logits.shape[1], reduction, "multi_margin")
