"""Ops that move entries without changing them: reshape, transpose, indexing, concatenation, padding.

Each backward moves the gradient back to where the entries came from.
"""

import math

import numpy as np

from scratchnet.functional.reductions import normalize_axes
from scratchnet.tensor import FLOAT_DTYPES, Tensor, as_tensor


def reshape(x: Tensor, shape) -> Tensor:
    shape = tuple(int(n) for n in np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape
    try:
        out = x.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into {shape}") from None
    return Tensor.from_op(out, [(x, lambda g: g.reshape(x.shape))], "reshape")


def flatten(x: Tensor, start_axis: int = 1) -> Tensor:
    """Merge the axes from `start_axis` on into one (axis 0, the batch, is kept by default; an empty batch too)."""
    return reshape(x, x.shape[:start_axis] + (math.prod(x.shape[start_axis:]),))


def transpose(x: Tensor, axes=None) -> Tensor:
    """Permute the axes (reverse them when `axes` is None or empty), as `np.transpose`."""
    axes = tuple(reversed(range(x.ndim))) if axes is None or len(axes) == 0 else tuple(axes)
    if not all(-x.ndim <= a < x.ndim for a in axes) or sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes")
    inverse = tuple(np.argsort([a % x.ndim for a in axes]))
    return Tensor.from_op(x.data.transpose(axes), [(x, lambda g: g.transpose(inverse))], "transpose")


def _picks_once(index) -> bool:
    """True for indices that pick each entry of x at most once: ints, slices, None, Ellipsis, boolean masks."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(
        isinstance(p, int | np.integer | slice) or p is None or p is Ellipsis
        or (isinstance(p, np.ndarray) and p.dtype == np.bool_)
        for p in parts
    )


def _own(index):
    """The index with every array or list part as an array of its own: the backward reads it later, and a caller
    may have refilled its array by then."""
    if isinstance(index, tuple):
        return tuple(_own(p) for p in index)
    if isinstance(index, Tensor | np.ndarray):
        return np.array(index.data if isinstance(index, Tensor) else index)
    if isinstance(index, list):  # an empty list picks nothing; np.array([]) would be a float array, not an index
        return np.array(index) if index else np.array([], np.intp)
    return index


def getitem(x: Tensor, index) -> Tensor:
    """x[index] with NumPy semantics; an index array may repeat entries, whose gradients then add up."""
    index = _own(index)
    once = _picks_once(index)

    def vjp(g):
        gx = np.zeros_like(x.data)
        if once:
            gx[index] = g
        else:
            np.add.at(gx, index, g)
        return gx

    return Tensor.from_op(np.asarray(x.data[index]), [(x, vjp)], "getitem")


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    floats = {t.dtype for t in tensors if t.dtype in FLOAT_DTYPES}
    if len(floats) > 1:
        raise TypeError(f"concatenate: tensors have dtypes {sorted({str(t.dtype) for t in tensors})}; cast them "
                        "to one first")
    if floats:  # integer tensors join a float one in its dtype (NumPy would promote float32 and int64 to float64)
        tensors = [t if t.dtype in floats else Tensor(t.data, dtype=next(iter(floats))) for t in tensors]
    (axis,) = normalize_axes(axis, tensors[0].ndim)
    try:
        out = np.concatenate([t.data for t in tensors], axis=axis)
    except ValueError as error:
        raise ValueError(f"concatenate: {error}; shapes {[t.shape for t in tensors]}") from None
    ends = np.cumsum([t.shape[axis] for t in tensors])
    edges = []
    for t, end in zip(tensors, ends, strict=True):
        part = [slice(None)] * out.ndim
        part[axis] = slice(end - t.shape[axis], end)
        edges.append((t, lambda g, part=tuple(part): g[part]))
    return Tensor.from_op(out, edges, "concatenate")


def stack(tensors, axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors or len({t.shape for t in tensors}) > 1:
        raise ValueError(f"stack: needs tensors of one shape, got {[t.shape for t in tensors]}")
    (axis,) = normalize_axes(axis, tensors[0].ndim + 1)
    return concatenate([reshape(t, t.shape[:axis] + (1,) + t.shape[axis:]) for t in tensors], axis)


def pad(x: Tensor, pad_width, value: float = 0.0) -> Tensor:
    """Constant padding; `pad_width` as in `np.pad` (one (before, after) pair per axis, or one pair for all)."""
    try:
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width must be one (before, after) pair, or one per axis of x's {x.ndim}, got "
                         f"{pad_width}") from None
    if np.any(widths < 0):
        raise ValueError(f"pad: pad_width must be >= 0, got {pad_width}")
    inner = tuple(slice(before, before + n) for (before, _), n in zip(widths, x.shape, strict=True))
    out = np.pad(x.data, widths, constant_values=value)
    return Tensor.from_op(out, [(x, lambda g: g[inner])], "pad")
