"""Modules: parameter discovery, modes, state, BatchNorm statistics, Dropout, init, blocks and models."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import scratchnet as sn
import scratchnet.functional as F
from scratchnet import nn
from scratchnet.tensor import Tensor


def test_parameters_are_found_in_attributes_lists_and_nested_modules():
    block = nn.PreActBlock(4, 8, stride=2, rng=0)
    names = [name for name, _ in block.named_parameters()]
    assert names == ["bn1.weight", "bn1.bias", "conv1.weight", "bn2.weight", "bn2.bias", "conv2.weight",
                     "shortcut.weight"]
    assert [name for name, _ in block.named_buffers()] == [
        "bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"]
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert model.num_parameters() == 3 * 4 + 4 + 4 * 2 + 2


def test_modules_and_parameters_are_found_inside_dicts_and_nested_lists():
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = {"digits": nn.Linear(3, 10), "parity": [nn.Linear(3, 2), [nn.BatchNorm1d(2)]]}
            self.scales = [nn.Parameter(np.ones(2)), nn.Parameter(np.zeros(2))]
            self.sizes = {"in": 3, "out": [10, 2]}  # plain values are not members

        def forward(self, x):
            return self.heads["digits"](x)

    model = Heads()
    assert [n for n, _ in model.named_modules()] == ["", "heads.digits", "heads.parity.0", "heads.parity.1.0"]
    assert [n for n, _ in model.named_parameters()] == [
        "heads.digits.weight", "heads.digits.bias", "heads.parity.0.weight", "heads.parity.0.bias",
        "heads.parity.1.0.weight", "heads.parity.1.0.bias", "scales.0", "scales.1"]
    assert [n for n, _ in model.named_buffers()] == ["heads.parity.1.0.running_mean", "heads.parity.1.0.running_var"]
    model.eval()
    assert not model.heads["parity"][1][0].training
    state = model.state_dict()
    model.scales[0].data[...] = 5.0
    model.load_state_dict(state)
    np.testing.assert_array_equal(model.scales[0].data, 1.0)


def test_a_list_that_also_holds_a_layers_parameter_renames_nothing_and_a_cycle_ends():
    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.groups = {"decay": [None]}
            self.fc = nn.Linear(3, 2)
            self.groups["decay"][0] = self.fc.weight  # a parameter group, as an optimizer's
            self.loop = [self.fc]
            self.loop.append(self.loop)  # a list inside itself

    model = Grouped()
    assert list(model.state_dict()) == ["fc.weight", "fc.bias"]
    assert [n for n, _ in model.named_modules()] == ["", "fc"]


def test_a_layer_used_twice_has_its_parameters_and_buffers_listed_and_updated_once():
    shared, norm = nn.Linear(2, 2), nn.BatchNorm1d(2)
    model = nn.Sequential(shared, norm, nn.ReLU(), shared, norm)
    assert [n for n, _ in model.named_modules()] == ["", "0", "1", "2"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var"]
    tied = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    tied.layers[1].weight = tied.layers[0].weight  # one Parameter in two layers
    assert [n for n, _ in tied.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    before = shared.weight.data.copy()
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    sn.optim.SGD(model.parameters(), lr=0.1).step()
    np.testing.assert_allclose(shared.weight.data, before - 0.1, rtol=1e-6)


def test_train_and_eval_reach_every_submodule():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2), nn.Dropout(0.5)))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_eval_mode_gives_each_module_back_its_own_mode_even_after_an_error():
    frozen = nn.BatchNorm1d(4)
    model = nn.Sequential(nn.Linear(3, 4), frozen, nn.Dropout(0.5))
    frozen.eval()
    before = [m.training for m in model.modules()]
    assert before == [True, True, False, True]
    with pytest.raises(RuntimeError), nn.eval_mode(model):
        assert not any(m.training for m in model.modules())
        raise RuntimeError
    assert [m.training for m in model.modules()] == before


def test_state_dict_round_trip_restores_outputs_exactly():
    a, b = nn.models.mnist_cnn(seed=1), nn.models.mnist_cnn(seed=2)
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    assert not np.array_equal(a(x).data, b(x).data)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_state_dict_holds_copies():
    model = nn.Linear(2, 2)
    state = model.state_dict()
    state["weight"][...] = 0
    assert np.any(model.weight.data != 0)


def test_batchnorm_trains_on_batch_statistics_and_evaluates_with_running_ones():
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm2d(3, momentum=0.5)
    x = (rng.standard_normal((8, 3, 4, 4)) * 2 + 5).astype(np.float32)
    y = bn(x).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-5)
    bn.eval()
    single = bn(x[:1]).data  # eval mode: each example alone gives what it gives in the batch
    np.testing.assert_allclose(single, bn(x).data[:1], rtol=1e-6)
    expected = (x - bn.running_mean[None, :, None, None]) / np.sqrt(bn.running_var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(single, expected[:1], rtol=1e-5, atol=1e-6)


def test_dropout_scales_keeps_expectation_and_is_reproducible_from_its_counter():
    drop = nn.Dropout(0.25, seed=3)
    x = np.ones((200, 100), np.float32)
    first = drop(x).data
    assert set(np.unique(first)) <= {0.0, np.float32(1 / 0.75)}
    assert abs(first.mean() - 1) < 0.02
    state = drop.state_dict()
    second = drop(x).data
    assert not np.array_equal(first, second)
    drop.load_state_dict(state)
    np.testing.assert_array_equal(drop(x).data, second)
    np.testing.assert_array_equal(drop.eval()(x).data, x)


def test_dropout_layers_without_a_seed_drop_different_units_and_follow_manual_seed():
    x = np.ones((4, 50), np.float32)
    nn.init.manual_seed(7)
    first, second = nn.Dropout(0.5), nn.Dropout(0.5)
    assert not np.array_equal(first(x).data, second(x).data)
    nn.init.manual_seed(7)
    again = nn.Dropout(0.5)
    np.testing.assert_array_equal(again(x).data, nn.Dropout(0.5, seed=first.seed)(x).data)
    assert again.seed == first.seed


@pytest.mark.parametrize("init, variance", [
    (lambda shape, rng: nn.init.kaiming_normal(shape, rng), lambda fi, fo: 2 / fi),
    (lambda shape, rng: nn.init.kaiming_uniform(shape, rng), lambda fi, fo: 2 / fi),
    (lambda shape, rng: nn.init.xavier_uniform(shape, rng), lambda fi, fo: 2 / (fi + fo)),
    (lambda shape, rng: nn.init.xavier_normal(shape, rng), lambda fi, fo: 2 / (fi + fo)),
])
def test_initializations_have_their_variance(init, variance):
    shape = (256, 64, 3, 3)
    w = init(shape, np.random.default_rng(0))
    fan_in, fan_out = 64 * 9, 256 * 9
    assert w.dtype == np.float32 and abs(w.mean()) < 3 * np.sqrt(variance(fan_in, fan_out) / w.size)
    np.testing.assert_allclose(w.var(), variance(fan_in, fan_out), rtol=0.02)


def test_the_same_seed_gives_the_same_model_and_manual_seed_resets_the_default():
    np.testing.assert_array_equal(nn.models.mlp([4, 3, 2], seed=5)[1].weight.data,
                                  nn.models.mlp([4, 3, 2], seed=5)[1].weight.data)
    nn.manual_seed(11)
    first = nn.Linear(3, 3).weight.data
    nn.manual_seed(11)
    np.testing.assert_array_equal(first, nn.Linear(3, 3).weight.data)


def test_linear_layer_matches_numpy():
    layer = nn.Linear(5, 3, rng=0)
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-6)


@settings(deadline=None, max_examples=10)
@given(in_ch=st.integers(1, 4), out_ch=st.integers(1, 4), stride=st.integers(1, 2), size=st.integers(3, 8))
@example(in_ch=3, out_ch=3, stride=2, size=5)  # a stride change alone: the projection of x
@example(in_ch=2, out_ch=3, stride=1, size=5)  # a channel change: the projection of the activated input
def test_preact_block_shapes_and_identity_shortcut(in_ch, out_ch, stride, size):
    block = nn.PreActBlock(in_ch, out_ch, stride, rng=0)
    x = np.random.default_rng(0).standard_normal((2, in_ch, size, size)).astype(np.float32)
    out = block(x)
    assert out.shape == (2, out_ch, (size - 1) // stride + 1, (size - 1) // stride + 1)
    assert (block.shortcut is None) == (in_ch == out_ch and stride == 1)
    block.conv2.weight.data[...] = 0  # zeroing the residual branch leaves the shortcut alone
    if block.shortcut is None:
        np.testing.assert_array_equal(block(x).data, x)
    else:  # of the activated input where the channel count changes, of x itself where only the stride does
        read = F.relu(block.bn1(x)) if in_ch != out_ch else x
        np.testing.assert_array_equal(block(x).data, block.shortcut(read).data)


def test_models_give_logits_of_the_right_shape_and_train_in_float64():
    cnn = nn.models.mnist_cnn(seed=0, dropout=0.2)
    assert cnn(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, 10)
    madry = nn.models.madry_mnist_cnn(seed=0)
    assert madry(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, 10)
    assert sum(p.data.size for p in madry.parameters()) == 3_274_634  # Madry et al.'s MNIST challenge network
    model = nn.models.mlp([6, 5, 3], activation="tanh").to(np.float64)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 6)))
    loss = F.cross_entropy(model(x), np.array([0, 1, 2, 0]))
    loss.backward()
    assert all(p.grad.dtype == np.float64 for p in model.parameters())


def test_zero_grad_and_requires_grad_toggle():
    model = nn.Linear(2, 2)
    F.linear(Tensor(np.ones((1, 2), np.float32)), model.weight, model.bias).sum().backward()
    assert model.weight.grad is not None
    model.zero_grad()
    assert model.weight.grad is None
    model.requires_grad_(False)
    assert not model(np.ones((1, 2), np.float32)).requires_grad
    assert sn.is_grad_enabled()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_empty_batch_passes_forward_backward_and_the_attack_step(backend):
    from scratchnet.backend import kernel, use_backend

    model = nn.models.mnist_cnn(channels=(4, 8), hidden=16, dropout=0.5, seed=0)  # conv, pool, flatten, dropout
    x = np.zeros((0, 1, 28, 28), np.float32)
    with use_backend(backend):
        xt = Tensor(x, requires_grad=True)
        logits = model(xt)
        logits.sum().backward()
        assert logits.shape == (0, 10) and xt.grad.shape == x.shape
        for name in ("linf_step", "l2_step"):
            assert kernel(name)(x, x, x, np.zeros(0), 0.1, 0.0, 1.0).shape == x.shape
        for name in ("linf_project", "l2_project"):
            assert kernel(name)(x, x, 0.1, 0.0, 1.0).shape == x.shape


def test_load_state_dict_refuses_another_dtype_or_shape_by_name():
    model = nn.Sequential(nn.Linear(3, 2))
    state = model.state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['0.weight'\] has shape \(2, 3\) and dtype float64"):
        model.load_state_dict({**state, "0.weight": state["0.weight"].astype(np.float64)})
    with pytest.raises(ValueError, match=r"state_dict\['0.bias'\] has shape \(3,\)"):
        model.load_state_dict({**state, "0.bias": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"missing \['0.bias'\], unexpected \['0.b'\]"):
        model.load_state_dict({"0.weight": state["0.weight"], "0.b": state["0.bias"]})


def test_the_dropout_masks_of_mnist_cnn_follow_its_seed():
    """The two Dropout layers were seeded 1 and 2 whatever the model's seed: every run drew the same masks."""
    def dropout_seeds(seed):
        model = nn.models.mnist_cnn(channels=(2, 2), hidden=4, dropout=0.5, seed=seed)
        return [m.seed for m in model.modules() if isinstance(m, nn.Dropout)]

    first, again, other = dropout_seeds(0), dropout_seeds(0), dropout_seeds(1)
    assert len(first) == 2 and first[0] != first[1]
    assert first == again and set(first).isdisjoint(other)
