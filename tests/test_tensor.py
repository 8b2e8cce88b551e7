"""The autograd engine: accumulation, graph traversal, no_grad, detach, grad(), dtypes and broadcasting."""

import numpy as np
import pytest
from hypothesis import given, settings

import scratchnet as sn
import scratchnet.functional as F
from scratchnet.tensor import Tensor, unbroadcast
from tests.gradcheck import broadcast_pair


def test_a_diamond_graph_sums_the_gradients_of_both_paths():
    x = Tensor(np.array([2.0, -1.0]), requires_grad=True)
    y = x * x  # two uses of x in one op, and y used twice below
    z = (y + y * 3.0).sum()
    z.backward()
    np.testing.assert_allclose(x.grad, 8 * np.array([2.0, -1.0]))  # d(4 x^2)/dx


def test_backward_accumulates_into_grad_across_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [6.0, 6.0])


def test_each_leaf_owns_a_writeable_grad():
    x, y = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    x.sum().backward()  # the gradient of a sum is a broadcast view of one number
    v = np.arange(3.0)
    (x + y).backward(v)  # an add passes the same array to both of its inputs
    assert x.grad.flags.writeable and x.grad.flags.owndata and x.grad is not y.grad and y.grad is not v
    y.grad *= 2
    np.testing.assert_array_equal(v, np.arange(3.0))
    np.testing.assert_array_equal(x.grad, 1 + np.arange(3.0))
    z = Tensor(np.ones(3), requires_grad=True)
    z.sum().backward()
    z.grad *= 3  # a read-only view would raise here
    np.testing.assert_array_equal(z.grad, np.full(3, 3.0))


def test_no_grad_records_nothing_and_detach_cuts_the_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    with sn.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.is_leaf()
    assert sn.is_grad_enabled()
    z = (x.detach() * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad, np.ones(3))  # only the second factor carries a gradient


def test_grad_returns_input_gradients_without_touching_parameter_grads():
    w = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    w.grad = np.full((2, 2), 7.0)
    x = Tensor(np.array([[1.0, -1.0]]), requires_grad=True)
    (gx,) = sn.grad(F.linear(x, w).sum(), [x])
    np.testing.assert_allclose(gx, [[4.0, 6.0]])
    np.testing.assert_array_equal(w.grad, np.full((2, 2), 7.0))
    assert x.grad is None


def test_grad_runs_only_the_edges_that_lead_to_the_inputs():
    calls = []
    x = Tensor(np.ones(2), requires_grad=True)
    w = Tensor(np.ones(2), requires_grad=True)
    out = Tensor.from_op(x.data * w.data, [(x, lambda g: calls.append("x") or g * w.data),
                                           (w, lambda g: calls.append("w") or g * x.data)])
    sn.grad(out.sum(), [x])
    assert calls == ["x"]
    out.sum().backward()
    assert sorted(calls) == ["w", "x", "x"]


def test_grad_gives_zeros_for_an_unused_input_and_rejects_constants():
    x, unused = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    gx, gu = sn.grad((x * 2.0).sum(), [x, unused])
    np.testing.assert_array_equal(gu, np.zeros(3))
    with pytest.raises(ValueError, match="inputs\\[0\\]"):
        sn.grad((x * 2.0).sum(), [Tensor(np.ones(2))])


def test_a_long_chain_needs_no_recursion():
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_are_kept_through_ops_and_gradients(dtype):
    x = Tensor(np.ones((2, 3), dtype), requires_grad=True)
    y = (F.softplus(x * 0.5 + 1) ** 2).mean()
    y.backward()
    assert y.dtype == dtype and x.grad.dtype == dtype


def test_python_floats_default_to_float32_and_arrays_keep_their_dtype():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.zeros(2)).dtype == np.float64
    assert Tensor([1, 2]).dtype == np.int64


@settings(deadline=None, max_examples=50)
@given(shapes=broadcast_pair())
def test_unbroadcast_inverts_broadcasting(shapes):
    out_shape = np.broadcast_shapes(*shapes)
    g = np.random.default_rng(0).standard_normal(out_shape)
    for shape in shapes:  # the gradient of each operand: g summed over the axes broadcasting made for it
        expected = g.sum(axis=tuple(range(len(out_shape) - len(shape))))
        expected = expected.sum(axis=tuple(i for i, size in enumerate(shape) if size == 1), keepdims=True)
        reduced = unbroadcast(g, shape)
        assert reduced.shape == shape
        np.testing.assert_allclose(reduced, expected, rtol=1e-12, atol=1e-12)


def test_comparisons_give_boolean_tensors_without_gradient():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    mask = x > 1.5
    assert mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal((x == 2.0).data, [False, True, False])


