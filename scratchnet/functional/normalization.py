"""Batch normalization (Ioffe & Szegedy 2015) and dropout (Srivastava et al. 2014)."""

import numpy as np

from scratchnet.tensor import FLOAT_DTYPES, Tensor


def batch_norm(x: Tensor, running_mean: np.ndarray, running_var: np.ndarray, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """y = weight * (x - mu) / sqrt(var + eps) + bias per channel (axis 1 of [N, C] or [N, C, H, W]).

    In training, mu and var are the batch's statistics (biased var), gradients flow through them, and the
    running statistics are updated in place: r <- (1 - momentum) r + momentum * batch (the unbiased var, as
    PyTorch). In evaluation, mu and var are the running statistics and the map is affine, so each example is
    independent of the batch.
    """
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: x must be [N, C] or [N, C, H, W], got shape {x.shape}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"batch_norm: x must be float32 or float64, got dtype {x.dtype}")
    channels = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:  # as every other op: no silent promotion to float64
            raise TypeError(f"batch_norm: x is {x.dtype} but {name} is {t.dtype}; cast one of them first")
        if t is not None and t.shape != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},), got {t.shape}")
    for name, array in (("running_mean", running_mean), ("running_var", running_var)):
        if not isinstance(array, np.ndarray):  # updated in place in training: a copy would not be
            raise TypeError(f"batch_norm: {name} must be a NumPy array, got {type(array).__name__}")
        if array.shape != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},), got {array.shape}")
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    per_channel = (1, channels) + (1,) * (x.ndim - 2)
    count = x.size // channels

    if training:
        if count < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got shape {x.shape}")
        mu, var = x.data.mean(axis=axes), x.data.var(axis=axes)
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * count / (count - 1)
    else:
        mu, var = running_mean, running_var
    inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype)
    x_hat = (x.data - mu.reshape(per_channel).astype(x.dtype)) * inv_std.reshape(per_channel)
    gamma = np.ones(channels, x.dtype) if weight is None else weight.data
    out = x_hat * gamma.reshape(per_channel)
    if bias is not None:
        out += bias.data.reshape(per_channel)

    def vjp_x(g):
        scale = (gamma * inv_std).reshape(per_channel)
        if not training:
            return g * scale
        # the batch statistics depend on x: dx = scale * (g - mean(g) - x_hat * mean(g * x_hat))
        return scale * (g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))

    edges = [(x, vjp_x)]
    if weight is not None:
        edges.append((weight, lambda g: (g * x_hat).sum(axis=axes)))
    if bias is not None:
        edges.append((bias, lambda g: g.sum(axis=axes)))
    return Tensor.from_op(out, edges, "batch_norm")


def dropout(x: Tensor, p: float, training: bool, rng: np.random.Generator) -> Tensor:
    """Zero each entry with probability p and scale the rest by 1 / (1 - p) (inverted dropout); identity in eval."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    keep = (rng.random(x.shape) >= p).astype(x.dtype) / (1 - p)
    return Tensor.from_op(x.data * keep, [(x, lambda g: g * keep)], "dropout")
