"""The pooling kernels: the NumPy reference against plain loops, the Numba kernels against the reference over
Hypothesis-drawn shapes, windows, dtypes and layouts (with ties, -inf and NaN for max-pooling), max-pooling's
gradient landing exactly on the argmax, and average-pooling's backward as the adjoint of its forward."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet.kernels import pool, reference
from tests.gradcheck import layouts


@st.composite
def pool_problems(draw, max_side=9, special_values=True):
    """(x, kernel, stride, padding) with padding <= kernel // 2, as PyTorch requires. x has many ties (small
    integers), and, when `special_values`, some -inf and NaN entries. Half are the CNNs' 2x2 stride-2 unpadded
    windows, which max-pooling runs by a kernel of its own."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    if draw(st.booleans()):
        kernel, stride, padding = 2, 2, 0
    else:
        kernel = draw(st.integers(1, 5))
        stride, padding = draw(st.integers(1, 4)), draw(st.integers(0, kernel // 2))
    h = draw(st.integers(max(1, kernel - 2 * padding), max(1, kernel - 2 * padding) + max_side))
    w = draw(st.integers(max(1, kernel - 2 * padding), max(1, kernel - 2 * padding) + max_side))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-4, 4, (n, c, h, w)).astype(dtype)
    if special_values:
        x[rng.random(x.shape) < 0.05] = -np.inf
        x[rng.random(x.shape) < 0.02] = np.nan
    return draw(layouts(x)), kernel, stride, padding


def max_pool_definition(x, kernel, stride, padding):
    """Max-pooling written as loops: the first maximal pixel of each window (the first NaN, if any)."""
    n, c, h, w = x.shape
    oh, ow = reference.output_size(h, kernel, stride, padding), reference.output_size(w, kernel, stride, padding)
    y, argmax = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype), np.full((n, c, oh, ow), -1)
    for b, ch, i, j in np.ndindex(n, c, oh, ow):
        pixels = [(r, q) for r in range(i * stride - padding, i * stride - padding + kernel)
                  for q in range(j * stride - padding, j * stride - padding + kernel) if 0 <= r < h and 0 <= q < w]
        values = [x[b, ch, r, q] for r, q in pixels]
        if pixels:
            nans = [k for k, v in enumerate(values) if np.isnan(v)]
            best = nans[0] if nans else int(np.argmax(values))
            y[b, ch, i, j], argmax[b, ch, i, j] = values[best], pixels[best][0] * w + pixels[best][1]
    return y, argmax


def avg_pool_definition(x, kernel, stride, padding):
    n, c, h, w = x.shape
    oh, ow = reference.output_size(h, kernel, stride, padding), reference.output_size(w, kernel, stride, padding)
    y = np.zeros((n, c, oh, ow))
    for b, ch, i, j, di, dj in np.ndindex(n, c, oh, ow, kernel, kernel):
        r, q = i * stride - padding + di, j * stride - padding + dj
        if 0 <= r < h and 0 <= q < w:
            y[b, ch, i, j] += x[b, ch, r, q]
    return y / kernel**2


@settings(deadline=None, max_examples=40)
@given(problem=pool_problems(max_side=5))
def test_reference_max_pool_is_the_definition(problem):
    y, argmax = reference.max_pool2d_forward(*problem)
    want_y, want_argmax = max_pool_definition(*problem)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(argmax, want_argmax)


@settings(deadline=None, max_examples=40)
@given(problem=pool_problems(max_side=5, special_values=False))
def test_reference_avg_pool_is_the_definition(problem):
    np.testing.assert_allclose(reference.avg_pool2d_forward(*problem), avg_pool_definition(*problem), rtol=1e-6)


@settings(deadline=None, max_examples=60)
@given(problem=pool_problems(), seed=st.integers(0, 2**32 - 1))
def test_numba_max_pool_matches_the_reference(problem, seed):
    x, kernel, stride, padding = problem
    y, argmax = pool.max_pool2d_forward(x, kernel, stride, padding)
    want_y, want_argmax = reference.max_pool2d_forward(np.ascontiguousarray(x), kernel, stride, padding)
    assert y.dtype == x.dtype and argmax.dtype == np.int64 and y.flags.c_contiguous
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(argmax, want_argmax)
    gy = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    gx = pool.max_pool2d_backward(gy.T.copy().T, argmax, x.shape)
    np.testing.assert_allclose(gx, reference.max_pool2d_backward(gy, argmax, x.shape), rtol=1e-6, atol=1e-6)


