"""Datasets as arrays, and the minibatch loader that feeds training.

A `BatchLoader` is deterministic and resumable: epoch e's shuffle and augmentation draw only from
`streams.generator(seed, "shuffle", e)`, so a run restarted at epoch e sees exactly the batches an uninterrupted
run would, with no generator state to save.
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np

from scratchnet import streams


class ArrayDataset:
    """Examples as two aligned arrays: inputs `x` and labels `y`, example i being (x[i], y[i])."""

    def __init__(self, x, y):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"x and y need a first axis counting examples, got x {x.shape} and y {y.shape}")
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same length, got x with {len(x)} (shape {x.shape}) "
                             f"and y with {len(y)} (shape {y.shape})")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        """(x[index], y[index]): one example for an int, a batch for a slice or an index array."""
        return self.x[index], self.y[index]

    def subset(self, indices) -> ArrayDataset:
        """A new dataset of the examples at `indices` (1-d integers, in that order; the data is copied)."""
        indices = np.asarray(indices)
        if indices.ndim != 1 or (indices.dtype.kind not in "iu" and indices.size):
            raise ValueError(f"indices must be a 1-d array of integers, got {indices.dtype} {indices.shape}")
        indices = indices.astype(np.intp)
        return ArrayDataset(self.x[indices], self.y[indices])

    def __repr__(self) -> str:
        return f"ArrayDataset(x: {self.x.dtype} {list(self.x.shape)}, y: {self.y.dtype} {list(self.y.shape)})"


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class BatchLoader:
    """Iterate over `dataset` in minibatches of (x_batch, y_batch) NumPy arrays.

    shuffle: a fresh permutation per epoch; drop_last: skip the final short batch; augment: a callable
    `(x_batch, rng) -> x_batch` (see augment.py), given the epoch's generator. `loader.epoch(e)` iterates over
    epoch e; `iter(loader)` over the next epoch of an internal counter that starts at 0.
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 augment=None):
        if not (hasattr(dataset, "x") and hasattr(dataset, "y")):
            raise TypeError(f"dataset must have arrays .x and .y, got {type(dataset).__name__}")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be a callable (x_batch, rng) -> x_batch or None, got {augment!r}")
        self.dataset = dataset
        self.batch_size = _check_count("batch_size", batch_size, 1)
        self.seed = _check_count("seed", seed, 0)  # seeding takes non-negative ints only
        self.shuffle, self.drop_last, self.augment = bool(shuffle), bool(drop_last), augment
        self._next_epoch = 0

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch(self, e: int):
        """The iterator of epoch `e`'s batches; it depends on (seed, e) only."""
        # checked now, not at the first next()
        return self._batches(streams.generator(self.seed, "shuffle", _check_count("epoch", e, 0)))

    def stream(self, e: int):
        """An endless iterator of batches that draws independently of epoch e's order: passes over the data
        shuffled by `streams.generator(seed, "stream", e, k)` for k = 1, 2, ... (Entropy-SGD's inner steps draw
        from it, each a new minibatch). It depends on (seed, e) only, so a resumed run draws the same batches."""
        _check_count("epoch", e, 0)
        if len(self) == 0:  # endless passes over no batches would never yield
            raise ValueError(f"stream: the loader has no batches ({len(self.dataset)} examples, batch_size "
                             f"{self.batch_size}, drop_last={self.drop_last})")
        return itertools.chain.from_iterable(self._batches(streams.generator(self.seed, "stream", e, k))
                                             for k in itertools.count(1))

    def _batches(self, rng: np.random.Generator):
        """One pass over the data, shuffled and augmented by `rng`."""
        n = len(self.dataset)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            # Fancy indexing copies, so an augmentation that works in place never alters the dataset.
            x, y = self.dataset.x[index], self.dataset.y[index]
            if self.augment is not None:
                x = self.augment(x, rng)
            yield x, y

    def __iter__(self):
        iterator = self.epoch(self._next_epoch)
        self._next_epoch += 1
        return iterator
