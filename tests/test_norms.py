"""scratchnet.norms: linear and BatchNorm norms against their explicit matrices, the per-layer report of a model,
the errors on bad input, and the Numba norm kernels against the NumPy reference. (The conv formulas against the
explicit conv matrix are theory_checks/test_exact_conv_norms.py.)"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnet.norms as norms
from scratchnet import nn
from scratchnet.backend import use_backend
from scratchnet.kernels import norms as norm_kernels
from scratchnet.kernels import reference as reference_package
from scratchnet.kernels.reference import norms as reference
from tests.gradcheck import layouts


# ---------------------------------------------------------------------------------------------- linear, BatchNorm
def test_linear_norms_are_the_matrix_norms_of_the_weight():
    w = np.random.default_rng(0).standard_normal((7, 5))
    assert norms.linear_l1_norm(w) == norms.Norm(pytest.approx(np.linalg.norm(w, 1), rel=1e-14), True)
    assert norms.linear_linf_norm(w) == norms.Norm(pytest.approx(np.linalg.norm(w, np.inf), rel=1e-14), True)


def test_batchnorm_norm_is_the_norm_of_the_eval_mode_layer_as_a_diagonal_matrix():
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm1d(6).to(np.float64).eval()
    bn.weight.data[:] = rng.standard_normal(6)
    bn.running_var[:] = rng.uniform(0.1, 2.0, 6)
    bn.running_mean[:] = rng.standard_normal(6)
    x = rng.standard_normal((2, 6))
    # the layer's linear part: bn(x + e_c) - bn(x) = column c of the diagonal matrix
    d = (bn(x[:1] + np.eye(6)).numpy() - bn(x[:1]).numpy()).T
    value = norms.batchnorm_norm(bn.weight.data, bn.running_var, bn.eps)
    for order in (1, np.inf, 2):
        assert value.value == pytest.approx(np.linalg.norm(d, order), rel=1e-12)
    assert norms.batchnorm_norm(None, np.full(3, 3.0), 1.0).value == 0.5


# ---------------------------------------------------------------------------------------------- model report
def test_report_of_the_mnist_cnn():
    model = nn.models.mnist_cnn()
    rows = norms.layer_norms(model, (1, 28, 28))
    assert [(r.name, r.kind) for r in rows] == [("0", "conv"), ("2", "conv"), ("6", "linear"), ("8", "linear")]
    for r in rows:
        assert all(np.isfinite(v) and v > 0 for v in (r.l1, r.linf, r.spectral))
        assert r.l1_exact and r.linf_exact  # padding 1 on 28 x 28: large enough
    conv = model[2].weight.data
    assert rows[1].l1 == norms.conv_l1_norm(conv, 1, 1, 28).value
    assert rows[1].linf == norms.conv_linf_norm(conv, 1, 1, 28).value
    assert rows[3].spectral == pytest.approx(np.linalg.norm(model[8].weight.data.astype(np.float64), 2))
    assert model.training and all("forward" not in vars(m) for m in model.modules())


def test_report_records_each_input_size_flags_upper_bounds_and_reads_batchnorm():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 3),
                          nn.Flatten(), nn.Linear(4 * 2 * 2, 5), nn.BatchNorm1d(5)).to(np.float64)
    model[1].running_var[:] = [0.25, 1.0, 4.0]
    with use_backend("numpy"):  # tiny layers: NumPy's conv is faster than starting Numba's threads
        rows = norms.layer_norms(model, (2, 4, 4), tol=1e-8)
    assert [r.kind for r in rows] == ["conv", "batchnorm", "conv", "linear", "batchnorm"]
    # the second conv sees 4 x 4 with no padding: l1 needs 5 x 5 to be exact, l-inf is exact
    assert (rows[2].l1_exact, rows[2].linf_exact) == (False, True)
    assert rows[1].l1 == rows[1].linf == rows[1].spectral == pytest.approx(1 / np.sqrt(0.25 + 1e-5))
    explicit = np.linalg.norm(reference.conv_matrix(model[3].weight.data, (4, 4), 1, 0), 2)
    assert rows[2].spectral == pytest.approx(explicit, rel=1e-6)
    table = norms.format_norm_table(rows)
    assert len(table.splitlines()) == 6 and table.count("<=") == 1
    assert table.count(">=") == 2 and [r.spectral_exact for r in rows] == [False, True, False, True, True]


def test_plot_draws_three_bars_per_layer_and_saves(tmp_path):
    from matplotlib.figure import Figure

    rows = norms.layer_norms(nn.models.mnist_cnn(channels=(4, 8), hidden=16), (1, 28, 28))
    ax = norms.plot_norms(rows, ax=Figure().subplots())
    assert len(ax.patches) == 3 * len(rows)
    spectral = ax.patches[2 * len(rows):]  # the conv layers' estimates are dotted, the linear layers' SVDs plain
    assert [bar.get_hatch() or "" for bar in spectral] == [".." if r.kind == "conv" else "" for r in rows]
    norms.plot_norms(rows, path=tmp_path / "norms.png")
    assert (tmp_path / "norms.png").read_bytes()[:4] == b"\x89PNG" and len(list(tmp_path.iterdir())) == 1


# ---------------------------------------------------------------------------------------------- bad input
W = np.ones((2, 3, 3, 3))
BAD_CONV_ARGS = [
    (dict(weight=np.ones((3, 3, 3))), ValueError, "weight"),
    (dict(weight=np.ones((2, 3, 3, 3), dtype=np.int64)), TypeError, "weight"),
    (dict(weight=np.full((2, 3, 3, 3), np.nan)), ValueError, "weight"),
    (dict(stride=1.5), TypeError, "stride"),
    (dict(stride=0), ValueError, "stride"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding=0.5), TypeError, "padding"),
    (dict(input_size=2), ValueError, "input_size"),
    (dict(input_size=(5, 5, 5)), ValueError, "input_size"),
    (dict(input_size=8.0), TypeError, "input_size"),
    (dict(padding_mode="circular"), ValueError, "padding_mode"),
]


@pytest.mark.parametrize("norm", [norms.conv_l1_norm, norms.conv_linf_norm, norms.conv_spectral_norm])
@pytest.mark.parametrize(("change", "error", "name"), BAD_CONV_ARGS, ids=[
    "3-D weight", "int weight", "NaN weight", "stride 1.5", "stride 0", "padding -1", "padding 0.5",
    "input 2 < kernel 3", "input (5, 5, 5)", "input 8.0", "circular padding"])
def test_bad_conv_arguments_raise_naming_the_argument(norm, change, error, name):
    args = dict(weight=W, stride=1, padding=0, input_size=5) | change
    mode = args.pop("padding_mode", "zeros")
    with pytest.raises(error, match=name):
        norm(*args.values(), padding_mode=mode)


def test_input_smaller_than_the_kernel_but_covered_by_padding_is_an_upper_bound():
    # 5 x 5 kernel, 3 x 3 input, padding 1: one output, and no window or pixel sees every tap
    w = np.ones((2, 1, 5, 5))
    assert norms.conv_l1_norm(w, 1, 1, 3) == norms.Norm(50.0, False)
    assert norms.conv_linf_norm(w, 1, 1, 3) == norms.Norm(25.0, False)


def test_power_iterations_stop_accounts_for_slow_convergence():
    """Stopping at a relative change below tol left a random 16 -> 16 channel 3x3 layer 1.7% below its norm at
    tol = 1e-3 (the top singular values are close, and the steps shrink slowly: the rest of the series is many
    times the last step)."""
    w = np.random.default_rng(0).standard_normal((16, 16, 3, 3)) / np.sqrt(16 * 9)
    quick = norms.conv_spectral_norm(w, 1, 1, 16)
    long = norms.conv_spectral_norm(w, 1, 1, 16, tol=1e-12, max_iter=3000)  # a lower bound too
    assert quick.converged
    assert quick.value <= long.value and long.value - quick.value <= 2e-3 * long.value


def test_a_conv_that_reads_only_padding_has_spectral_norm_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0 / 0 on the way
        assert norms.conv_spectral_norm(np.ones((1, 1, 1, 1)), 2, 1, 1) == norms.SpectralNorm(0.0, 1, True)


@pytest.mark.parametrize(("kwargs", "name"), [(dict(tol=0.0), "tol"), (dict(tol="1e-3"), "tol"),
                                              (dict(tol=True), "tol"), (dict(tol=1.0), "tol"),
                                              (dict(tol=float("inf")), "tol"), (dict(max_iter=0), "max_iter")])
def test_bad_power_iteration_settings(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        norms.conv_spectral_norm(W, 1, 0, 5, **kwargs)


def test_circular_singular_values_need_n_at_least_the_kernel():
    with pytest.raises(ValueError, match="n must be"):
        norms.circular_conv_singular_values(W, 2)


def test_linear_norm_needs_a_matrix():
    with pytest.raises(ValueError, match="weight"):
        norms.linear_l1_norm(W)


def test_batchnorm_norm_rejects_a_non_positive_variance():
    with pytest.raises(ValueError, match="running_var"):
        norms.batchnorm_norm(np.ones(2), np.array([1.0, -1.0]), 1e-5)


def test_plot_needs_a_target():
    with pytest.raises(ValueError, match="ax or path"):
        norms.plot_norms([])


class _SkipsALayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Conv2d(1, 2, 3), nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return self.used(x)


def test_report_needs_every_conv_to_run():
    with pytest.raises(ValueError, match="'unused' did not run"):
        norms.layer_norms(_SkipsALayer(), (1, 5, 5))


# ---------------------------------------------------------------------------------------------- kernels
@settings(deadline=None, max_examples=60)
@given(st.data(), st.sampled_from([np.float32, np.float64]), st.integers(0, 5), st.integers(1, 5),
       st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_numba_kernels_match_the_reference(data, dtype, f, c, kh, kw, stride, seed):
    w = data.draw(layouts(np.random.default_rng(seed).standard_normal((f, c, kh, kw)).astype(dtype)))
    for ours, expected in ((norm_kernels.conv_l1_class_sums(w, stride), reference.conv_l1_class_sums(w, stride)),
                           (norm_kernels.conv_linf_filter_sums(w), reference.conv_linf_filter_sums(w))):
        assert ours.dtype == expected.dtype == np.float64 and ours.shape == expected.shape
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend, module", [("numpy", reference_package), ("numba", norm_kernels)])
def test_the_norms_and_the_norm_decay_run_the_kernels_of_the_chosen_backend(backend, module, monkeypatch):
    from scratchnet import backend as backends
    from scratchnet.regularizers import norm_subgradient

    calls = []
    for name in ("conv_l1_class_sums", "conv_linf_filter_sums"):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, original=original, name=name: calls.append(name) or original(*a))
    monkeypatch.setattr(backends, "_kernels", {})  # resolve the kernels anew, past the patched functions
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3))
    with use_backend(backend):
        norms.conv_l1_norm(w, 1, 1, (8, 8)), norms.conv_linf_norm(w, 1, 1, (8, 8))
        norm_subgradient(w, "l1"), norm_subgradient(w, "linf")
    assert calls == ["conv_l1_class_sums", "conv_linf_filter_sums"] * 2
