"""The differentiable l-inf-dist and lp-dist ops (Zhang et al. 2021, Sections 3-4): lp_dist against central
differences at every index (float64), linf_dist against its sparse subgradient where the argmax is unique by a
margin (there the central difference equals it), both backends agreeing, and clear errors on bad input."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.backend import use_backend
from scratchnet.functional import linf_dist, lp_dist
from tests.gradcheck import arrays, check_gradients


@st.composite
def pairs(draw, max_b=3, max_m=4, max_n=5):
    """x [B, n] and w [m, n] in float64 on two grids half a step apart, so no difference x_j - w_j is near 0
    (where |d| has its kink)."""
    batch, m, n = draw(st.integers(1, max_b)), draw(st.integers(1, max_m)), draw(st.integers(1, max_n))
    x = draw(arrays((batch, n), grid=(0.1, 0.0)))
    w = draw(arrays((m, n), grid=(0.1, 0.05)))
    return x, w


@settings(deadline=None, max_examples=25)
@given(xw=pairs(), p=st.sampled_from([1.0, 1.5, 2.0, 3.7, 8.0, 40.0]))
def test_lp_dist_gradient_matches_central_differences(xw, p):
    check_gradients(lambda x, w: lp_dist(x, w, p), *xw)


def _top_two_gap(x, w):
    a = np.sort(np.abs(x[:, None, :] - w[None, :, :]), axis=2)
    return np.min(a[:, :, -1] - a[:, :, -2]) if a.shape[2] > 1 else np.inf


@settings(deadline=None, max_examples=25)
@given(xw=pairs(max_n=6))
def test_linf_dist_gradient_is_the_subgradient(xw):
    x, w = xw
    assume(_top_two_gap(x, w) > 1e-3)  # a unique argmax, far beyond the finite-difference step
    check_gradients(linf_dist, x, w)


@settings(deadline=None, max_examples=15)
@given(xw=pairs(), p=st.sampled_from([2.0, 8.0]))
def test_backends_agree(xw, p):
    results = []
    for backend in ("numpy", "numba"):
        with use_backend(backend):
            xt, wt = sn.Tensor(xw[0], requires_grad=True), sn.Tensor(xw[1], requires_grad=True)
            y = linf_dist(xt, wt) + lp_dist(xt, wt, p)
            y.backward(np.ones(y.shape))
            results.append((y.data, xt.grad, wt.grad))
    for ours, reference in zip(*results, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


@settings(deadline=None, max_examples=15)
@given(xw=pairs(max_n=8), backend=st.sampled_from(["numpy", "numba"]), which=st.sampled_from(["no_grad", "x", "w"]))
def test_linf_dist_without_a_graph_gives_the_same_values(xw, backend, which):
    """Without a gradient to compute, linf_dist runs the forward without the argmax; with one (through x, or
    through w alone), the full forward; all give the same y."""
    x, w = xw
    with use_backend(backend):
        with sn.no_grad():
            plain = linf_dist(sn.Tensor(x, requires_grad=True), sn.Tensor(w, requires_grad=True))
        if which != "no_grad":
            inputs = sn.Tensor(x, requires_grad=which == "x"), sn.Tensor(w, requires_grad=which == "w")
            graph = linf_dist(*inputs)
            assert graph.requires_grad
            np.testing.assert_array_equal(plain.data, graph.data)
    assert not plain.requires_grad
    np.testing.assert_array_equal(plain.data, np.abs(x[:, None, :] - w[None, :, :]).max(axis=2))


def test_float32_stays_float32():
    x = sn.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    w = sn.Tensor(np.zeros((4, 3), np.float32), requires_grad=True)
    for y in (linf_dist(x, w), lp_dist(x, w, 3)):
        y.backward(np.ones((2, 4), np.float32))
        assert y.dtype == x.grad.dtype == w.grad.dtype == np.float32


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "p", "error", "message"),
    [
        ((2, 3), (4, 2), 2.0, ValueError, "w must be"),
        ((2, 3, 1), (4, 3), 2.0, ValueError, "x must be 2-D"),
        ((2, 3), (3,), 2.0, ValueError, "w must be 2-D"),
        ((2, 0), (4, 0), 2.0, ValueError, "n >= 1"),
        ((2, 3), (4, 3), 0.5, ValueError, "p must be a finite number >= 1"),
        ((2, 3), (4, 3), float("inf"), ValueError, "p must be a finite number >= 1"),
        ((2, 3), (4, 3), float("nan"), ValueError, "p must be a finite number >= 1"),
        ((2, 3), (4, 3), "2", TypeError, "p must be a real number"),
    ],
)
def test_bad_input_is_named(x_shape, w_shape, p, error, message):
    x, w = sn.Tensor(np.zeros(x_shape)), sn.Tensor(np.zeros(w_shape))
    with pytest.raises(error, match=message):
        lp_dist(x, w, p)
    if not message.startswith("p "):
        with pytest.raises(error, match=message):
            linf_dist(x, w)


def test_bad_dtypes_are_named():
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        linf_dist(sn.Tensor(np.zeros((2, 3), np.int64)), sn.Tensor(np.zeros((4, 3))))
    with pytest.raises(TypeError, match="dtypes float32 and float64"):
        linf_dist(sn.Tensor(np.zeros((2, 3), np.float32)), sn.Tensor(np.zeros((4, 3))))
    with pytest.raises(TypeError, match="w must be a Tensor"):
        linf_dist(sn.Tensor(np.zeros((2, 3))), np.zeros((4, 3)))


@pytest.mark.parametrize("op", [linf_dist, lambda x, w: lp_dist(x, w, 8.0)])
def test_a_second_backward_with_the_seed_changed_in_place_is_not_served_the_first(op):
    """Both edges of one op share a single gradient computation per backward pass; a caller who runs backward()
    twice with one array, scaled in place between the calls, gets both gradients scaled, not the first again."""
    rng = np.random.default_rng(0)
    x = sn.Tensor(rng.standard_normal((3, 5)), requires_grad=True)
    w = sn.Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    y, seed = op(x, w), rng.standard_normal((3, 4))
    y.backward(seed)
    first = x.grad.copy(), w.grad.copy()
    x.grad = w.grad = None
    seed *= 3
    y.backward(seed)
    np.testing.assert_allclose(x.grad, 3 * first[0])
    np.testing.assert_allclose(w.grad, 3 * first[1])
