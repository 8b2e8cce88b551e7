"""The configurable wide ResNet (Huang et al. 2021): parameter counts, shapes, initialization, gradients, BatchNorm
modes and bad input."""

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
import scratchnet.functional as F
from scratchnet.backend import use_backend
from scratchnet.nn import WideResNet, wide_resnet_parameters
from scratchnet.nn.blocks import PreActBlock


@pytest.mark.parametrize("depths, widths, millions, exact", [
    ((5, 5, 5), (10, 10, 10), 46.16, 46_160_474),  # WRN-34-10
    ((5, 5, 5), (12, 12, 12), 66.46, None),        # WRN-34-12
    ((5, 5, 5), (20, 20, 8), 68.12, None),         # WRN-34-R
    ((4, 4, 4), (10, 10, 10), 36.48, None),        # WRN-28-10 (36.5M in Huang S. et al. 2023)
])
def test_parameter_counts_match_the_reference_for_cifar10(depths, widths, millions, exact):
    count = wide_resnet_parameters(depths, widths, in_channels=3, num_classes=10)
    assert round(count / 1e6, 2) == millions
    if exact is not None:
        assert count == exact


configs = st.tuples(st.lists(st.integers(1, 2), min_size=1, max_size=3), st.integers(1, 3), st.integers(1, 4),
                    st.integers(1, 3), st.integers(1, 5), st.booleans())


@settings(deadline=None, max_examples=30)
@given(configs, st.data())
def test_closed_form_count_equals_the_instantiated_count(config, data):
    depths, base, in_channels, _, classes, unit_strides = config
    widths = data.draw(st.lists(st.integers(1, 3), min_size=len(depths), max_size=len(depths)))
    strides = [1] * len(depths) if unit_strides else None
    model = WideResNet(depths, widths, classes, in_channels, base, strides, rng=0)
    assert wide_resnet_parameters(depths, widths, in_channels, classes, base, strides) == model.num_parameters()


@settings(deadline=None, max_examples=15)
@given(st.integers(1, 3), st.integers(3, 19), st.integers(3, 19), st.integers(1, 4))
def test_logits_have_the_right_shape_for_any_input_size(in_channels, h, w, classes):
    model = WideResNet((1, 1, 1), (1, 2, 1), classes, in_channels, base_channels=2, rng=0)
    x = np.random.default_rng(0).random((2, in_channels, h, w), dtype=np.float32)
    with use_backend("numpy"):
        assert model(x).shape == (2, classes)


def test_blocks_shortcuts_and_channels_follow_the_configuration():
    model = WideResNet((2, 1, 2), (1, 2, 1), base_channels=4, rng=0)
    assert [b.conv2.out_channels for b in model.blocks] == [4, 4, 16, 16, 16]
    assert [b.conv1.stride for b in model.blocks] == [1, 1, 2, 2, 1]
    # stage 1 keeps 4 channels at stride 1: identity; the first block of stages 2 and 3 strides: 1x1 projection
    assert [b.shortcut is not None for b in model.blocks] == [False, False, True, True, False]


def test_reference_initialization():
    model = WideResNet((2, 2, 2), (4, 4, 4), base_channels=16, rng=3)
    for block in model.blocks:
        for conv in (block.conv1, block.conv2):
            std = np.sqrt(2 / (9 * conv.out_channels))
            assert abs(conv.weight.data.std() / std - 1) < 0.05
        assert np.all(block.bn1.weight.data == 1) and np.all(block.bn1.bias.data == 0)
    assert np.all(model.fc.bias.data == 0)
    bound = 1 / np.sqrt(model.fc.in_features)
    assert np.abs(model.fc.weight.data).max() <= bound and np.abs(model.fc.weight.data).max() > 0.9 * bound


def test_seed_reproduces_the_model_and_each_layer_keeps_its_weights_when_another_stage_changes():
    a = WideResNet((1, 1, 1), (1, 1, 1), base_channels=4, rng=7)
    b = WideResNet((1, 1, 1), (1, 1, 1), base_channels=4, rng=7)
    c = WideResNet((1, 2, 1), (1, 1, 3), base_channels=4, rng=7)
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[name])
    np.testing.assert_array_equal(a.stem.weight.data, c.stem.weight.data)
    np.testing.assert_array_equal(a.blocks[0].conv1.weight.data, c.blocks[0].conv1.weight.data)
    np.testing.assert_array_equal(a.blocks[1].conv2.weight.data, c.blocks[1].conv2.weight.data)
    assert not np.array_equal(a.stem.weight.data, WideResNet((1, 1, 1), (1, 1, 1), base_channels=4,
                                                             rng=8).stem.weight.data)


