"""The sparse-coding data model of Allen-Zhu & Li 2021, "Feature Purification" (arXiv 2005.10190), section 1 of
shared/specs/feature-purification.md.

    x = M z + xi,    y = sign(<w*, z>)

M is a d x d orthonormal dictionary whose columns M_j are the atoms (the "robust features"): a random one (Q of
the QR factorisation of a Gaussian matrix) or the 2-D DCT basis of s x s image patches (d = s^2). The code z is
sparse: z_j = s_j 1[B_j] with B_j ~ Bernoulli(k / d) and random signs s_j = +-1, so about k atoms are present.
The label weights w*_j ~ U[1, 2] are fixed per data set; y = +1 when <w*, z> = 0 (z = 0). The noise is
xi ~ N(0, (noise / sqrt(d))^2 I), so ||xi|| is about `noise`.

    data = sparse_coding(d=200, k=6, seed=0)
    x, y = data.sample(512, rng)             # fresh samples for online SGD
    x, y, z = data.sample(512, rng, codes=True)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

DICTIONARIES = ("random", "dct")


def random_dictionary(d: int, rng: np.random.Generator) -> np.ndarray:
    """A random d x d orthonormal matrix: Q of the QR factorisation of a standard Gaussian matrix, with the signs
    fixed by diag(R) > 0 so that Q is Haar-distributed."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def dct_dictionary(size: int = 8) -> np.ndarray:
    """The orthonormal 2-D DCT-II basis of size x size patches as a (size^2, size^2) matrix whose column
    u * size + v is the atom cos(pi (2a + 1) u / 2s) cos(pi (2b + 1) v / 2s) (normalised), flattened row-major."""
    n = np.arange(size)
    c = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * math.sqrt(2 / size)
    c[0] /= math.sqrt(2)  # the 1-D DCT-II matrix: row u is the frequency-u atom
    return np.kron(c, c).T


@dataclass(frozen=True)
class SparseCoding:
    """A sparse-coding distribution: dictionary M (atoms as columns), label weights w_star, Pr[z_j != 0] = k / d,
    noise level `noise` (xi ~ N(0, (noise / sqrt(d))^2 I))."""

    M: np.ndarray
    w_star: np.ndarray
    k: float
    noise: float

    @property
    def d(self) -> int:
        return self.M.shape[0]

    @property
    def dense_direction(self) -> np.ndarray:
        """u = M w* / ||w*||: the direction every atom's label correlation adds up to (spec section 3)."""
        return self.M @ self.w_star / np.linalg.norm(self.w_star)

    def sample(self, n: int, rng, codes: bool = False):
        """n fresh examples (x (n, d) float64, y (n,) int64 in {-1, +1}), and the codes z (n, d) if `codes`."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        rng = np.random.default_rng(rng)
        d = self.d
        r = rng.random((n, d))  # one uniform per coordinate: r < p / 2 gives -1, p / 2 <= r < p gives +1
        p = self.k / d
        z = (r < p).astype(float) - 2.0 * (r < p / 2)
        y = np.where(z @ self.w_star >= 0, 1, -1).astype(np.int64)
        x = z @ self.M.T + rng.standard_normal((n, d)) * (self.noise / math.sqrt(d))
        return (x, y, z) if codes else (x, y)


def sparse_coding(d: int = 200, k: float = 6, dictionary: str = "random", noise: float = 0.1,
                  seed: int = 0) -> SparseCoding:
    """The sparse-coding model of spec section 1: d atoms, on average k of them in each example.

    dictionary: "random" (a random orthonormal M) or "dct" (the 2-D DCT basis of sqrt(d) x sqrt(d) patches; d must
    be a perfect square, 64 for 8x8 patches). `seed` fixes M (if random) and w*.
    """
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
        raise ValueError(f"d must be an int >= 1, got {d!r}")
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not 0 < k <= d:
        raise ValueError(f"k must be a number with 0 < k <= d = {d}, got {k!r}")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if dictionary not in DICTIONARIES:
        raise ValueError(f"dictionary must be one of {DICTIONARIES}, got {dictionary!r}")
    rng = np.random.default_rng(seed)
    if dictionary == "dct":
        size = math.isqrt(d)
        if size * size != d:
            raise ValueError(f"d must be a perfect square for dictionary='dct' (patches sqrt(d) x sqrt(d)), got {d}")
        M = dct_dictionary(size)
    else:
        M = random_dictionary(d, rng)
    w_star = rng.uniform(1.0, 2.0, size=d)
    return SparseCoding(M=M, w_star=w_star, k=float(k), noise=float(noise))
