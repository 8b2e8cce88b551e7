"""The l-inf-dist kernels (Zhang et al. 2021): the Numba kernels against the NumPy reference over Hypothesis-drawn
shapes (across the argmax chunk, the register block and the gw scatter's column blocks), dtypes and layouts, with
many ties (the first maximal coordinate must win); the interval bounds as the exact range over the box; lp with
huge p and huge values."""

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet.kernels import linf_dist, lp_dist, reference
from tests.gradcheck import layouts

# lp: float32 powers amplify a rounding of the base by up to p, the sums are reassociated
LP_TOLERANCE = {np.float32: 2e-4, np.float64: 1e-10}
POWERS = [1.0, 2.0, 2.5, 8.0, 37.3, 1000.0, 4096.0]


@st.composite
def problems(draw, max_n=150, max_m=9):
    """(x, w, gy): x [B, n], w [m, n] in one dtype and drawn layouts. Values are small integers (many ties)
    or continuous."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    batch, m, n = draw(st.integers(1, 5)), draw(st.integers(1, max_m)), draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        x, w = rng.integers(-3, 4, (batch, n)), rng.integers(-3, 4, (m, n))
    else:
        x, w = rng.standard_normal((batch, n)), rng.standard_normal((m, n))
    if draw(st.booleans()):  # the largest distance in the last coordinates: past the first chunk when n is large
        x[:, n - draw(st.integers(1, min(n, 3)))] += 10
    gy = rng.standard_normal((batch, m))
    return tuple(draw(layouts(a.astype(dtype))) for a in (x, w, gy))


@settings(deadline=None, max_examples=60)
@given(problem=problems(max_n=linf_dist.CHUNK + 22, max_m=2 * linf_dist.SCATTER_WIDTH + 5),
       w_bytes=st.sampled_from([linf_dist.W_BYTES, 1]))
def test_linf_forward_and_backward_match_the_reference(problem, w_bytes):
    # W_BYTES = 1 cuts w into tiles of RJ rows: several tiles and a partial last one, as at n = 5120
    x, w, gy = problem
    with mock.patch.object(linf_dist, "W_BYTES", w_bytes):
        y, index = linf_dist.linf_dist_forward(x, w)
        fast_values = linf_dist.linf_dist_values(x, w)
    want_y, want_index = reference.linf_dist_forward(x, w)
    assert y.dtype == x.dtype and index.dtype == np.int64 and y.flags.c_contiguous
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(index, want_index)
    for values in (fast_values, reference.linf_dist_values(x, w)):
        assert values.dtype == x.dtype
        np.testing.assert_array_equal(values, want_y)
    gx, gw = linf_dist.linf_dist_backward(gy, x, w, index)
    want_gx, want_gw = reference.linf_dist_backward(gy, x, w, want_index)
    assert gx.dtype == gw.dtype == x.dtype
    np.testing.assert_allclose(gx, want_gx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gw, want_gw, rtol=1e-6, atol=1e-6)


def test_reference_is_the_definition():
    """The reference against plain loops, with ties: y is the max, index the first coordinate reaching it."""
    rng = np.random.default_rng(1)
    x, w = rng.integers(-2, 3, (4, 6)).astype(float), rng.integers(-2, 3, (5, 6)).astype(float)
    y, index = reference.linf_dist_forward(x, w)
    for b, i in np.ndindex(4, 5):
        a = [abs(x[b, j] - w[i, j]) for j in range(6)]
        assert y[b, i] == max(a) and index[b, i] == a.index(max(a))


@settings(deadline=None, max_examples=40)
@given(problem=problems(max_n=80), p=st.sampled_from(POWERS))
def test_lp_forward_and_backward_match_the_reference(problem, p):
    x, w, gy = problem
    tolerance = LP_TOLERANCE[x.dtype.type]
    y = lp_dist.lp_dist_forward(x, w, p)
    want_y = reference.lp_dist_forward(x, w, p)
    assert y.dtype == x.dtype
    np.testing.assert_allclose(y, want_y, rtol=tolerance, atol=0)
    gx, gw = lp_dist.lp_dist_backward(gy, x, w, want_y, p)
    want_gx, want_gw = reference.lp_dist_backward(gy, x, w, want_y, p)
    scale = np.abs(gy).sum() + 1  # the gradients are sums of terms of size |gy|
    np.testing.assert_allclose(gx, want_gx, rtol=tolerance, atol=tolerance * scale)
    np.testing.assert_allclose(gw, want_gw, rtol=tolerance, atol=tolerance * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1.0, 2.0, 8.0, 1000.0, 1e6])
def test_lp_is_finite_for_huge_p_and_values(dtype, p):
    """Terms |d|^p overflow without the max-normalization; here |d| ~ 1e30 and p up to 1e6."""
    rng = np.random.default_rng(0)
    big = np.finfo(dtype).max ** 0.8
    x, w = (rng.uniform(-1, 1, (3, 40)) * big).astype(dtype), (rng.uniform(-1, 1, (4, 40)) * big).astype(dtype)
    y = lp_dist.lp_dist_forward(x, w, p)
    linf, _ = linf_dist.linf_dist_forward(x, w)
    assert np.all(np.isfinite(y))
    # ||d||_inf <= ||d||_p <= n^(1/p) ||d||_inf
    rounding = 1 + 1e-5
    assert np.all(y >= linf / rounding) and np.all(y <= linf * 40 ** (1 / p) * rounding)
    gx, gw = lp_dist.lp_dist_backward(np.ones_like(y), x, w, y, p)
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gw))
    # each output's gradient has l_q norm 1 (q the dual of p), so its entries are at most 1
    assert np.abs(gx).max() <= 4 * rounding and np.abs(gw).max() <= 3 * rounding


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1.0, 2.5, 8.0])
def test_lp_is_infinite_where_the_linf_distance_is(dtype, p):
    """A difference beyond the dtype's range (x = max, w = -max) or an infinite input makes the l-inf distance
    inf, and the lp distance, never below it, inf too: the scale by 1 / inf gave NaN."""
    big = np.finfo(dtype).max
    x = np.array([[big, 0, 1], [np.inf, 0, 1], [0.5, 0, 1]], dtype)
    w = np.array([[-big, 0, 0], [0, 0, 0]], dtype)
    infinite = np.array([[True, False], [True, True], [False, False]])
    linf, _ = linf_dist.linf_dist_forward(x, w)
    np.testing.assert_array_equal(np.isinf(linf), infinite)
    for y in (lp_dist.lp_dist_forward(x, w, p), reference.lp_dist_forward(x, w, p)):
        np.testing.assert_array_equal(np.isinf(y), infinite)
        assert not np.isnan(y).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1.0, 2.0, 2.5, 8.0, 1000.0])
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_lp_is_finite_and_right_at_the_smallest_distances(dtype, p, scale):
    """Some outputs at a distance near the smallest normal number (scale 1; gy / y overflows) or subnormal (scale
    1/4; 1 / y overflows) among ordinary ones, and gy = 10: the term gy sign(d) |d / y|^(p - 1) is at most 10, and
    d = 0 must give 0, not 0 times inf. Checked against the reference with a relative tolerance only."""
    tiny = np.finfo(dtype).tiny * scale
    x = np.array([[0, 0, 0], [1, 2, 3]], dtype)
    w = np.array([[tiny, 0, -tiny / 2], [0.5, -1, 2], [0, tiny / 4, 0]], dtype)
    y = lp_dist.lp_dist_forward(x, w, p)
    np.testing.assert_allclose(y, reference.lp_dist_forward(x, w, p), rtol=LP_TOLERANCE[dtype], atol=0)
    gy = np.full_like(y, 10)
    for got, want in zip(lp_dist.lp_dist_backward(gy, x, w, y, p), reference.lp_dist_backward(gy, x, w, y, p),
                         strict=True):
        assert np.all(np.isfinite(got)), got
        np.testing.assert_allclose(got, want, rtol=LP_TOLERANCE[dtype], atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1.0, 2.0, 2.5, 8.0, 1000.0])
@pytest.mark.parametrize("operand", ["x", "w"])
def test_lp_propagates_nan_to_exactly_the_outputs_that_read_it(dtype, p, operand):
    """A NaN in row 0 of x (or of w) reaches row 0 (column 0) of y and the gradients that read those outputs, and
    nothing else: the subnormal flush compares bases with a floor and must not flush a NaN base to 0, and the
    kernels' blocks of four rows of w must not carry it from the block's first row to the other three."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 10)).astype(dtype), rng.standard_normal((6, 10)).astype(dtype)
    (x if operand == "x" else w)[0, 4] = np.nan
    y = lp_dist.lp_dist_forward(x, w, p)
    read = np.zeros(y.shape, bool)
    read[(0, slice(None)) if operand == "x" else (slice(None), 0)] = True
    np.testing.assert_array_equal(np.isnan(y), read)
    np.testing.assert_allclose(y[~read], reference.lp_dist_forward(x, w, p)[~read], rtol=LP_TOLERANCE[dtype])
    gy = np.ones_like(y)
    gx, gw = lp_dist.lp_dist_backward(gy, x, w, y, p)
    for got, want in zip((gx, gw), reference.lp_dist_backward(gy, x, w, y, p), strict=True):
        # NaN where the reference has NaN; the kernels flush subnormal terms to 0
        np.testing.assert_allclose(got, want, rtol=LP_TOLERANCE[dtype], atol=np.finfo(dtype).tiny)
    if p == 1:  # the gradient sign(d) does not read y: only the NaN coordinate's gradients are NaN
        for g in (gx, gw):
            np.testing.assert_array_equal(np.isnan(g).any(axis=0), np.arange(10) == 4)
    elif operand == "x":
        np.testing.assert_array_equal(np.isnan(gx).any(axis=1), [True, False, False])
        assert np.isnan(gw).all(axis=0)[4]
    else:  # every row of x reads column 0 of y; only row 0 of w does
        assert np.isnan(gx).all() and np.isnan(gw[0]).all() and np.isfinite(gw[1:]).all()


