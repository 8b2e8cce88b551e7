"""The CUDA kernels (scratchnet/kernels/cuda/) against the Numba CPU kernels over Hypothesis-drawn tiny shapes, and
the cuda backend's selection and its error where it cannot run.

CI runs the kernels in Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set by .ci/run): every GPU thread becomes
a Python thread, so the shapes are tiny and the examples few; the simulator's small tiles (kernels/cuda/launch.py)
make even these shapes cross tile edges. The discrete choices that select another compiled kernel or another code
path (dtype, stride) are pytest parameters rather than drawn, so that each runs in every CI run however few the
examples. On a machine with a GPU the same tests run on it. Results that the GPU
sums in another order than the CPU are compared to a tolerance; everything else must be equal bit for bit.
"""

import importlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet as sn
from scratchnet.backend import cuda_problem, use_backend
from scratchnet.kernels import activation, attack, conv, linf_dist, lp_dist, norms, pool, reference

needs_cuda = pytest.mark.skipif(cuda_problem() is not None, reason=f"CUDA kernels cannot run: {cuda_problem()}")
# a tiny tolerance for sums the GPU adds in another order
CLOSE = {np.float32: {"rtol": 1e-5, "atol": 1e-5}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}
LP_CLOSE = {np.float32: {"rtol": 2e-4, "atol": 1e-5}, np.float64: {"rtol": 1e-10, "atol": 1e-12}}
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
# the simulator runs each GPU thread as a Python thread: few examples there, more on a real GPU
FEW = settings(deadline=None, max_examples=6 if SIMULATED else 40)
# for tests parametrized over those choices: fewer examples per case
PER_CASE = settings(deadline=None, max_examples=3 if SIMULATED else 20)
DTYPES = [np.float32, np.float64]
# the side of the tiled kernels' square blocks (kernels/cuda/launch.py): the drawn sizes reach past one tile, so
# that a second tile, a shorter last tile and a second block run on the simulator's small tiles and on a GPU's
TILE = 4 if SIMULATED else 16
# the threads per block of the one-dimensional kernels: some sizes below are set from it, to reach past two blocks
THREADS = 32 if SIMULATED else 256


def gpu(family):
    """The CUDA twin of a CPU kernel module (imported only here: numba.cuda may be missing)."""
    return importlib.import_module(f"scratchnet.kernels.cuda.{family}")


def assert_close(got, want):
    """Same dtype and shape, values equal up to the tolerance of sums added in another order."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_allclose(got, want, **CLOSE[want.dtype.type])


def assert_same(got, want):
    """Same dtype and shape, values equal bit for bit."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_array_equal(got, want)


@st.composite
def images(draw, dtype, stride, max_size=5):
    """(x [N, C, H, W], kernel, stride, padding, rng) with the kernel fitting the padded image."""
    kernel, padding = draw(st.integers(1, 3)), draw(st.integers(0, 1))
    low = max(1, kernel - 2 * padding)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(low, max_size)),
             draw(st.integers(low, max_size)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    integers = draw(st.booleans())  # small integers: many ties in the max
    x = rng.integers(-2, 3, shape) if integers else rng.standard_normal(shape)
    return x.astype(dtype), kernel, stride, padding, rng


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2])
@PER_CASE
@given(data=st.data(), filters=st.integers(1, TILE + 1))
def test_conv2d_passes_match_the_cpu(dtype, stride, data, filters):
    problem = data.draw(images(dtype, stride))
    x, k, s, p, rng = problem
    w = rng.standard_normal((filters, x.shape[1], k, k)).astype(x.dtype)
    cuda_conv = gpu("conv")
    y = conv.conv2d_forward(x, w, s, p)
    assert_close(cuda_conv.conv2d_forward(x, w, s, p), y)
    gy = rng.standard_normal(y.shape).astype(x.dtype)
    assert_close(cuda_conv.conv2d_backward_input(gy, w, x.shape, s, p),
                 conv.conv2d_backward_input(gy, w, x.shape, s, p))
    assert_close(cuda_conv.conv2d_backward_weight(gy, x, w.shape, s, p),
                 conv.conv2d_backward_weight(gy, x, w.shape, s, p))


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2])
@settings(deadline=None, max_examples=4)
@given(data=st.data())
def test_pooling_and_relu_match_the_cpu(dtype, stride, data):
    problem = data.draw(images(dtype, stride))
    x, k, s, p, rng = problem
    cuda_pool, cuda_relu = gpu("pool"), gpu("activation")
    y, argmax = pool.max_pool2d_forward(x, k, s, p)
    got_y, got_argmax = cuda_pool.max_pool2d_forward(x, k, s, p)
    assert_same(got_y, y)
    assert_same(got_argmax, argmax)
    gy = rng.standard_normal(y.shape).astype(x.dtype)
    assert_close(cuda_pool.max_pool2d_backward(gy, argmax, x.shape), pool.max_pool2d_backward(gy, argmax, x.shape))
    assert_same(cuda_pool.avg_pool2d_forward(x, k, s, p), pool.avg_pool2d_forward(x, k, s, p))
    assert_same(cuda_pool.avg_pool2d_backward(gy, x.shape, k, s, p), pool.avg_pool2d_backward(gy, x.shape, k, s, p))
    r = activation.relu_forward(x)
    assert_same(cuda_relu.relu_forward(x), r)
    g = rng.standard_normal(x.shape).astype(x.dtype)
    assert_same(cuda_relu.relu_backward(g, r), activation.relu_backward(g, r))


