"""The conv2d kernels: the NumPy reference against the definition written as plain loops, the Numba kernels
against the reference over Hypothesis-drawn shapes, strides, paddings, dtypes and memory layouts, and the two
backward kernels as the adjoints of the forward."""

import contextlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet.kernels import conv, conv_planes, reference
from tests.gradcheck import layouts

TOLERANCE = {np.float32: 1e-4, np.float64: 1e-10}


@st.composite
def conv_problems(draw, max_batch=4, max_channels=6, max_side=9):
    """(x, w, gy, stride, padding): a random problem whose windows fit, the arrays in drawn dtypes and layouts."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    k = draw(st.integers(1, 7))
    kw = draw(st.sampled_from([k, draw(st.integers(1, 7))]))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    h = draw(st.integers(max(1, k - 2 * padding), max(1, k - 2 * padding) + max_side))
    w = draw(st.integers(max(1, kw - 2 * padding), max(1, kw - 2 * padding) + max_side))
    n, c, f = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    oh, ow = reference.output_size(h, k, stride, padding), reference.output_size(w, kw, stride, padding)
    x, wt, gy = (rng.standard_normal(shape).astype(dtype) for shape in ((n, c, h, w), (f, c, k, kw), (n, f, oh, ow)))
    return draw(layouts(x)), draw(layouts(wt)), draw(layouts(gy)), stride, padding


def assert_matches(ours, expected, scale):
    """ours == expected up to float reassociation: relative to `scale`, the size of the terms summed."""
    assert ours.dtype == expected.dtype and ours.shape == expected.shape and ours.flags.c_contiguous
    bound = TOLERANCE[expected.dtype.type] * max(float(np.max(scale, initial=0.0)), np.finfo(expected.dtype).tiny)
    np.testing.assert_array_less(np.abs(ours.astype(np.float64) - expected), bound)


def all_three(kernels, x, w, gy, stride, padding):
    return (
        kernels.conv2d_forward(x, w, stride, padding),
        kernels.conv2d_backward_input(gy, w, x.shape, stride, padding),
        kernels.conv2d_backward_weight(gy, x, w.shape, stride, padding),
    )


def definition(x, w, gy, stride, padding):
    """The forward and both gradients straight from the definition of a zero-padded cross-correlation."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    y = np.zeros(gy.shape)
    gx, gw = np.zeros(x.shape), np.zeros(w.shape)
    for b, o, i, j, ch, di, dj in np.ndindex(n, f, gy.shape[2], gy.shape[3], c, kh, kw):
        r, q = i * stride + di - padding, j * stride + dj - padding
        if 0 <= r < h and 0 <= q < wd:
            y[b, o, i, j] += w[o, ch, di, dj] * x[b, ch, r, q]
            gx[b, ch, r, q] += gy[b, o, i, j] * w[o, ch, di, dj]
            gw[o, ch, di, dj] += gy[b, o, i, j] * x[b, ch, r, q]
    return y, gx, gw


def magnitudes(x, w, gy, stride, padding):
    """The three results computed on absolute values: a bound on the size of the terms each output sums."""
    return all_three(reference, np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                     np.abs(gy).astype(np.float64), stride, padding)


@settings(deadline=None, max_examples=30)
@given(problem=conv_problems(max_batch=2, max_channels=2, max_side=4))
def test_reference_is_the_definition(problem):
    x, w, gy, stride, padding = (a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in problem)
    triples = zip(all_three(reference, x, w, gy, stride, padding), definition(x, w, gy, stride, padding),
                  magnitudes(x, w, gy, stride, padding), strict=True)
    for ours, expected, scale in triples:
        assert_matches(ours, expected, scale)


# Each forward path as the constants that force it, of conv.py and of conv_planes.py
FORWARD_PATHS = {"as chosen": ({}, {}), "row expansion": ({"DIRECT_KDIM": 0}, {}),
                 "direct": ({"DIRECT_KDIM": 10**9}, {}),
                 "direct, chunks of 5": ({"DIRECT_KDIM": 10**9}, {"DIRECT_CHUNK": 5})}


def patched(path, threads=None, **conv_constants):
    """A context in which the forward takes `path`, conv.py has `conv_constants`, and with `threads` both files'
    kernels split their work over that many threads."""
    stack = contextlib.ExitStack()
    for module, constants in zip((conv, conv_planes), FORWARD_PATHS[path], strict=True):
        for name, value in (constants | (conv_constants if module is conv else {})).items():
            stack.enter_context(mock.patch.object(module, name, value))
        if threads:
            stack.enter_context(mock.patch.object(module, "get_num_threads", lambda: threads))
    return stack


