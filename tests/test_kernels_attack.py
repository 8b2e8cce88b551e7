"""The fused attack-step kernels (kernels/attack.py) equal their NumPy references (kernels/reference/attack.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet.kernels import attack, reference

TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-15)}


@st.composite
def step_problems(draw):
    shape = draw(st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.random(shape).astype(dtype)
    x_adv = np.clip(x + rng.uniform(-0.5, 0.5, shape), 0, 1).astype(dtype)
    g = (rng.standard_normal(shape) * draw(st.sampled_from([1.0, 1e-4, 1e-9]))).astype(dtype)  # small norms too
    if draw(st.booleans()):
        g[0] = 0  # a zero gradient must not give NaN
    steps = rng.uniform(0, 0.3, shape[0]) if draw(st.booleans()) else draw(st.floats(0, 0.3))
    eps = draw(st.sampled_from([0.0, 0.05, 0.3, 2.0]))
    return x_adv, g, x, steps, eps


@settings(deadline=None, max_examples=60)
@given(problem=step_problems(), name=st.sampled_from(["linf_step", "l2_step"]))
def test_steps_equal_the_reference(problem, name):
    x_adv, g, x, steps, eps = problem
    ours = getattr(attack, name)(x_adv, g, x, steps, eps, 0.0, 1.0)
    want = getattr(reference, name)(x_adv, g, x, steps, eps, 0.0, 1.0)
    assert ours.dtype == x.dtype and ours.shape == x.shape
    # float32: the kernel steps in float64, the reference rounds the step to float32 first
    np.testing.assert_allclose(ours, want, **TOLERANCE[x.dtype.type])


@settings(deadline=None, max_examples=40)
@given(problem=step_problems(), name=st.sampled_from(["linf_project", "l2_project"]))
def test_projections_equal_the_reference_and_are_idempotent(problem, name):
    x_adv, _, x, _, eps = problem
    ours = getattr(attack, name)(x_adv * 3 - 1, x, eps, 0.0, 1.0)
    np.testing.assert_allclose(ours, getattr(reference, name)(x_adv * 3 - 1, x, eps, 0.0, 1.0),
                               **TOLERANCE[x.dtype.type])
    if name == "linf_project":  # l2's rescale-then-clip is not an exact projection, so only l-inf is idempotent
        np.testing.assert_array_equal(getattr(attack, name)(ours, x, eps, 0.0, 1.0), ours)


@pytest.mark.parametrize("module", [attack, reference])
def test_the_l2_step_moves_exactly_step_size_along_the_gradient(module):
    x = np.full((1, 4), 0.5)
    g = np.array([[3.0, 4.0, 0.0, 0.0]])
    np.testing.assert_allclose(module.l2_step(x, g, x, 0.1, 1.0, 0.0, 1.0), [[0.56, 0.58, 0.5, 0.5]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["x", "x_adv", "g"])
def test_a_nan_stays_nan_as_in_the_reference(dtype, where):
    """np.clip keeps a NaN; so must the kernels' clamps (the built-in min and max dropped one in x)."""
    rng = np.random.default_rng(0)
    x = rng.random((2, 6)).astype(dtype)
    arrays = {"x": x, "x_adv": np.clip(x + 0.02, 0, 1).astype(dtype), "g": rng.standard_normal((2, 6)).astype(dtype)}
    arrays[where][0, 2] = np.nan
    for name in ("linf_step", "l2_step"):
        ours = getattr(attack, name)(arrays["x_adv"], arrays["g"], arrays["x"], 0.01, 0.05, 0.0, 1.0)
        want = getattr(reference, name)(arrays["x_adv"], arrays["g"], arrays["x"], 0.01, 0.05, 0.0, 1.0)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(want))
        assert np.isnan(ours[0, 2])
    for name in ("linf_project", "l2_project"):
        if where != "g":
            ours = getattr(attack, name)(arrays["x_adv"], arrays["x"], 0.05, 0.0, 1.0)
            np.testing.assert_array_equal(np.isnan(ours), np.isnan(getattr(reference, name)(
                arrays["x_adv"], arrays["x"], 0.05, 0.0, 1.0)))
            assert np.isnan(ours[0, 2])