@st.composite
def distances(draw, dtype):
    """(x [B, n], w [m, n], gy [B, m]): small integers (many ties for the argmax) or continuous values."""
    batch, m, n = draw(st.integers(1, TILE + 1)), draw(st.integers(1, TILE + 2)), draw(st.integers(1, 2 * TILE + 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        x, w = rng.integers(-3, 4, (batch, n)), rng.integers(-3, 4, (m, n))
    else:
        x, w = rng.standard_normal((batch, n)), rng.standard_normal((m, n))
    return x.astype(dtype), w.astype(dtype), rng.standard_normal((batch, m)).astype(dtype)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@PER_CASE
@given(data=st.data(), p=st.sampled_from([1.0, 2.0, 2.5, 8.0]))
def test_linf_and_lp_dist_match_the_cpu(dtype, data, p):
    _check_distances(*data.draw(distances(dtype)), p)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_linf_and_lp_dist_match_the_cpu_past_a_tile_and_two_blocks(dtype, p=8.0):
    """Sizes that surely cross a second row and column of tiles and two tiles of n, and rows of w past two blocks
    of THREADS for the argmax scatter (one thread per row), which the drawn sizes may not all reach."""
    rng = np.random.default_rng(1)
    batch, m, n = TILE + 1, 2 * THREADS + 3, 2 * TILE + 1
    x, w, gy = (rng.standard_normal(shape).astype(dtype) for shape in ((batch, n), (m, n), (batch, m)))
    _check_distances(x, w, gy, p)


def _check_distances(x, w, gy, p):
    kernels, lp_kernels = gpu("linf_dist"), gpu("lp_dist")
    y, index = linf_dist.linf_dist_forward(x, w)
    got_y, got_index = kernels.linf_dist_forward(x, w)
    assert_same(got_y, y)
    assert_same(got_index, index)
    assert_same(kernels.linf_dist_values(x, w), y)
    for got, want in zip(kernels.linf_dist_backward(gy, x, w, index), linf_dist.linf_dist_backward(gy, x, w, index),
                         strict=True):
        assert_same(got, want)
    y_p = lp_dist.lp_dist_forward(x, w, p)
    np.testing.assert_allclose(lp_kernels.lp_dist_forward(x, w, p), y_p, **LP_CLOSE[x.dtype.type])
    for got, want in zip(lp_kernels.lp_dist_backward(gy, x, w, y_p, p), lp_dist.lp_dist_backward(gy, x, w, y_p, p),
                         strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, **LP_CLOSE[x.dtype.type])
    for backward, arguments in ((kernels.linf_dist_backward, (gy, x, w, index)),
                                (lp_kernels.lp_dist_backward, (gy, x, w, y_p, p))):
        skipped, gw = backward(*arguments, need_gx=False)  # a first layer's: no input gradient
        assert skipped is None
        assert_same(gw, backward(*arguments)[1])
    radius = x.dtype.type(0.5)
    for got, want in zip(kernels.interval_bounds(x - radius, x + radius, w),
                         linf_dist.interval_bounds(x - radius, x + radius, w), strict=True):
        assert_same(got, want)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1.0, 2.0, 8.0])
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_lp_dist_is_right_at_the_smallest_distances(dtype, p, scale):
    """Some outputs at a distance near the smallest normal number (scale 1) or subnormal (1/4, where 1 / y
    overflows) among ordinary ones, against the reference with a relative tolerance only."""
    tiny = np.finfo(dtype).tiny * scale
    x = np.array([[0, 0, 0], [1, 2, 3]], dtype)
    w = np.array([[tiny, 0, -tiny / 2], [0.5, -1, 2], [0, tiny / 4, 0]], dtype)
    kernels = gpu("lp_dist")
    y = kernels.lp_dist_forward(x, w, p)
    np.testing.assert_allclose(y, reference.lp_dist_forward(x, w, p), rtol=LP_CLOSE[dtype]["rtol"], atol=0)
    gy = np.full_like(y, 10)
    for got, want in zip(kernels.lp_dist_backward(gy, x, w, y, p), reference.lp_dist_backward(gy, x, w, y, p),
                         strict=True):
        assert np.all(np.isfinite(got)), got
        np.testing.assert_allclose(got, want, rtol=LP_CLOSE[dtype]["rtol"], atol=0)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_lp_dist_is_infinite_where_the_linf_distance_is_as_on_the_cpu(dtype):
    big = np.finfo(dtype).max
    x = np.array([[big, 0, 1], [np.inf, 0, 1], [0.5, 0, 1]], dtype)
    w = np.array([[-big, 0, 0], [0, 0, 0]], dtype)
    got, want = gpu("lp_dist").lp_dist_forward(x, w, 8.0), lp_dist.lp_dist_forward(x, w, 8.0)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    assert np.isinf(want).sum() == 3
    np.testing.assert_allclose(got[~np.isinf(want)], want[~np.isinf(want)], **LP_CLOSE[dtype])


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_lp_dist_passes_a_nan_on_as_the_cpu_does(dtype):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 10)).astype(dtype), rng.standard_normal((6, 10)).astype(dtype)
    w[1, 4] = np.nan
    kernels = gpu("lp_dist")
    y = lp_dist.lp_dist_forward(x, w, 8.0)
    results = [kernels.lp_dist_forward(x, w, 8.0), *kernels.lp_dist_backward(np.ones_like(y), x, w, y, 8.0)]
    for got, want in zip(results, [y, *lp_dist.lp_dist_backward(np.ones_like(y), x, w, y, 8.0)], strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], **LP_CLOSE[dtype])


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1.0, np.inf])
def test_a_nan_coordinate_gives_nan_gradients_as_on_the_cpu(dtype, p):
    """A NaN in x: the l-inf backward (and lp's at p = 1, where the power is 1) multiply gy by sign(d) = NaN, as
    the CPU does; the GPU took sign(NaN) for 0 and gave finite, plausible gradients."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 5)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    x[0, 1] = np.nan
    if p == np.inf:
        y, index = linf_dist.linf_dist_forward(x, w)
        got, want = gpu("linf_dist").linf_dist_backward(np.ones_like(y), x, w, index), linf_dist.linf_dist_backward(
            np.ones_like(y), x, w, index)
    else:
        y = lp_dist.lp_dist_forward(x, w, p)
        got, want = gpu("lp_dist").lp_dist_backward(np.ones_like(y), x, w, y, p), lp_dist.lp_dist_backward(
            np.ones_like(y), x, w, y, p)
    assert np.isnan(want[0]).any()
    for g, c in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(c))
        np.testing.assert_allclose(g[~np.isnan(c)], c[~np.isnan(c)], **LP_CLOSE[dtype])


@needs_cuda
def test_the_drawn_sizes_cross_the_kernels_tiles():
    assert (gpu("launch").TILE, gpu("launch").THREADS) == (TILE, THREADS)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_and_relu_match_the_cpu_past_two_blocks(dtype):
    """The drawn images hold fewer values than a GPU's block: here the pooled outputs (one thread each) and the
    ReLU's inputs run over more than two blocks of THREADS, the last one partial."""
    side = 2 * math.ceil(math.sqrt(THREADS)) + 2
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (1, 2, side, side)).astype(dtype)  # ties: the first maximal pixel wins on both
    y, argmax = pool.max_pool2d_forward(x, 2, 2, 0)
    assert y.size > 2 * THREADS and y.size % THREADS
    cuda_pool, cuda_relu = gpu("pool"), gpu("activation")
    got_y, got_argmax = cuda_pool.max_pool2d_forward(x, 2, 2, 0)
    assert_same(got_y, y)
    assert_same(got_argmax, argmax)
    gy = rng.standard_normal(y.shape).astype(dtype)
    assert_close(cuda_pool.max_pool2d_backward(gy, argmax, x.shape), pool.max_pool2d_backward(gy, argmax, x.shape))
    r = activation.relu_forward(x)
    assert_same(cuda_relu.relu_forward(x), r)
    g = rng.standard_normal(x.shape).astype(dtype)
    assert_same(cuda_relu.relu_backward(g, r), activation.relu_backward(g, r))


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_interval_bounds_keep_a_nan_as_the_cpu_does(dtype):
    # a max that drops NaN (fmax) would turn a NaN input into finite bounds, and a NaN prediction into a certificate
    lower = np.array([[np.nan, 0.0], [0.2, 0.3]], dtype)
    upper = np.array([[np.nan, 0.1], [0.4, 0.5]], dtype)
    w = np.array([[0.0, 0.0], [np.nan, 1.0]], dtype)
    for got, want in zip(gpu("linf_dist").interval_bounds(lower, upper, w), linf_dist.interval_bounds(lower, upper, w),
                         strict=True):
        assert np.isnan(want).sum() == 3
        assert_same(got, want)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nans", [False, True])
