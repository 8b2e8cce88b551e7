"""Matrix products: `matmul` (NumPy's @, batched and broadcast) and `linear`, the affine map of a Linear layer."""

import numpy as np

from scratchnet.functional.elementwise import operands
from scratchnet.tensor import Tensor, unbroadcast


def matmul(a, b) -> Tensor:
    """a @ b with NumPy's rules: a 1-D `a` acts as a row, a 1-D `b` as a column; leading axes broadcast.

    For C = A B: dA = dC B^T and dB = A^T dC, summed over the broadcast batch axes.
    """
    a, b = operands(a, b, "matmul", broadcast=False)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands need at least one dimension, got shapes {a.shape} and {b.shape}")
    A = a.data[None, :] if a.ndim == 1 else a.data
    B = b.data[:, None] if b.ndim == 1 else b.data
    if A.shape[-1] != B.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ, shapes {a.shape} and {b.shape}")
    try:
        C = A @ B
    except ValueError:
        raise ValueError(f"matmul: batch axes do not broadcast, shapes {a.shape} and {b.shape}") from None
    out = C[..., 0, :] if a.ndim == 1 else C  # drop the axes that the promotion of 1-D operands added
    out = out[..., 0] if b.ndim == 1 else out

    def vjp_a(g):
        return unbroadcast(g.reshape(C.shape) @ np.swapaxes(B, -1, -2), A.shape).reshape(a.shape)

    def vjp_b(g):
        return unbroadcast(np.swapaxes(A, -1, -2) @ g.reshape(C.shape), B.shape).reshape(b.shape)

    return Tensor.from_op(out, [(a, vjp_a), (b, vjp_b)], "matmul")


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """y = x W^T + b for x [..., in], W [out, in] (PyTorch's layout), b [out].

    The leading axes of x are flattened into one so that every product is a single 2-D matrix product.
    """
    if w.ndim != 2:
        raise ValueError(f"linear: w must be 2-D [out, in], got shape {w.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: x has {x.shape[-1:] or 'no'} features (shape {x.shape}), w expects {w.shape[1]}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: b must have shape ({w.shape[0]},), got {b.shape}")
    x, w = operands(x, w, "linear", broadcast=False)
    rows = x.data.reshape(-1, w.shape[1])
    out = rows @ w.data.T
    if b is not None:
        _, b = operands(x, b, "linear", broadcast=False)
        out += b.data
    edges = [
        (x, lambda g: (g.reshape(-1, w.shape[0]) @ w.data).reshape(x.shape)),
        (w, lambda g: g.reshape(-1, w.shape[0]).T @ rows),
    ]
    if b is not None:
        edges.append((b, lambda g: g.reshape(-1, w.shape[0]).sum(axis=0)))
    return Tensor.from_op(out.reshape(x.shape[:-1] + (w.shape[0],)), edges, "linear")
