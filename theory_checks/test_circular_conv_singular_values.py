"""Sedghi, Gupta & Long 2019 (used by Liang & Huang 2021 for singular value clipping): the singular values of a
circular conv are those of its transfer matrices.

Theorem. Let A be the matrix of the stride-1 circular (periodic) conv with weight W [C_out, C_in, kh, kw] on
C_in x n x n inputs (kh, kw <= n). A is block-circulant, so the 2-D DFT block-diagonalizes it: its singular values
are, over all n^2 frequencies (f1, f2), the singular values of the C_out x C_in matrices
P(f1, f2) = FFT2(W zero-padded to n x n)[:, :, f1, f2].

Checked against the SVD of the explicit A in float64 over drawn channels, kernel sizes and n.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchnet.kernels.reference.norms import circular_conv_matrix
from scratchnet.norms import circular_conv_singular_values


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(0, 3),
       st.integers(0, 2**32 - 1))
def test_fft_singular_values_equal_the_svd_of_the_circular_conv_matrix(c_out, c_in, kh, kw, extra, seed):
    n = max(kh, kw) + extra
    w = np.random.default_rng(seed).standard_normal((c_out, c_in, kh, kw))
    ours = np.sort(circular_conv_singular_values(w, n).ravel())
    explicit = np.sort(np.linalg.svd(circular_conv_matrix(w, n), compute_uv=False))[-ours.size:]
    assert ours.shape == (n * n * min(c_out, c_in),)
    np.testing.assert_allclose(ours, explicit, rtol=0, atol=1e-11 * explicit.max())
