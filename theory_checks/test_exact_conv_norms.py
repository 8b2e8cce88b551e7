"""Liang & Huang 2021, the exact l1 and l-inf norms of a 2-D multi-channel conv layer.

Theorem. Let A be the matrix of the conv x -> conv2d(x, W) (W [C_out, C_in, kh, kw], stride s, zero padding p,
C_in x h x w inputs). Then

    ||A||_inf <= max_o sum_{c, i, j} |W[o, c, i, j]|,
    ||A||_1   <= max_{c, r1, r2} sum_o sum_{i = r1, j = r2 (mod s)} |W[o, c, i, j]|,

with equality for every W exactly when the input is large enough: for l-inf, when along each axis some output
window lies inside the unpadded input (kernel + s ceil(p / s) - p <= size); for l1, when along each axis every
residue class of taps mod s is the set of taps that reach some input pixel (with s = 1: size >= 2 kernel - 1 - 2p).
Otherwise the formula is strictly above the norm for some W. (The paper states the large-input case; the
conditions are derived in shared/specs/conv-norms.md, Sec. 1.)

Checked against the explicit matrix A in float64 over drawn channels, kernel sizes, strides, paddings and inputs.
"""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet.kernels.reference.norms import conv_matrix
from scratchnet.norms import Norm, conv_l1_norm, conv_linf_norm, l1_formula_is_exact, linf_formula_is_exact

RTOL = 1e-12


@st.composite
def conv_layers(draw):
    """(shape of W, stride, padding, (h, w)) of a conv with at least one output."""
    kh = draw(st.integers(1, 5))
    kw = draw(st.sampled_from([kh, draw(st.integers(1, 5))]))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    h = draw(st.integers(max(1, kh - 2 * padding), 10))
    w = draw(st.integers(max(1, kw - 2 * padding), 10))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), kh, kw), stride, padding, (h, w)


def explicit_norms(w, stride, padding, size):
    """(||A||_1, ||A||_inf): the largest absolute column and row sums of the explicit conv matrix."""
    a = np.abs(conv_matrix(w, size, stride, padding))
    return a.sum(axis=0).max(), a.sum(axis=1).max()


@settings(deadline=None, max_examples=200)
@given(conv_layers(), st.integers(0, 2**32 - 1))
def test_formulas_equal_the_norm_when_exact_and_bound_it_otherwise(layer, seed):
    shape, stride, padding, size = layer
    w = np.random.default_rng(seed).standard_normal(shape)
    l1, linf = explicit_norms(w, stride, padding, size)
    for formula, norm in ((conv_l1_norm(w, stride, padding, size), l1),
                          (conv_linf_norm(w, stride, padding, size), linf)):
        if formula.exact:
            assert abs(formula.value - norm) <= RTOL * norm
        else:
            assert norm <= formula.value * (1 + RTOL)


@settings(deadline=None, max_examples=200)
@given(conv_layers())
def test_the_formulas_are_strictly_above_for_some_weight_when_not_exact(layer):
    """The flags are tight: not exact means some W (ones on one tap class) gets a strictly smaller norm."""
    (f, c, kh, kw), stride, padding, size = layer
    ones = np.ones((f, c, kh, kw))
    linf = conv_linf_norm(ones, stride, padding, size)
    assert (explicit_norms(ones, stride, padding, size)[1] < linf.value) != linf.exact
    gaps = []
    for r1 in range(min(stride, kh)):
        for r2 in range(min(stride, kw)):
            w = np.zeros((f, c, kh, kw))
            w[:, :, r1::stride, r2::stride] = 1.0
            gaps.append(conv_l1_norm(w, stride, padding, size).value - explicit_norms(w, stride, padding, size)[0])
    assert np.min(gaps) >= 0
    assert (np.max(gaps) > 0) != conv_l1_norm(ones, stride, padding, size).exact


@settings(deadline=None, max_examples=300)
@given(st.integers(1, 7), st.integers(1, 4), st.integers(0, 7), st.integers(1, 16))
def test_the_closed_forms_of_the_exactness_conditions(kernel, stride, padding, size):
    if size + 2 * padding < kernel:
        return
    assert linf_formula_is_exact(size, kernel, stride, padding) == (
        kernel + stride * math.ceil(padding / stride) - padding <= size)
    if stride == 1:
        assert l1_formula_is_exact(size, kernel, 1, padding) == (size >= 2 * kernel - 1 - 2 * padding)


def test_stride_two_uses_the_four_tap_classes_of_a_3x3_kernel():
    """3x3, stride 2, padding 1, 32x32: the classes {0,2}x{0,2}, {0,2}x{1}, {1}x{0,2}, {1}x{1} (spec, Sec. 1)."""
    w = np.zeros((2, 1, 3, 3))
    w[:, 0, 1, 1] = 10.0  # the centre tap alone: class {1}x{1}
    w[:, 0, 0, 0] = w[:, 0, 2, 2] = 6.0  # corners of class {0,2}x{0,2}: 24 in all
    assert conv_l1_norm(w, 2, 1, 32) == Norm(24.0, True)
    assert conv_l1_norm(w, 1, 1, 32).value == 44.0
