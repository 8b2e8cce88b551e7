"""The Numba ReLU equals its NumPy reference, NaN, signed zeros and non-contiguous inputs included."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet.kernels import activation, reference


@settings(deadline=None, max_examples=50)
@given(seed=st.integers(0, 2**32 - 1), shape=st.lists(st.integers(1, 6), min_size=0, max_size=4),
       dtype=st.sampled_from([np.float32, np.float64]), transpose=st.booleans())
def test_relu_equals_the_reference(seed, shape, dtype, transpose):
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape), dtype)  # shape [] draws a 0-d array (a scalar loss, say)
    x.flat[:: 3] = rng.choice(np.array([0.0, -0.0, np.nan], dtype=dtype), size=x.flat[:: 3].shape)
    g = np.asarray(rng.standard_normal(shape), dtype)
    if transpose:
        x, g = x.T, g.T
    y = activation.relu_forward(x)
    np.testing.assert_array_equal(y, reference.relu_forward(x))
    assert y.dtype == dtype and y.shape == x.shape
    gx = activation.relu_backward(g, y)
    np.testing.assert_array_equal(gx, reference.relu_backward(g, y))
    assert gx.shape == x.shape


def test_relu_backward_refuses_a_gradient_of_another_shape():
    """The kernel reads y at every index of g: a shorter y would be read past its end."""
    with pytest.raises(AssertionError):
        activation.relu_backward(np.ones(6), np.ones(2))
