"""Weight initialization (He et al. 2015, "Delving deep into rectifiers"; Glorot & Bengio 2010).

Randomness is explicit: every function takes `rng`, a seed or an `np.random.Generator`. Without one, layers draw
from a module-wide generator that `manual_seed` resets, as `torch.manual_seed` does.
"""

import math

import numpy as np

_default_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reset the generator that layers use when they are given no `rng`."""
    global _default_rng
    _default_rng = np.random.default_rng(seed)


def as_rng(rng) -> np.random.Generator:
    """A Generator from a Generator, a seed, or None (the module-wide generator)."""
    if rng is None:
        return _default_rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight [out, in] or [out, in, kh, kw]: inputs and outputs feeding one unit."""
    if len(shape) < 2:
        raise ValueError(f"fan-in needs a weight of at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def _gain(nonlinearity: str) -> float:
    gains = {"linear": 1.0, "tanh": 5 / 3, "relu": math.sqrt(2.0), "sigmoid": 1.0}
    if nonlinearity not in gains:
        raise ValueError(f"nonlinearity must be one of {sorted(gains)}, got {nonlinearity!r}")
    return gains[nonlinearity]


def _fan(shape, mode: str) -> int:
    fan_in, fan_out = fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def kaiming_normal(shape, rng=None, nonlinearity: str = "relu", mode: str = "fan_in", dtype=np.float32):
    """N(0, gain^2 / fan): keeps the activations' (fan_in) or gradients' (fan_out) variance through ReLU layers."""
    fan = _fan(shape, mode)
    return (as_rng(rng).standard_normal(shape) * _gain(nonlinearity) / math.sqrt(fan)).astype(dtype)


def kaiming_uniform(shape, rng=None, nonlinearity: str = "relu", mode: str = "fan_in", dtype=np.float32):
    """U(-b, b) with b = gain * sqrt(3 / fan): the uniform with the variance of `kaiming_normal`."""
    fan = _fan(shape, mode)
    bound = _gain(nonlinearity) * math.sqrt(3.0 / fan)
    return as_rng(rng).uniform(-bound, bound, shape).astype(dtype)


def xavier_uniform(shape, rng=None, gain: float = 1.0, dtype=np.float32):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return as_rng(rng).uniform(-bound, bound, shape).astype(dtype)


def xavier_normal(shape, rng=None, gain: float = 1.0, dtype=np.float32):
    """N(0, gain^2 * 2 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(shape)
    return (as_rng(rng).standard_normal(shape) * gain * math.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def default_uniform(shape, fan_in: int, rng=None, dtype=np.float32):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear and Conv2d weights and biases."""
    bound = 1.0 / math.sqrt(fan_in)
    return as_rng(rng).uniform(-bound, bound, shape).astype(dtype)