def test_reflected_operators_with_numpy_arrays_return_tensors():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = np.array([3.0, 4.0]) - x
    assert isinstance(y, Tensor)
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad, -2 * (np.array([3.0, 4.0]) - [1.0, 2.0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalar_results_keep_their_dtype(dtype):
    """An op on 0-d tensors yields a NumPy scalar, which must not fall back to the float32 of Python floats."""
    loss = sn.Tensor(np.array(2.0, dtype=dtype)).mean()
    for result in (6.0 * loss, loss + 1.0, loss * loss, 1.0 - loss, loss / 3.0):
        assert result.dtype == dtype


def test_the_backward_uses_the_labels_condition_and_index_the_forward_saw():
    """Arrays that an op keeps for its backward are its own: a caller refilling a label, mask or index buffer
    between forward and backward (a preallocated batch) must not change the gradient."""
    z = sn.Tensor(np.zeros((1, 3)), requires_grad=True)
    labels, mask, index, listed = np.array([0]), np.array([True, False, False]), np.array([0, 0, 1]), [0, 0, 1]
    constant = np.array([1.0, 2.0, 3.0])
    outputs = [sn.functional.cross_entropy(z, labels), sn.functional.where(mask, z[0], 0.0).sum(),
               z[0][index].sum(), z[0][listed].sum(), (z[0] * constant).sum()]
    labels[0], mask[:], index[:], listed[:], constant[:] = 2, True, 2, [2, 2, 2], 7
    expected = [[-2 / 3, 1 / 3, 1 / 3], [1, 0, 0], [2, 1, 0], [2, 1, 0], [1, 2, 3]]
    for out, want in zip(outputs, expected, strict=True):
        (g,) = sn.grad(out, [z])
        np.testing.assert_allclose(g[0], want)


def test_an_empty_list_index_picks_nothing():
    z = sn.Tensor(np.ones((2, 3)), requires_grad=True)
    picked = z[[]]
    assert picked.shape == (0, 3) and z[[], 0].shape == (0,)
    (g,) = sn.grad(picked.sum(), [z])
    np.testing.assert_array_equal(g, np.zeros((2, 3)))


def test_grad_returns_a_writable_array_of_its_own_for_each_input():
    a, b = sn.Tensor(np.ones(3), requires_grad=True), sn.Tensor(np.ones(3), requires_grad=True)
    ga, gb = sn.grad(sn.functional.sum(a + b), [a, b])
    ga *= 5  # a sum's gradient is a broadcast view, and a + b passes the same array to both
    np.testing.assert_array_equal(gb, [1, 1, 1])


def test_the_gradient_of_a_zeroth_power_is_zero_even_at_zero():
    """d(x^0)/dx = 0 everywhere (x^0 = 1), not 0 * x^-1 = NaN at x = 0; other exponents are unchanged."""
    x = sn.Tensor(np.array([0.0, 2.0]), requires_grad=True)
    for exponent, want in ((0.0, [0, 0]), (2.0, [0, 4]), (3.0, [0, 12])):
        (g,) = sn.grad(F.sum(x**exponent), [x])
        np.testing.assert_array_equal(g, want)


def test_the_gradient_of_a_max_or_min_over_a_nan_goes_to_the_nan():
    x = sn.Tensor(np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]]), requires_grad=True)
    for op, other in ((F.max, [0, 0, 1]), (F.min, [1, 0, 0])):
        (g,) = sn.grad(op(x, axis=1).sum(), [x])
        np.testing.assert_array_equal(g, [[0, 1, 0], other])


def test_integer_tensors_meet_python_floats_and_divide_in_float32_as_in_pytorch():
    """uint8 pixels / 255 was float64, which a float32 model then refused."""
    pixels = Tensor(np.array([[0, 51, 255]], np.uint8))
    for result in (pixels / 255, pixels / 255.0, pixels * 0.5, 0.5 * pixels, pixels - 1.5,
                   Tensor(np.arange(3)) / Tensor(np.arange(1, 4))):
        assert result.dtype == np.float32, result.dtype
    np.testing.assert_allclose((pixels / 255).data, [[0.0, 0.2, 1.0]], rtol=1e-7)
    assert (pixels * np.float64(0.5)).dtype == np.float64  # a NumPy float64 keeps its dtype, as everywhere
    assert (pixels + 2).dtype == np.int64 and (Tensor(np.ones(2)) * 2).dtype == np.float64
    model = sn.nn.Linear(3, 2)
    assert model(pixels / 255).dtype == np.float32
    joined = F.concatenate([Tensor(np.ones(2, np.float32)), Tensor(np.arange(2))])
    assert joined.dtype == np.float32 and joined.data.tolist() == [1, 1, 0, 1]


def test_max_and_min_of_an_empty_batch_over_a_non_empty_axis():
    """As NumPy and torch: shape (0,); only a reduction over an empty axis has no value."""
    x = Tensor(np.zeros((0, 4), np.float32), requires_grad=True)
    out = F.max(x, axis=1)
    assert out.shape == (0,) and F.min(x, axis=1).shape == (0,)
    out.sum().backward()
    assert x.grad.shape == (0, 4)
    assert F.losses.margin(Tensor(np.zeros((0, 3))), np.zeros(0, int), reduction="none").shape == (0,)
    with pytest.raises(ValueError, match="over an empty axis"):
        F.max(x, axis=0)


@pytest.mark.parametrize("layer", ["linear", "conv2d"])
def test_a_layer_keeps_its_own_copy_of_an_array_input_for_the_backward(layer):
    """The weight gradient reads the input in the backward: refilling the caller's buffer in between (a loader's,
    an attack's iterate) gave a wrong gradient (zeros here)."""
    rng = np.random.default_rng(0)
    model = sn.nn.Linear(3, 2) if layer == "linear" else sn.nn.Conv2d(1, 2, 3)
    buffer = rng.random((2, 3) if layer == "linear" else (2, 1, 4, 4), dtype=np.float32)
    model(buffer).sum().backward()
    want = model.weight.grad.copy()
    model.weight.grad = None
    out = model(buffer)
    buffer[...] = 0
    out.sum().backward()
    np.testing.assert_array_equal(model.weight.grad, want)