@PER_CASE
@given(shape=st.sampled_from([(1, 1), (2, 5), (3, 2, 7), (2, THREADS + 8)]), seed=st.integers(0, 2**32 - 1))
def test_attack_steps_and_projections_match_the_cpu(dtype, shape, seed, nans):
    rng = np.random.default_rng(seed)
    x = rng.random(shape).astype(dtype)
    x_adv = np.clip(x + 0.3 * rng.standard_normal(shape), -0.2, 1.2).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    steps = 0.2 * rng.random(shape[0])
    if nans:  # a diverged model's NaN must come out as NaN where the CPU's does, not as a point in the ball
        x_adv.flat[::3], g.flat[1::3], x.flat[2::5] = np.nan, np.nan, np.nan
    kernels = gpu("attack")
    assert_same(kernels.linf_step(x_adv, g, x, steps, 0.1, 0, 1), attack.linf_step(x_adv, g, x, steps, 0.1, 0, 1))
    assert_same(kernels.linf_project(x_adv, x, 0.1, 0, 1), attack.linf_project(x_adv, x, 0.1, 0, 1))
    assert_close(kernels.l2_step(x_adv, g, x, steps, 0.5, 0, 1), attack.l2_step(x_adv, g, x, steps, 0.5, 0, 1))
    assert_close(kernels.l2_project(x_adv, x, 0.5, 0, 1), attack.l2_project(x_adv, x, 0.5, 0, 1))


