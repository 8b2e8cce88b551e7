"""Data augmentation: random changes to a training batch that keep each image's label.

Each augmentation is a callable `(x_batch, rng) -> x_batch` on NCHW batches; it draws its randomness from
the generator it is given (the loader's per-epoch generator), so augmented epochs are reproducible. The input
batch is never modified.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _check_batch(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images [N, C, H, W], got shape {x.shape}")
    return x


class RandomCrop:
    """Zero-pad every image by `padding` pixels on each side, then crop back to its size at an offset drawn
    uniformly per image: a random shift by up to `padding` pixels in each direction (the standard augmentation
    of CIFAR-10 training, e.g. Madry et al. 2018 with padding 4)."""

    def __init__(self, padding: int = 4):
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an int >= 0, got {padding!r}")
        self.padding = padding

    def __call__(self, x, rng: np.random.Generator) -> np.ndarray:
        x = _check_batch(x)
        p = self.padding
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        dy, dx = rng.integers(0, 2 * p + 1, size=(2, len(x)))
        # windows[n, c, i, j] is the H x W crop of image n, channel c at offset (i, j): a view, no copy.
        # Picking one (i, j) per image with fancy indexing crops the whole batch without a Python loop.
        windows = sliding_window_view(padded, x.shape[2:], axis=(2, 3))
        return windows[np.arange(len(x)), :, dy, dx]

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding})"


class HorizontalFlip:
    """Mirror each image left to right with probability `p`, independently per image."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def choose(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The boolean mask of the images to flip: what `__call__` draws first from `rng`."""
        return rng.random(n) < self.p

    def __call__(self, x, rng: np.random.Generator) -> np.ndarray:
        x = _check_batch(x)
        flip = self.choose(len(x), rng)
        out = x.copy()
        out[flip] = x[flip, ..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"HorizontalFlip(p={self.p})"


class Compose:
    """Apply `transforms` in order, all drawing from the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for i, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] must be a callable (x_batch, rng) -> x_batch, got {t!r}")

    def __call__(self, x, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"
