"""NumPy reference for the ReLU (the oracle of kernels/activation.py)."""

import numpy as np


def relu_forward(x):
    """max(x, 0); NaN stays NaN."""
    return np.where(x <= 0, np.zeros((), x.dtype), x)


def relu_backward(g, y):
    """g where the output y = relu(x) is positive (x > 0), else 0: the subgradient 0 at x = 0, as PyTorch."""
    return np.where(y > 0, g, np.zeros((), g.dtype))