@needs_cuda
def test_attack_kernels_take_an_empty_batch():
    x, kernels = np.zeros((0, 2, 3), np.float32), gpu("attack")
    for out in (kernels.linf_step(x, x, x, np.zeros(0), 0.1, 0, 1), kernels.l2_step(x, x, x, np.zeros(0), 0.5, 0, 1),
                kernels.linf_project(x, x, 0.1, 0, 1), kernels.l2_project(x, x, 0.5, 0, 1)):
        assert out.shape == x.shape and out.dtype == x.dtype


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2, 3])
@PER_CASE
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
       seed=st.integers(0, 2**32 - 1))
def test_exact_conv_norm_sums_match_the_cpu(dtype, shape, stride, seed):
    _check_norm_sums(np.random.default_rng(seed).standard_normal(shape).astype(dtype), stride)


@needs_cuda
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(2 * THREADS + 3, 2, 3, 3), (3, 2 * THREADS + 3, 3, 3)])
def test_exact_conv_norm_sums_match_the_cpu_past_two_blocks(shape, stride):
    """More filters (one thread each for the filter sums) or tap classes (one thread each for the class sums)
    than two blocks of THREADS."""
    _check_norm_sums(np.random.default_rng(0).standard_normal(shape), stride)


def _check_norm_sums(w, stride):
    kernels = gpu("norms")
    np.testing.assert_allclose(kernels.conv_l1_class_sums(w, stride), norms.conv_l1_class_sums(w, stride), rtol=1e-12)
    np.testing.assert_allclose(kernels.conv_linf_filter_sums(w), norms.conv_linf_filter_sums(w), rtol=1e-12)


