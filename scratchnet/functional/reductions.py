"""Reductions over axes: sum, mean, max, min. The gradient of a reduction is spread back over what it reduced."""

import numpy as np

from scratchnet.tensor import Tensor


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """`axis` (None, an int or a tuple, negative allowed) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    axes = tuple(sorted(int(a) % ndim for a in axes))
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis contains a repeated axis: {axis}")
    return axes


def _expand(g: np.ndarray, axes: tuple, keepdims: bool, shape: tuple) -> np.ndarray:
    """The reduced gradient `g` broadcast back to the input `shape`."""
    return np.broadcast_to(g if keepdims else np.expand_dims(g, axes), shape)


def sum(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - the op's name
    axes = normalize_axes(axis, x.ndim)
    out = np.asarray(x.data.sum(axis=axes, keepdims=keepdims))
    return Tensor.from_op(out, [(x, lambda g: _expand(g, axes, keepdims, x.shape))], "sum")


def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    axes = normalize_axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes]))
    if count == 0:
        raise ValueError(f"mean over an empty axis of a tensor of shape {x.shape}")
    out = np.asarray(x.data.mean(axis=axes, keepdims=keepdims))
    return Tensor.from_op(out, [(x, lambda g: _expand(g / count, axes, keepdims, x.shape))], "mean")


def _extremum(x: Tensor, axis, keepdims: bool, np_reduce, op: str) -> Tensor:
    """max or min; the gradient is shared equally among tied extreme entries (a subgradient). A NaN is the extreme
    (NumPy's max propagates it), so its gradient goes to the NaN entries, as torch's does."""
    axes = normalize_axes(axis, x.ndim)
    if any(x.shape[a] == 0 for a in axes):  # an empty batch reduced over a non-empty axis is fine
        raise ValueError(f"{op} over an empty axis of a tensor of shape {x.shape}")
    kept = np_reduce(x.data, axis=axes, keepdims=True)
    out = kept if keepdims else np.squeeze(kept, axis=axes)

    def vjp(g):
        winners = (x.data == kept) | (np.isnan(x.data) & np.isnan(kept))
        share = winners / winners.sum(axis=axes, keepdims=True)
        return _expand(g, axes, keepdims, x.shape) * share.astype(x.dtype)

    return Tensor.from_op(np.asarray(out), [(x, vjp)], op)


def max(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - the op's name
    return _extremum(x, axis, keepdims, np.max, "max")


def min(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - the op's name
    return _extremum(x, axis, keepdims, np.min, "min")
