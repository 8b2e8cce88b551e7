"""Activation functions and the (log-)softmax, each forward with its vector-Jacobian product beside it."""

import numpy as np

from scratchnet.backend import kernel
from scratchnet.tensor import Tensor


def relu(x: Tensor) -> Tensor:
    """max(x, 0), with the subgradient 0 at x = 0 (as in PyTorch)."""
    out = kernel("relu_forward")(x.data)
    return Tensor.from_op(out, [(x, lambda g: kernel("relu_backward")(g, out))], "relu")


def tanh(x: Tensor) -> Tensor:
    out = np.tanh(x.data)
    return Tensor.from_op(out, [(x, lambda g: g * (1 - out * out))], "tanh")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) without overflow: e^-|z| never exceeds 1."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid(x: Tensor) -> Tensor:
    out = _sigmoid(x.data)
    return Tensor.from_op(out, [(x, lambda g: g * out * (1 - out))], "sigmoid")


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), stable for large |x|; its derivative is sigmoid(x)."""
    out = np.maximum(x.data, 0) + np.log1p(np.exp(-np.abs(x.data)))
    return Tensor.from_op(out, [(x, lambda g: g * _sigmoid(x.data))], "softplus")


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis`, shifted by the max so that exp never overflows.

    Its vector-Jacobian product is g - softmax(x) * sum(g).
    """
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return Tensor.from_op(out, [(x, lambda g: g - np.exp(out) * g.sum(axis=axis, keepdims=True))], "log_softmax")


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """e^x / sum(e^x) along `axis`; its vector-Jacobian product is p * (g - sum(g * p))."""
    shifted = np.exp(x.data - x.data.max(axis=axis, keepdims=True))
    out = shifted / shifted.sum(axis=axis, keepdims=True)
    return Tensor.from_op(out, [(x, lambda g: out * (g - (g * out).sum(axis=axis, keepdims=True)))], "softmax")
