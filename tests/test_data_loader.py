"""ArrayDataset, BatchLoader and the augmentations: coverage, determinism, resumability, and exact outputs."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet import streams
from scratchnet.data import ArrayDataset, BatchLoader, Compose, HorizontalFlip, RandomCrop


def numbered(n: int) -> ArrayDataset:
    """Example i is (x = [i, -i], y = i), so a batch says which examples it holds and whether x matches y."""
    return ArrayDataset(np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32), np.arange(n))


def images(n=6, c=2, h=5, w=4) -> np.ndarray:
    return np.arange(n * c * h * w, dtype=np.float32).reshape(n, c, h, w) + 1  # no zeros: padding stands out


def batches(iterator) -> list:
    return [(x.copy(), y.copy()) for x, y in iterator]


# ---------------------------------------------------------------- ArrayDataset

def test_array_dataset_checks_lengths_and_indexes():
    with pytest.raises(ValueError, match=r"same length, got x with 3 \(shape \(3, 2\)\) and y with 2"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="first axis"):
        ArrayDataset(np.float32(1), np.zeros(1))
    ds = numbered(5)
    assert len(ds) == 5 and ds[3][1] == 3 and ds[3][0].tolist() == [3, -3]
    part = ds.subset([4, 0, 2])
    assert part.y.tolist() == [4, 0, 2] and part.x[:, 0].tolist() == [4, 0, 2]
    part.x[:] = 99
    assert ds.x[4, 0] == 4  # a subset is a copy
    assert len(ds.subset([])) == 0
    with pytest.raises(ValueError, match="indices must be a 1-d array of integers, got float64"):
        ds.subset([0.5])


# ---------------------------------------------------------------- BatchLoader

@settings(deadline=None, max_examples=150)
@given(n=st.integers(0, 60), batch_size=st.integers(1, 70), drop_last=st.booleans(), shuffle=st.booleans(),
       seed=st.integers(0, 2**32), epoch=st.integers(0, 1000))
def test_each_example_appears_exactly_once_per_epoch(n, batch_size, drop_last, shuffle, seed, epoch):
    loader = BatchLoader(numbered(n), batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
    got = batches(loader.epoch(epoch))
    assert len(got) == len(loader) == (n // batch_size if drop_last else -(-n // batch_size))
    assert all(len(y) == batch_size for _, y in got[:-1])
    ys = np.concatenate([y for _, y in got]) if got else np.zeros(0, int)
    assert len(set(ys.tolist())) == len(ys) == (n // batch_size * batch_size if drop_last else n)
    assert set(ys.tolist()) <= set(range(n))
    for x, y in got:
        np.testing.assert_array_equal(x[:, 0], y)  # inputs stay paired with their labels
    if not shuffle:
        assert ys.tolist() == list(range(len(ys)))


def test_same_seed_and_epoch_give_identical_batches_and_epochs_differ():
    augment = Compose([RandomCrop(padding=1), HorizontalFlip()])
    ds = ArrayDataset(images(n=40, c=1, h=4, w=4), np.arange(40))
    a, b = (BatchLoader(ds, 16, seed=3, augment=augment) for _ in range(2))
    for e in (0, 5):
        for (xa, ya), (xb, yb) in zip(a.epoch(e), b.epoch(e), strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    order = [np.concatenate([y for _, y in a.epoch(e)]) for e in range(3)]
    assert not np.array_equal(order[0], order[1]) and not np.array_equal(order[1], order[2])
    other_seed = np.concatenate([y for _, y in BatchLoader(ds, 16, seed=4).epoch(0)])
    assert not np.array_equal(order[0], other_seed)


def test_iterating_runs_successive_epochs_and_resumes_from_the_epoch_alone():
    ds = numbered(30)
    loader = BatchLoader(ds, 7, seed=11)
    runs = [batches(iter(loader)) for _ in range(3)]
    resumed = BatchLoader(ds, 7, seed=11)  # a fresh process that starts at epoch 2
    for (x, y), (rx, ry) in zip(runs[2], resumed.epoch(2), strict=True):
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(x, rx)
    assert not np.array_equal(runs[0][0][1], runs[1][0][1])


@settings(deadline=None, max_examples=50)
@given(n=st.integers(1, 30), batch_size=st.integers(1, 12), seed=st.integers(0, 2**32), epoch=st.integers(0, 100))
def test_a_stream_runs_endless_passes_independent_of_the_epoch_order(n, batch_size, seed, epoch):
    loader = BatchLoader(numbered(n), batch_size, seed=seed)
    passes = 3
    drawn = list(itertools.islice(loader.stream(epoch), passes * len(loader)))
    again = list(itertools.islice(BatchLoader(numbered(n), batch_size, seed=seed).stream(epoch), passes * len(loader)))
    for k in range(passes):  # each pass is one epoch-like sweep over every example
        ys = np.concatenate([y for _, y in drawn[k * len(loader):(k + 1) * len(loader)]])
        assert sorted(ys.tolist()) == list(range(n))
    assert all(np.array_equal(y, ry) for (_, y), (_, ry) in zip(drawn, again, strict=True))  # (seed, epoch) only
    if n >= 12:  # the stream's order is not the epoch's (12! orders: a coincidence has probability 2e-9)...
        first_pass = np.concatenate([y for _, y in drawn[:len(loader)]])
        assert not np.array_equal(first_pass, np.concatenate([y for _, y in loader.epoch(epoch)]))
        # ...nor that of fit's generator for step 1 of the epoch (test_streams: no two streams share their bits)
        assert not np.array_equal(first_pass, streams.generator(seed, "step", epoch, 1).permutation(n))


def test_augmentation_never_alters_the_dataset():
    ds = numbered(10)

    def zero_in_place(x, rng):
        x *= 0
        return x

    for x, _ in BatchLoader(ds, 4, shuffle=False, augment=zero_in_place).epoch(0):
        assert not x.any()
    assert ds.x[:, 0].tolist() == list(range(10))


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
    ({"batch_size": -3}, "batch_size must be an int >= 1, got -3"),
    ({"batch_size": 2.5}, "batch_size must be an int >= 1, got 2.5"),
    ({"batch_size": True}, "batch_size must be an int >= 1, got True"),
    ({"batch_size": 4, "seed": -1}, "seed must be an int >= 0, got -1"),
])
def test_bad_loader_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchLoader(numbered(5), **kwargs)


def test_bad_epochs_datasets_and_augmentations_are_refused():
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -1"):
        BatchLoader(numbered(5), 2).epoch(-1)
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -2"):
        BatchLoader(numbered(5), 2).stream(-2)
    with pytest.raises(ValueError, match="no batches"):
        BatchLoader(numbered(3), 4, drop_last=True).stream(0)
    with pytest.raises(TypeError, match=r"dataset must have arrays .x and .y, got ndarray"):
        BatchLoader(np.zeros(5), 2)
    with pytest.raises(TypeError, match="augment must be a callable"):
        BatchLoader(numbered(5), 2, augment="flip")


# ---------------------------------------------------------------- augmentations

@settings(deadline=None, max_examples=100)
@given(n=st.integers(1, 5), c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       padding=st.integers(0, 3), seed=st.integers(0, 2**32))
def test_random_crop_is_a_crop_of_the_padded_image(n, c, h, w, padding, seed):
    x = images(n, c, h, w)
    before = x.copy()
    out = RandomCrop(padding)(x, np.random.default_rng(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(x, before)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    offsets = [(i, j) for i in range(2 * padding + 1) for j in range(2 * padding + 1)]
    for k in range(n):
        assert any(np.array_equal(out[k], padded[k, :, i:i + h, j:j + w]) for i, j in offsets)


def test_random_crop_draws_every_offset_per_image():
    x = images(n=400, c=1, h=6, w=6)
    out = RandomCrop(padding=2)(x, np.random.default_rng(0))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    seen = {(i, j) for k in range(len(x)) for i in range(5) for j in range(5)
            if np.array_equal(out[k], padded[k, :, i:i + 6, j:j + 6])}
    assert seen == {(i, j) for i in range(5) for j in range(5)}
    np.testing.assert_array_equal(RandomCrop(padding=0)(x, np.random.default_rng(0)), x)


def test_horizontal_flip_flips_exactly_the_chosen_images():
    x = images(n=64)
    flip = HorizontalFlip(p=0.3)
    chosen = flip.choose(len(x), np.random.default_rng(7))
    out = flip(x, np.random.default_rng(7))
    assert 0 < chosen.sum() < len(x)
    np.testing.assert_array_equal(out[chosen], x[chosen][..., ::-1])
    np.testing.assert_array_equal(out[~chosen], x[~chosen])
    np.testing.assert_array_equal(HorizontalFlip(p=0.0)(x, np.random.default_rng(0)), x)
    np.testing.assert_array_equal(HorizontalFlip(p=1.0)(x, np.random.default_rng(0)), x[..., ::-1])


def test_compose_applies_in_order_with_one_generator():
    x = images()
    crop, flip = RandomCrop(padding=1), HorizontalFlip()
    rng = np.random.default_rng(5)
    expected = flip(crop(x, rng), rng)
    np.testing.assert_array_equal(Compose([crop, flip])(x, np.random.default_rng(5)), expected)


def test_bad_augmentation_arguments_are_refused():
    with pytest.raises(ValueError, match="padding must be an int >= 0, got -1"):
        RandomCrop(padding=-1)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        HorizontalFlip(p=1.5)
    with pytest.raises(ValueError, match=r"x must be a batch of images \[N, C, H, W\], got shape \(5, 4\)"):
        RandomCrop()(np.zeros((5, 4)), np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"transforms\[1\] must be a callable"):
        Compose([RandomCrop(), 3])