@settings(deadline=None, max_examples=80)
@given(problem=conv_problems(), w_bytes=st.sampled_from([conv.W_BYTES, 1]), path=st.sampled_from(list(FORWARD_PATHS)))
def test_numba_kernels_match_the_reference(problem, w_bytes, path):
    # W_BYTES = 1 cuts the filters into blocks of RJ: the second and the partial last block that a WideResNet's
    # 640 filters run in, at the drawn sizes. The forward runs by either path whatever the receptive field, and
    # the direct path's chunks of 5 positions end inside and between the output rows.
    x, w, gy, stride, padding = problem
    expected = all_three(reference, np.ascontiguousarray(x), np.ascontiguousarray(w), np.ascontiguousarray(gy),
                         stride, padding)
    with patched(path, W_BYTES=w_bytes):
        ours = all_three(conv, x, w, gy, stride, padding)
    for got, want, scale in zip(ours, expected, magnitudes(x, w, gy, stride, padding), strict=True):
        assert_matches(got, want, scale)


@pytest.mark.parametrize(
    "shape",
    [
        (2, 100, 6, 5, 3, 1, 1),  # C * 9 > 768: the forward's reduction runs in chunks
        (3, 7, 90, 6, 3, 1, 1),  # F * 9 > 768: so does the input gradient's
        (5, 3, 5, 4, 3, 1, 1),  # small planes: the weight gradient puts images side by side
        (2, 1, 4, 28, 5, 1, 2),  # one input channel, as at the MNIST input: the input gradient's single filter
        (2, 1, 90, 7, 3, 1, 1),  # ... with F * 9 > 768: single-filter columns in chunks
        (2, 16, 32, 16, 1, 2, 0),  # the WideResNet's 1x1 stride-2 shortcut
        (3, 8, 4, 9, 2, 4, 1),  # stride above the kernel size: rows no tap reaches
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", ["row expansion", "direct"])
@pytest.mark.parametrize("threads", [None, 1])  # one thread: the weight gradient's groups of images, on any machine
def test_numba_kernels_on_blocking_edge_cases(shape, dtype, path, threads):
    n, c, f, side, k, stride, padding = shape
    rng = np.random.default_rng(0)
    o = reference.output_size(side, k, stride, padding)
    x, w, gy = (rng.standard_normal(s).astype(dtype) for s in ((n, c, side, side), (f, c, k, k), (n, f, o, o)))
    with patched(path, threads):
        ours = all_three(conv, x, w, gy, stride, padding)
    triples = zip(ours, all_three(reference, x, w, gy, stride, padding), magnitudes(x, w, gy, stride, padding),
                  strict=True)
    for ours, want, scale in triples:
        assert_matches(ours, want, scale)


@pytest.mark.parametrize(("n", "c", "f"), [(0, 3, 2), (2, 0, 2), (2, 3, 0), (0, 0, 0), (2, 70, 0)])
def test_numba_kernels_on_an_empty_batch_channel_or_filter_axis(n, c, f):
    """Empty axes give empty or zero results, as the reference's; the blocking divided by a zero length (70
    channels: the forward's row expansion)."""
    x, w, gy = np.ones((n, c, 5, 5)), np.ones((f, c, 3, 3)), np.ones((n, f, 5, 5))
    for ours, want in zip(all_three(conv, x, w, gy, 1, 1), all_three(reference, x, w, gy, 1, 1), strict=True):
        assert ours.shape == want.shape and ours.dtype == want.dtype
        np.testing.assert_array_equal(ours, want)


@settings(deadline=None, max_examples=40)
@given(problem=conv_problems(), use_numba=st.booleans())
def test_backward_kernels_are_adjoints_of_the_forward(problem, use_numba):
    """<conv(x, w), gy> = <x, backward_input(gy, w)> = <w, backward_weight(gy, x)>: each gradient kernel is the
    transpose of the forward as a linear map of x, and of w."""
    kernels = conv if use_numba else reference
    x, w, gy, stride, padding = (a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in problem)
    y, gx, gw = all_three(kernels, x, w, gy, stride, padding)
    products = [np.vdot(y, gy), np.vdot(x, gx), np.vdot(w, gw)]
    scale = np.vdot(magnitudes(x, w, gy, stride, padding)[0], np.abs(gy))
    np.testing.assert_allclose(products, products[0], rtol=0, atol=1e-10 * max(scale, 1e-300))


def test_wrong_shapes_are_refused_before_any_memory_is_touched():
    x, w = np.zeros((2, 3, 8, 8)), np.zeros((4, 3, 3, 3))
    gy = np.zeros((2, 4, 6, 6))
    with pytest.raises(AssertionError):
        conv.conv2d_forward(x, np.zeros((4, 2, 3, 3)), 1, 0)
    with pytest.raises(AssertionError):
        conv.conv2d_backward_input(gy[:, :, :5], w, x.shape, 1, 0)
    with pytest.raises(AssertionError):
        conv.conv2d_backward_weight(gy, x[:, :, :7], w.shape, 1, 0)
    with pytest.raises(AssertionError):
        conv.conv2d_forward(x.astype(np.float32), w, 1, 0)