def test_a_seeded_model_leaves_the_global_generator_alone():
    """The stem drew its (then replaced) default weights from the global generator that `manual_seed` resets, so
    building a seeded WideResNet changed every later unseeded layer."""
    sn.nn.manual_seed(0)
    alone = sn.nn.Linear(3, 2).weight.data
    sn.nn.manual_seed(0)
    WideResNet((1,), (1,), base_channels=4, rng=123)
    np.testing.assert_array_equal(sn.nn.Linear(3, 2).weight.data, alone)


def test_every_layer_and_block_draws_from_its_own_generator(monkeypatch):
    """The stem, each block, each conv of a block and the classifier are seeded by distinct keys, whatever the
    root seed (keys of varying length collided below a root of 2**32, where NumPy seeds [root, s, j, 0] as
    [root, s, j]: a block and its first conv drew the same bits)."""
    module, keys = sys.modules[WideResNet.__module__], []
    stream = module._stream

    def recording(root, *key):
        keys.append(key)
        return stream(root, *key)

    monkeypatch.setattr(module, "_stream", recording)
    model = WideResNet((2, 1), (1, 2), base_channels=4, rng=0)
    # the stem, each block and its two or three convs, the classifier
    assert len(keys) == 1 + sum(3 + (block.shortcut is not None) for block in model.blocks) + 1 == 12
    for root in (5, 2**62 + 1):
        firsts = {tuple(stream(root, *key).integers(0, 2**63, 2)) for key in keys}
        assert len(firsts) == len(keys), root


def test_every_parameter_gets_a_gradient():
    model = WideResNet((2, 1, 1), (1, 1, 2), num_classes=3, in_channels=1, base_channels=2, rng=0).to(np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 1, 9, 9)), rng.integers(0, 3, 4)
    with use_backend("numpy"):
        F.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.all(np.isfinite(p.grad)), name
        assert np.abs(p.grad).max() > 0, name


def test_batchnorm_uses_batch_statistics_in_training_and_running_ones_in_eval():
    model = WideResNet((1, 1, 1), (1, 1, 1), num_classes=3, in_channels=1, base_channels=2, rng=0)
    x = np.random.default_rng(1).random((6, 1, 8, 8), dtype=np.float32)
    with use_backend("numpy"):
        model.eval()
        before = {k: v for k, v in model.state_dict().items() if "running" in k}
        full = model(x).data
        np.testing.assert_allclose(model(x[:2]).data, full[:2], rtol=1e-5, atol=1e-6)  # batch-independent
        assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())  # stats untouched
        model.train()
        train_full = model(x).data
        assert not np.allclose(model(x[:2]).data, train_full[:2], atol=1e-4)  # depends on the batch
        assert not np.array_equal(before["bn.running_mean"], model.bn.running_mean)  # stats updated


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="depths and widths"):
        WideResNet((1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="widths"):
        WideResNet((1, 1, 1), (1, 0, 1))
    with pytest.raises(ValueError, match="depths"):
        wide_resnet_parameters((1, 0, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="strides"):
        WideResNet((1, 1, 1), (1, 1, 1), strides=(1, 2))
    with pytest.raises(TypeError, match="num_classes"):
        wide_resnet_parameters(num_classes=2.5)
    model = WideResNet((1, 1, 1), (1, 1, 1), in_channels=3, base_channels=2, rng=0)
    with pytest.raises(ValueError, match="x must be"):
        model(np.zeros((1, 1, 8, 8), np.float32))


def test_public_name():
    assert sn.nn.WideResNet is WideResNet


def test_the_blocks_of_a_network_draw_different_dropout_masks():
    """Each PreActBlock seeds its Dropout from the block's own generator: with one seed for all, every block of
    the same shape would drop the same units at every step."""
    rng = np.random.default_rng(0)
    first, second = (PreActBlock(4, 4, dropout=0.5, rng=rng).train() for _ in range(2))
    x = sn.Tensor(np.ones((2, 4, 5, 5), np.float32))
    assert first.dropout.seed != second.dropout.seed
    assert not np.array_equal(first.dropout(x).data, second.dropout(x).data)
    plain = PreActBlock(4, 4, rng=np.random.default_rng(1))
    dropping = PreActBlock(4, 4, dropout=0.5, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(plain.conv2.weight.data, dropping.conv2.weight.data)  # the same initialization
