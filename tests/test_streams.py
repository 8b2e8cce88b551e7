"""Named random streams (scratchnet/streams.py): the generators of different purposes never share their bits."""

import itertools

import numpy as np
import pytest

from scratchnet import streams


def test_counters_alone_would_collide():
    """Why the tags exist: NumPy ignores trailing zeros, so step 0 of epoch 3 keyed [seed, 3, 0] would be epoch 3's
    shuffle [seed, 3], and Dropout's fourth call [seed, 3] as well."""
    np.testing.assert_array_equal(np.random.default_rng([0, 3, 0]).random(4), np.random.default_rng([0, 3]).random(4))


@pytest.mark.parametrize("seed", [0, 7])
def test_no_two_streams_share_a_generator(seed):
    """Every stream at every small key (counters 0 to 2, zeros included) draws its own bits, and none draws those
    of a key without a tag."""
    draws = {}
    for name, counters in streams.COUNTERS.items():
        for key in itertools.product(range(3), repeat=len(counters)):
            first = tuple(streams.generator(seed, name, *key).integers(0, 2**63, 2))
            assert first not in draws, (name, key, draws.get(first))
            draws[first] = (name, key)
    untagged = {tuple(np.random.default_rng([seed, *key]).integers(0, 2**63, 2))
                for length in range(1, 4) for key in itertools.product(range(3), repeat=length)}
    assert not untagged & set(draws)


def test_a_stream_is_deterministic_and_unknown_names_are_refused():
    a, b = streams.generator(1, "step", 2, 5), streams.generator(1, "step", 2, 5)
    np.testing.assert_array_equal(a.random(3), b.random(3))
    with pytest.raises(ValueError, match="unknown random stream 'steps'"):
        streams.generator(1, "steps", 2)
    with pytest.raises(ValueError, match="keyed by"):
        streams.generator(1, "step", 2)  # one counter short: [seed, tag, 2] would be [seed, tag, 2, 0]