@needs_cuda
def test_device_arrays_stay_on_the_device():
    """Device arrays in give device arrays out, so a forward and its backward chain on the GPU; the values equal
    those of the host-array calls."""
    from numba import cuda

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 7)).astype(np.float32), rng.standard_normal((5, 7)).astype(np.float32)
    gy = rng.standard_normal((3, 5)).astype(np.float32)
    kernels = gpu("linf_dist")
    y, index = kernels.linf_dist_forward(cuda.to_device(x), cuda.to_device(w))
    assert hasattr(y, "copy_to_host") and hasattr(index, "copy_to_host")
    gx, gw = kernels.linf_dist_backward(cuda.to_device(gy), cuda.to_device(x), cuda.to_device(w), index)
    assert hasattr(gx, "copy_to_host")
    want_y, want_index = kernels.linf_dist_forward(x, w)
    assert isinstance(want_y, np.ndarray)
    assert_same(y.copy_to_host(), want_y)
    for got, want in zip((gx, gw), kernels.linf_dist_backward(gy, x, w, want_index), strict=True):
        assert_same(got.copy_to_host(), want)


@needs_cuda
def test_cuda_backend_runs_the_ops():
    """With the cuda backend chosen, a conv + max-pool + relu + l-inf-dist model's forward and backward go through
    the CUDA kernels and agree with the numba backend."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((2, 2, 3, 3))
    v = rng.standard_normal((3, 8))

    def run(backend):
        with use_backend(backend):
            xt, wt, vt = (sn.Tensor(a, requires_grad=True) for a in (x, w, v))
            h = sn.functional.relu(sn.functional.max_pool2d(sn.functional.conv2d(xt, wt, padding=1), 2))
            out = sn.functional.linf_dist(h.reshape(1, 8), vt)
            out.sum().backward()
            return [out.numpy(), xt.grad, wt.grad, vt.grad]

    for got, want in zip(run("cuda"), run("numba"), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


CHOOSE_CUDA = """
import sys
sys.modules["numba.cuda"] = None  # as if numba-cuda were not installed
import scratchnet as sn
try:
    sn.backend.set_backend("cuda")
except sn.backend.BackendUnavailable as error:
    print("MISSING:", error)
del sys.modules["numba.cuda"]
sn.backend.cuda_problem.cache_clear()
assert "numba.cuda" not in sys.modules, "importing scratchnet imported numba.cuda"
try:
    sn.backend.set_backend("cuda")
    print("GPU")
except sn.backend.BackendUnavailable as error:
    print("NO GPU:", error)
"""


def test_choosing_cuda_without_gpu_or_simulator_says_how_to_fix_it():
    """In a fresh interpreter without the simulator: scratchnet imports, and choosing cuda fails with a message that
    names the fix, both when numba.cuda is missing and when no GPU is present."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-c", CHOOSE_CUDA], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "MISSING:" in done.stdout and "pip install numba-cuda" in done.stdout, done.stdout
    if "GPU\n" in done.stdout and "NO GPU" not in done.stdout:
        pytest.skip("a real CUDA GPU is present, so choosing cuda succeeds (the missing-numba.cuda error was checked)")
    assert "NO GPU:" in done.stdout, done.stdout
    assert "NUMBA_ENABLE_CUDASIM=1" in done.stdout and "'numba'" in done.stdout, done.stdout


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="backend must be one of"):
        sn.backend.set_backend("opencl")


@needs_cuda
def test_a_device_array_with_a_foreign_dtype_object_is_read_by_its_interface(monkeypatch):
    """A torch CUDA tensor's dtype is torch.float32, never equal to np.float32: conv2d and the distance kernels
    refused it, though launch.py accepts any array with __cuda_array_interface__."""
    from numba import cuda

    class Foreign:  # a torch CUDA tensor, as the kernels see one
        def __init__(self, a):
            self.array, self.shape, self.dtype = cuda.to_device(a), a.shape, "torch.float32"

        @property
        def __cuda_array_interface__(self):
            return {"typestr": self.array.dtype.str, "shape": self.shape, "data": (0, False), "version": 3}

    # the simulator has no as_cuda_array; on a GPU this stands in for the conversion of the real interface
    monkeypatch.setattr(gpu("launch").cuda, "as_cuda_array", lambda a: a.array, raising=False)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 1, 4, 4), dtype=np.float32), rng.standard_normal((3, 1, 3, 3), dtype=np.float32)
    got = gpu("conv").conv2d_forward(Foreign(x), Foreign(w), 1, 0)
    assert_close(got.copy_to_host(), conv.conv2d_forward(x, w, 1, 0))
    x2, w2 = x.reshape(2, 16), rng.standard_normal((5, 16), dtype=np.float32)
    got_y, _ = gpu("linf_dist").linf_dist_forward(Foreign(x2), Foreign(w2))
    assert_same(got_y.copy_to_host(), linf_dist.linf_dist_forward(x2, w2)[0])
