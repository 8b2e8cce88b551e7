"""Named random streams: every generator a training run draws from is `generator(seed, name, *key)`, that is
`np.random.default_rng([seed, tag(name), *key])`. So is each layer's initialization in a WideResNet.

A run keys its generators by counters (the loader's epoch, fit's step, Dropout's call, Entropy-SGD's step), so
that a resumed run draws exactly what an uninterrupted one would. Counters alone collide: [seed, 3] is epoch 3's
shuffle and Dropout's fourth call alike, and NumPy's seeding ignores trailing zeros, so [seed, e, 0] (step 0 of
epoch e) is the very generator of [seed, e]. The same bits drawn twice make two draws that should be independent
depend on each other. A tag per purpose, the second word of every key, keeps the streams apart whatever follows,
and each stream takes a fixed number of counters, so that within it no key is another one with zeros appended.
"""

import numpy as np

# Each purpose and the counters of its key: the loader's epoch shuffles and Entropy-SGD's minibatch stream (passes
# over the data), a training step's randomness (an attack's start), Entropy-SGD's thermal noise, Dropout's masks,
# and a layer's initial weights keyed by its place in a network (stage, block, layer within the block).
COUNTERS = {"shuffle": ("epoch",), "stream": ("epoch", "pass"), "step": ("epoch", "step"), "noise": ("step",),
            "dropout": ("call",), "layer": ("stage", "block", "layer")}


def tag(name: str) -> int:
    """The name's bytes read as one integer ("step" is 0x73746570): fixed, and unlike any small counter."""
    if name not in COUNTERS:
        raise ValueError(f"unknown random stream {name!r}; the streams are {tuple(COUNTERS)}")
    return int.from_bytes(name.encode(), "big")


def generator(seed: int, name: str, *key: int) -> np.random.Generator:
    """The generator of stream `name` at `key`, one int per counter of COUNTERS[name], for a run's `seed`."""
    stream_tag = tag(name)
    if len(key) != len(COUNTERS[name]):
        raise ValueError(f"stream {name!r} is keyed by {COUNTERS[name]}, got {key}")
    return np.random.default_rng([seed, stream_tag, *key])
