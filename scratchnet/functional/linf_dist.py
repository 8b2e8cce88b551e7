"""The l-inf-dist neuron and its lp relaxation as differentiable ops; the arithmetic is in the kernels
(`scratchnet.kernels.linf_dist`, defined by `scratchnet.kernels.reference.linf_dist`).

Zhang et al. 2021, "Towards Certifying l-inf Robustness using Neural Networks with l-inf-dist Neurons" (ICML);
shared/specs/linf-dist-nets.md. Section 1: a layer of l-inf-dist neurons maps x [B, n] to y[b, i] = ||x[b] - w[i]||_inf
for weights w [m, n] (the bias, when there is one, is added by the layer). Its gradient is sparse: only the coordinate
j* where the max is reached moves y, with dy/dx_j* = sign(x_j* - w_j*) = -dy/dw_j* (on ties the first maximizer is used,
which is a valid subgradient). Training (section 3) goes through the smooth lp-dist neuron ||x - w_i||_p instead, with p
growing towards infinity; its gradient is dy/dx_j = sign(d_j) (|d_j| / y)^(p - 1) with d = x - w_i.
"""

import math
import numbers

from scratchnet.backend import kernel
from scratchnet.functional.elementwise import operands
from scratchnet.tensor import FLOAT_DTYPES, Tensor, is_grad_enabled


def _check(x: Tensor, w: Tensor, op: str) -> tuple[Tensor, Tensor]:
    """x [B, n] and w [m, n] as Tensors of one float dtype, or a ValueError/TypeError naming the argument."""
    for name, t in (("x", x), ("w", w)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {t.dtype}")
        if t.ndim != 2:
            raise ValueError(f"{op}: {name} must be 2-D, got shape {t.shape}")
    if w.shape[1] != x.shape[1] or x.shape[1] == 0:
        raise ValueError(f"{op}: w must be [m, {x.shape[1]}] for x of shape {x.shape} (n >= 1), got {w.shape}")
    return operands(x, w, op, broadcast=False)


def _edges(x: Tensor, w: Tensor, backward) -> list:
    """The graph edges of an op whose `backward(g)` returns (gx, gw) together: the first edge to run computes
    both, and the other reuses them for the same g (the same array: every backward pass starts from a fresh
    seed) and lets them go."""
    memo = {}

    def gradients(g, which):
        if memo.get("g") is not g:
            memo.update(g=g, both=backward(g), used=set())
        memo["used"].add(which)
        both = memo["both"]
        if len(memo["used"]) == 2:
            memo.clear()
        return both[which]

    return [(x, lambda g: gradients(g, 0)), (w, lambda g: gradients(g, 1))]


def linf_dist(x: Tensor, w: Tensor) -> Tensor:
    """y[b, i] = ||x[b] - w[i]||_inf = max_j |x[b, j] - w[i, j]| for x [B, n], w [m, n] -> y [B, m]."""
    x, w = _check(x, w, "linf_dist")
    if not (is_grad_enabled() and (x.requires_grad or w.requires_grad)):
        return Tensor(kernel("linf_dist_values")(x.data, w.data))  # no graph, so no argmax to keep
    y, index = kernel("linf_dist_forward")(x.data, w.data)
    edges = _edges(x, w, lambda g: kernel("linf_dist_backward")(g, x.data, w.data, index))
    return Tensor.from_op(y, edges, "linf_dist")


def lp_dist(x: Tensor, w: Tensor, p: float) -> Tensor:
    """y[b, i] = ||x[b] - w[i]||_p = (sum_j |x[b, j] - w[i, j]|^p)^(1/p) for a finite p >= 1; overflow-safe for
    large p and large values (use `linf_dist` for p = infinity)."""
    x, w = _check(x, w, "lp_dist")
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"lp_dist: p must be a real number, got {type(p).__name__} {p!r}")
    if not (math.isfinite(p) and p >= 1):
        raise ValueError(f"lp_dist: p must be a finite number >= 1 (linf_dist is p = inf), got {p}")
    p = float(p)
    y = kernel("lp_dist_forward")(x.data, w.data, p)
    edges = _edges(x, w, lambda g: kernel("lp_dist_backward")(g, x.data, w.data, y, p))
    return Tensor.from_op(y, edges, "lp_dist")
