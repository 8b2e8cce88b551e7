"""Every differentiable op against central differences at every index, in float64, over Hypothesis-drawn shapes,
broadcasts and memory layouts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
import scratchnet.functional as F
from tests.gradcheck import arrays, broadcast_pair, check_gradients, shapes

SETTINGS = settings(deadline=None, max_examples=25)

# name: (op, its NumPy definition, the domains of the inputs)
BINARY = {
    "add": (F.add, np.add, {}),
    "sub": (F.sub, np.subtract, {}),
    "mul": (F.mul, np.multiply, {}),
    "div": (F.div, np.divide, {"b": dict(low=0.5, high=2.0)}),
    "pow": (F.pow, np.power, {"a": dict(low=0.5, high=2.0)}),
    "maximum": (F.maximum, np.maximum, {"a": dict(grid=(0.2, 0.1)), "b": dict(grid=(0.2, 0.0))}),  # never tied
    "minimum": (F.minimum, np.minimum, {"a": dict(grid=(0.2, 0.1)), "b": dict(grid=(0.2, 0.0))}),
}


@pytest.mark.parametrize("name", BINARY)
@SETTINGS
@given(data=st.data())
def test_binary_ops_with_broadcasting(name, data):
    op, definition, domains = BINARY[name]
    shape_a, shape_b = data.draw(broadcast_pair())
    a = data.draw(arrays(shape_a, **domains.get("a", {})))
    b = data.draw(arrays(shape_b, **domains.get("b", {})))
    check_gradients(op, a, b, reference=definition)


def _log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


UNARY = {
    "neg": (F.neg, np.negative, {}),
    "exp": (F.exp, np.exp, {}),
    "log": (F.log, np.log, dict(low=0.2, high=3.0)),
    "sqrt": (F.sqrt, np.sqrt, dict(low=0.2, high=3.0)),
    "abs": (F.abs, np.abs, dict(away_from=0.0)),
    "relu": (F.relu, lambda x: np.maximum(x, 0), dict(away_from=0.0)),
    "tanh": (F.tanh, np.tanh, {}),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), dict(low=-6, high=6)),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x)), dict(low=-6, high=6)),
    "clip": (lambda x: F.clip(x, -1.0, 0.5), lambda x: np.clip(x, -1.0, 0.5),
             dict(grid=(0.2, 0.05))),  # the grid never meets the bounds
    "pow_scalar": (lambda x: x**3, lambda x: x * x * x, {}),
    "sqrt_by_pow": (lambda x: x**0.5, np.sqrt, dict(low=0.2, high=3.0)),
    "rpow": (lambda x: 2.0**x, np.exp2, {}),
    "log_softmax": (lambda x: F.log_softmax(x, axis=-1), _log_softmax, {}),
    "softmax": (lambda x: F.softmax(x, axis=0), lambda x: np.exp(x) / np.exp(x).sum(axis=0), {}),
}


@pytest.mark.parametrize("name", UNARY)
@SETTINGS
@given(data=st.data())
def test_unary_ops(name, data):
    op, definition, domain = UNARY[name]
    check_gradients(op, data.draw(arrays(data.draw(shapes(1, 3)), **domain)), reference=definition)


@SETTINGS
@given(data=st.data())
def test_reductions_over_axes(data):
    shape = data.draw(shapes(1, 3))
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                               st.sets(st.integers(0, len(shape) - 1), min_size=1).map(tuple)))
    keepdims = data.draw(st.booleans())
    x = data.draw(arrays(shape, distinct=True))
    for op in (F.sum, F.mean, F.max, F.min):
        check_gradients(lambda t, op=op: op(t, axis, keepdims), x)


def test_max_splits_the_gradient_among_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]])
    t = sn.Tensor(x, requires_grad=True)
    F.max(t, axis=1).sum().backward()
    np.testing.assert_array_equal(t.grad, [[0, 0.5, 0.5], [1, 0, 0]])


@SETTINGS
@given(data=st.data())
def test_shape_ops(data):
    shape = data.draw(shapes(2, 4))
    x = data.draw(arrays(shape))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    check_gradients(lambda t: F.reshape(t, (-1,) + shape[2:]), x)
    check_gradients(lambda t: F.transpose(t, perm), x)
    check_gradients(lambda t: F.flatten(t, 1), x)
    widths = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape]
    check_gradients(lambda t: F.pad(t, widths, value=0.5), x, reference=lambda a: np.pad(a, widths,
                                                                                       constant_values=0.5))


@SETTINGS
@given(data=st.data())
def test_indexing_basic_advanced_and_masks(data):
    shape = data.draw(shapes(2, 3, min_side=2))
    x = data.draw(arrays(shape))
    rows = np.asarray(data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=6)))  # repeats allowed
    mask = x > 0
    check_gradients(lambda t: t[1:, ::-1], x)
    check_gradients(lambda t: t[rows], x)
    check_gradients(lambda t: t[rows, 0], x)
    check_gradients(lambda t: t[mask], x)
    check_gradients(lambda t: t[..., None, 0], x)


@SETTINGS
@given(data=st.data())
def test_concatenate_and_stack(data):
    shape = data.draw(shapes(1, 3))
    axis = data.draw(st.integers(0, len(shape) - 1))
    other = tuple(n + 1 if i == axis else n for i, n in enumerate(shape))
    a, b, c = data.draw(arrays(shape)), data.draw(arrays(other)), data.draw(arrays(shape))
    check_gradients(lambda p, q: F.concatenate([p, q], axis=axis), a, b)
    check_gradients(lambda p, q: F.stack([p, q], axis=-1), a, c)


@SETTINGS
@given(data=st.data())
def test_where(data):
    shape_a, shape_b = data.draw(broadcast_pair())
    a, b = data.draw(arrays(shape_a)), data.draw(arrays(shape_b))
    condition = data.draw(arrays(np.broadcast_shapes(shape_a, shape_b))) > 0
    check_gradients(lambda p, q: F.where(condition, p, q), a, b)


@SETTINGS
@given(data=st.data(), a_1d=st.booleans(), b_1d=st.booleans(), batch=st.sampled_from([(), (2,), (3, 1)]))
def test_matmul_with_vectors_and_broadcast_batches(data, a_1d, b_1d, batch):
    n, k, m = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    a = data.draw(arrays((k,) if a_1d else batch + (n, k)))
    b = data.draw(arrays((k,) if b_1d else (batch[-1:] if batch else ()) + (k, m)))
    check_gradients(F.matmul, a, b)


@SETTINGS
@given(data=st.data(), leading=st.sampled_from([(3,), (2, 3), ()]))
def test_linear(data, leading):
    n_in, n_out = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    x, w, b = data.draw(arrays(leading + (n_in,))), data.draw(arrays((n_out, n_in))), data.draw(arrays((n_out,)))
    check_gradients(F.linear, x, w, b)
    check_gradients(lambda p, q: F.linear(p, q), x, w)


@SETTINGS
@given(data=st.data(), stride=st.integers(1, 2), padding=st.integers(0, 2), bias=st.booleans())
def test_conv2d(data, stride, padding, bias):
    n, c, f = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    k = data.draw(st.integers(1, 3))
    h, w = data.draw(st.integers(k, 5)), data.draw(st.integers(k, 5))
    x, weight = data.draw(arrays((n, c, h, w))), data.draw(arrays((f, c, k, k)))
    if bias:
        check_gradients(lambda p, q, r: F.conv2d(p, q, r, stride, padding), x, weight, data.draw(arrays((f,))))
    else:
        check_gradients(lambda p, q: F.conv2d(p, q, None, stride, padding), x, weight)


@SETTINGS
@given(data=st.data(), k=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 1))
def test_pooling(data, k, stride, padding):
    padding = min(padding, k // 2)
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    h, w = data.draw(st.integers(k, 5)), data.draw(st.integers(k, 5))
    x = data.draw(arrays((n, c, h, w), distinct=True))
    check_gradients(lambda t: F.max_pool2d(t, k, stride, padding), x)
    check_gradients(lambda t: F.avg_pool2d(t, k, stride, padding), x)
    check_gradients(F.global_avg_pool2d, x)


@SETTINGS
@given(data=st.data(), training=st.booleans(), images=st.booleans())
def test_batch_norm(data, training, images):
    channels = data.draw(st.integers(1, 3))
    shape = (data.draw(st.integers(2, 4)), channels) + ((2, 3) if images else ())
    x, gamma, beta = data.draw(arrays(shape)), data.draw(arrays((channels,))), data.draw(arrays((channels,)))
    mean, var = data.draw(arrays((channels,))), data.draw(arrays((channels,), low=0.5, high=2.0))

    def bn(p, q, r):  # fresh copies: training updates the running statistics in place
        return F.batch_norm(p, mean.copy(), var.copy(), q, r, training=training)

    check_gradients(bn, x, gamma, beta, rtol=1e-4)


@SETTINGS
@given(data=st.data())
def test_dropout_with_a_fixed_mask(data):
    x = data.draw(arrays(data.draw(shapes(1, 3))))
    check_gradients(lambda t: F.dropout(t, 0.4, True, np.random.default_rng(7)), x)


@SETTINGS
@given(data=st.data(), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_losses(data, reduction):
    batch, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 5))
    logits, other = data.draw(arrays((batch, classes))), data.draw(arrays((batch, classes)))
    y = np.asarray(data.draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch)))
    check_gradients(lambda z: F.cross_entropy(z, y, reduction), logits)
    check_gradients(lambda p, q: F.kl_div(p, q, reduction), logits, other)
    check_gradients(lambda p, q: F.mse(p, q, reduction), logits, other)
    z_y = logits[np.arange(batch), y][:, None]
    if np.all(np.abs(1.0 - z_y + logits) > 0.05):  # away from the hinge's kink
        hinge = np.maximum(0, 1.0 - z_y + logits).sum(axis=1) - 1.0  # the true class's own term is 1
        reduce = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
        check_gradients(lambda z: F.multi_margin(z, y, 1.0, reduction), logits,
                        reference=lambda z: reduce(hinge / classes))


@SETTINGS
@given(data=st.data(), targeted=st.booleans())
def test_attack_losses_margin_and_dlr(data, targeted):
    """The attack losses away from their kinks: no near ties among the sorted logits that pick the terms."""
    batch, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(4, 6))
    logits = data.draw(arrays((batch, classes), distinct=True))
    y = np.asarray(data.draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch)))
    target = (y + 1) % classes if targeted else None
    rows, ranked = np.arange(batch), -np.sort(-logits, axis=1)
    others = np.where(np.arange(classes) == y[:, None], -np.inf, logits)
    if targeted:  # shared/specs/attacks-and-training.md: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
        dlr = -(logits[rows, y] - logits[rows, target]) / (ranked[:, 0] - (ranked[:, 2] + ranked[:, 3]) / 2 + 1e-12)
    else:  # -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)
        dlr = -(logits[rows, y] - others.max(axis=1)) / (ranked[:, 0] - ranked[:, 2] + 1e-12)
    check_gradients(lambda z: F.losses.dlr(z, y, target=target, reduction="none"), logits, reference=lambda z: dlr)
    check_gradients(lambda z: F.losses.margin(z, y, kappa=np.inf, reduction="sum"), logits,
                    reference=lambda z: np.sum(others.max(axis=1) - logits[rows, y]))
    # a finite kappa, away from every gap (the kink of min(gap, kappa)), that clips the largest gap
    gaps = np.sort(others.max(axis=1) - logits[rows, y])
    kappa = (gaps[-1] + gaps[-2]) / 2 if batch > 1 and gaps[-1] - gaps[-2] > 0.05 else gaps[-1] - 0.5
    check_gradients(lambda z: F.losses.margin(z, y, kappa=kappa, reduction="sum"), logits,
                    reference=lambda z: np.minimum(gaps, kappa).sum())
