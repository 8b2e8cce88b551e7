"""Shared test tools: a central-difference gradient check at every index, and Hypothesis strategies for arrays.

Arrays are drawn as (shape, seed) and filled by NumPy, so Hypothesis shrinks shapes while the values stay
well-spread; `layouts` presents the same values as C-ordered, Fortran-ordered, strided or reversed views, so that
every op is also checked on non-contiguous input.
"""

import numpy as np
from hypothesis import strategies as st

import scratchnet as sn


def check_gradients(f, *arrays, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7, seed: int = 0,
                    reference=None) -> None:
    """Assert that backward through `f(*tensors)` matches central differences at every index of every input, and
    with `reference` (a NumPy function of the arrays) that the forward value is reference(*arrays).

    The output is contracted with a fixed random vector v, so the check covers the whole Jacobian-vector product
    v^T J, not just the gradient of a sum. Inputs must be float64.
    """
    tensors = [sn.Tensor(a, requires_grad=True) for a in arrays]
    out = f(*tensors)
    if reference is not None:
        np.testing.assert_allclose(out.data, reference(*arrays), rtol=1e-12, atol=1e-300, err_msg="forward value")
    v = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(v)

    def scalar(values):
        with sn.no_grad():
            return float(np.sum(f(*[sn.Tensor(a) for a in values]).data * v))

    for i, (a, t) in enumerate(zip(arrays, tensors, strict=True)):
        numeric = np.zeros(a.shape)
        for index in np.ndindex(a.shape):
            plus, minus = [x.copy() for x in arrays], [x.copy() for x in arrays]
            plus[i][index] += eps
            minus[i][index] -= eps
            numeric[index] = (scalar(plus) - scalar(minus)) / (2 * eps)
        assert t.grad is not None, f"input {i} received no gradient"
        np.testing.assert_allclose(t.grad, numeric, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


def shapes(min_dims: int = 1, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcast_pair(draw, max_dims: int = 3):
    """Two shapes that broadcast: the second drops leading axes and sets some sides to 1."""
    shape = draw(shapes(1, max_dims))
    drop = draw(st.integers(0, len(shape) - 1))
    other = tuple(1 if draw(st.booleans()) else n for n in shape[drop:])
    return (shape, other) if draw(st.booleans()) else (other, shape)


@st.composite
def layouts(draw, array: np.ndarray) -> np.ndarray:
    """`array`'s values in a drawn memory layout: C order, Fortran order, a strided slice, or reversed axes."""
    kind = draw(st.sampled_from(["c", "fortran", "strided", "reversed"]))
    if kind == "fortran":
        return np.asfortranarray(array)
    if kind == "strided":
        big = np.zeros(tuple(2 * n for n in array.shape), dtype=array.dtype)
        view = big[tuple(slice(None, None, 2) for _ in array.shape)]
        view[...] = array
        return view
    if kind == "reversed" and array.ndim:
        return np.flip(np.flip(array).copy())
    return array


@st.composite
def arrays(draw, shape, low: float = -2.0, high: float = 2.0, away_from: float | None = None,
           margin: float = 0.05, distinct: bool = False, grid: tuple[float, float] | None = None) -> np.ndarray:
    """A float64 array in a drawn layout. `away_from` keeps every entry `margin` away from a kink (e.g. 0 for
    relu); `distinct` spaces all entries apart so that max/argmax are unique and stable under the finite step;
    `grid=(step, offset)` rounds entries to offset + multiples of step (two grids with offsets apart never tie).
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    size = int(np.prod(shape))
    if distinct:
        values = low + (high - low) * (rng.permutation(size) + 0.5) / max(size, 1)
        values += rng.uniform(-0.1, 0.1, size) * (high - low) / max(size, 1)
    else:
        values = rng.uniform(low, high, size)
    if away_from is not None:
        close = np.abs(values - away_from) < margin
        values[close] = away_from + np.where(values[close] >= away_from, margin, -margin) * 2
    if grid is not None:
        values = np.round(values / grid[0]) * grid[0] + grid[1]
    return draw(layouts(values.reshape(shape)))