@settings(deadline=None, max_examples=40)
@given(problem=pool_problems(special_values=False), seed=st.integers(0, 2**32 - 1))
def test_max_pool_gradient_lands_exactly_on_the_argmax(problem, seed):
    """With windows that do not overlap (stride >= kernel), each window's gradient arrives unchanged at its
    argmax pixel, which holds the window's max, and every other pixel gets exactly zero."""
    x, kernel, _, padding = problem
    offsets = np.random.default_rng(seed).permutation(x.size).reshape(x.shape) * 1e-3
    x = (x + offsets).astype(x.dtype)  # distinct values, in the drawn dtype
    y, argmax = pool.max_pool2d_forward(x, kernel, kernel, padding)
    gy = np.random.default_rng(seed + 1).uniform(1, 2, y.shape).astype(x.dtype)
    gx = pool.max_pool2d_backward(gy, argmax, x.shape).reshape(x.shape[0], x.shape[1], -1)
    flat = argmax.reshape(gx.shape[0], gx.shape[1], -1)
    np.testing.assert_array_equal(np.take_along_axis(gx, flat, axis=2), gy.reshape(flat.shape))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(gx.shape), flat, axis=2), y.reshape(flat.shape))
    assert np.count_nonzero(gx) == y.size


@settings(deadline=None, max_examples=60)
@given(problem=pool_problems(special_values=False), seed=st.integers(0, 2**32 - 1))
def test_numba_avg_pool_matches_the_reference(problem, seed):
    x, kernel, stride, padding = problem
    y = pool.avg_pool2d_forward(x, kernel, stride, padding)
    assert y.dtype == x.dtype and y.flags.c_contiguous
    np.testing.assert_allclose(y, reference.avg_pool2d_forward(np.ascontiguousarray(x), kernel, stride, padding),
                               rtol=1e-5, atol=1e-6)
    gy = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    gx = pool.avg_pool2d_backward(gy[::-1].copy()[::-1], x.shape, kernel, stride, padding)
    np.testing.assert_allclose(gx, reference.avg_pool2d_backward(gy, x.shape, kernel, stride, padding),
                               rtol=1e-5, atol=1e-6)


@settings(deadline=None, max_examples=40)
@given(problem=pool_problems(special_values=False), seed=st.integers(0, 2**32 - 1), use_numba=st.booleans())
def test_avg_pool_backward_is_the_adjoint_of_the_forward(problem, seed, use_numba):
    kernels = pool if use_numba else reference
    x, kernel, stride, padding = problem
    x = x.astype(np.float64)
    y = kernels.avg_pool2d_forward(x, kernel, stride, padding)
    gy = np.random.default_rng(seed).standard_normal(y.shape)
    gx = kernels.avg_pool2d_backward(gy, x.shape, kernel, stride, padding)
    scale = np.vdot(np.abs(x), np.abs(gx)) + np.vdot(np.abs(y), np.abs(gy))
    assert abs(np.vdot(y, gy) - np.vdot(x, gx)) <= 1e-12 * scale


@pytest.mark.parametrize("kernels", [pool, reference], ids=["numba", "reference"])
def test_a_window_entirely_in_the_padding_has_no_argmax(kernels):
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    y, argmax = kernels.max_pool2d_forward(x, 1, 1, 1)  # padding > kernel // 2: the border windows are empty
    np.testing.assert_array_equal(argmax[0, 0, 0], [-1, -1, -1, -1])
    np.testing.assert_array_equal(argmax[0, 0, 1:3, 1:3], [[0, 1], [2, 3]])
    assert np.all(y[0, 0, 0] == -np.inf)
    gx = kernels.max_pool2d_backward(np.ones_like(y), argmax, x.shape)
    np.testing.assert_array_equal(gx, np.ones_like(x))  # the empty windows' gradient goes nowhere


def test_wrong_shapes_are_refused():
    gy, argmax = np.ones((1, 2, 2, 2)), np.zeros((1, 2, 2, 2), dtype=np.int64)
    with pytest.raises(AssertionError):
        pool.max_pool2d_backward(gy, argmax[:, :1], (1, 2, 4, 4))
    with pytest.raises(AssertionError):
        pool.avg_pool2d_backward(gy, (1, 2, 7, 7), 2, 2, 0)
