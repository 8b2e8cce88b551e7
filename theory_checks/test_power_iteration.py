"""Power iteration finds the spectral norm of a (zero-padded, strided) conv layer.

Statement. For the conv matrix A with singular values s_1 > s_2 >= ..., power iteration on A^T A from a random
start gives sigma_t = ||A x_t|| (x_t unit) that rises towards s_1, never above it. In the end its steps shrink
geometrically (by about (s_2 / s_1)^2 per step or faster), so the rest of the series, estimated from the ratio
of successive steps, is the relative error: stopped when that estimate is at most tol, sigma is within 2 tol of s_1
(here with a gap 1 - (s_2 / s_1)^2 of at least 1%, and a tol far below the early, faster-shrinking steps).

Checked against the SVD of the explicit conv matrix in float64, through the NumPy reference conv (on these tiny
layers the Numba kernels' thread start-up dominates; they are tested against it in tests/test_kernels_conv.py).
"""

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scratchnet.backend import use_backend
from scratchnet.kernels.reference.norms import conv_matrix
from scratchnet.norms import conv_spectral_norm

TOL = 1e-9


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2),
       st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_power_iteration_converges_to_the_largest_singular_value(c_out, c_in, k, stride, padding, extra, seed):
    n = max(1, k - 2 * padding) + extra
    w = np.random.default_rng(seed).standard_normal((c_out, c_in, k, k))
    singular = np.linalg.svd(conv_matrix(w, (n, n), stride, padding), compute_uv=False)
    s1 = singular[0]
    below = singular[singular < s1 * (1 - 1e-8)]
    r = below[0] / s1 if below.size else 0.0
    assume(1 - r**2 >= 1e-2)  # a gap wide enough for a few thousand iterations at most
    with use_backend("numpy"):
        estimate = conv_spectral_norm(w, stride, padding, n, tol=TOL, max_iter=100_000, seed=seed)
    assert estimate.converged
    assert estimate.value <= s1 * (1 + 1e-12)
    assert s1 - estimate.value <= 2 * TOL * s1 + 1e-12 * s1, (s1 - estimate.value) / s1
    assert estimate.value > 0 or s1 == 0