@pytest.mark.parametrize("p", [1.0, 2.5, 8.0])
def test_lp_of_equal_vectors_is_zero_with_zero_gradient(p):
    x = np.arange(6.0).reshape(2, 3)
    y = lp_dist.lp_dist_forward(x, x, p)
    np.testing.assert_array_equal(np.diag(y), 0)
    gx, gw = lp_dist.lp_dist_backward(np.eye(2), x, x, y, p)
    np.testing.assert_array_equal(gx, 0)
    np.testing.assert_array_equal(gw, 0)


@settings(deadline=None, max_examples=40)
@given(problem=problems(max_n=100), seed=st.integers(0, 2**32 - 1))
def test_interval_bounds_are_the_exact_range_over_the_box(problem, seed):
    x, w, _ = problem
    rng = np.random.default_rng(seed)
    lower = (x - rng.uniform(0, 1, x.shape)).astype(x.dtype)
    upper = (x + rng.uniform(0, 1, x.shape)).astype(x.dtype)
    y_lower, y_upper = linf_dist.interval_bounds(lower, upper, w)
    want_lower, want_upper = reference.interval_bounds(lower, upper, w)
    assert y_lower.dtype == y_upper.dtype == x.dtype
    np.testing.assert_array_equal(y_lower, want_lower)
    np.testing.assert_array_equal(y_upper, want_upper)
    # every point of the box lies inside the bounds
    for _ in range(5):
        inside = lower + (upper - lower) * rng.uniform(0, 1, x.shape).astype(x.dtype)
        y, _ = linf_dist.linf_dist_forward(np.clip(inside, lower, upper), w)
        assert np.all(y_lower <= y) and np.all(y <= y_upper)
    # and both bounds are reached: the lower at w projected onto the box, the upper at w's farthest corner
    for i in range(w.shape[0]):
        nearest = np.clip(w[i], lower, upper)
        farthest = np.where(np.abs(lower - w[i]) > np.abs(upper - w[i]), lower, upper)
        np.testing.assert_array_equal(linf_dist.linf_dist_forward(nearest, w[i : i + 1])[0][:, 0], y_lower[:, i])
        np.testing.assert_array_equal(linf_dist.linf_dist_forward(farthest, w[i : i + 1])[0][:, 0], y_upper[:, i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("operand", ["lower", "upper", "w"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_interval_bounds_keep_a_non_finite_entry_as_the_reference(dtype, operand, value):
    """A NaN anywhere in the box or the weights makes both bounds NaN, never a finite interval that would certify
    the point (the built-in max dropped a NaN upper end)."""
    rng = np.random.default_rng(1)
    for j in range(5):
        x = rng.standard_normal((2, 5)).astype(dtype)
        arrays = {"lower": x - 0.5, "upper": x + 0.5, "w": rng.standard_normal((3, 5)).astype(dtype)}
        arrays[operand][0, j] = value
        ours = linf_dist.interval_bounds(arrays["lower"], arrays["upper"], arrays["w"])
        for got, want in zip(ours, reference.interval_bounds(arrays["lower"], arrays["upper"], arrays["w"]),
                             strict=True):
            np.testing.assert_array_equal(got, want)
        if np.isnan(value):
            hit = ours[0][0] if operand != "w" else ours[0][:, 0]
            assert np.isnan(hit).all() and np.isnan(ours[1][0] if operand != "w" else ours[1][:, 0]).all()


@pytest.mark.parametrize("p", [1.0, 2.0, 2.5, 8.0])
@pytest.mark.parametrize("m", [5, 6, 7])
def test_lp_backward_of_an_infinite_gy_in_the_last_partial_block_of_w(p, m):
    """The padding rows of w's last block of four repeat its last row and pass no gradient: 0, not 0 * gy (an
    infinite gy made NaN of all of gx[b] and of gw's last row)."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3)), rng.standard_normal((m, 3))
    y = lp_dist.lp_dist_forward(x, w, p)
    gy = rng.standard_normal(y.shape)
    gy[0, m - 1] = np.inf
    for got, want in zip(lp_dist.lp_dist_backward(gy, x, w, y, p), reference.lp_dist_backward(gy, x, w, y, p),
                         strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12)
