"""Operator norms of the layers of a CNN: exact l1 and l-inf, the spectral norm, and a per-layer report.

Liang & Huang 2021, "Large Norms of CNN Layers Do Not Hurt Adversarial Robustness" (AAAI), compute the l1 and
l-inf operator norms of a 2-D multi-channel conv layer x -> A x (A is (C_out m^2) x (C_in n^2)) from its weight
W [C_out, C_in, k, k] without building A; as their code does it (the paper's theorem is not quoted here, see
below), with the stride's tap classes:

    ||A||_inf = max_o     sum_{c, i, j} |W[o, c, i, j]|                              (one filter)
    ||A||_1   = max_{c, G} sum_o sum_{(i, j) in G} |W[o, c, i, j]|                    (one channel)

where G runs over the tap classes: the taps that reach one input pixel through the output positions. With
stride 1 a pixel far enough from the border is reached by every tap, so G is the whole kernel; with stride s it is
reached by the taps i = r1, j = r2 (mod s) of one residue class. Both formulas always bound the norm from above
(every row or column sum of A is a partial sum of one of them), and they equal it once the input is large enough
for the border not to matter; `Norm.exact` says which, for the given input size (see `linf_formula_is_exact`,
`l1_formula_is_exact`). Linear and BatchNorm layers follow in the same way, the spectral norm comes from power
iteration, and the singular values of the circular conv from the FFT (Sedghi et al. 2019). Only the paper's
abstract and Algorithm 1 were at hand: the exactness conditions are derived and checked numerically
(shared/specs/conv-norms.md, Sec. 1; theory_checks/test_exact_conv_norms.py), not quoted.
"""

import numbers
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from scratchnet.backend import kernel
from scratchnet.functional.conv import check_int
from scratchnet.kernels.reference.conv import output_size
from scratchnet.nn.layers import BatchNorm1d, BatchNorm2d, Conv2d, Linear
from scratchnet.nn.module import eval_mode
from scratchnet.tensor import FLOAT_DTYPES, Tensor, no_grad

RATES = 3  # how many ratios of successive power-iteration steps estimate its rate of convergence


@dataclass(frozen=True)
class Norm:
    """An operator norm: `value` equals it when `exact`, and is an upper bound on it otherwise."""

    value: float
    exact: bool


@dataclass(frozen=True)
class SpectralNorm:
    """A power-iteration estimate of the largest singular value (never above it), after `iterations` steps;
    `converged` is False when the iteration cap came before the estimated relative error fell below the tolerance
    (or before sigma stopped rising, at the rounding floor)."""

    value: float
    iterations: int
    converged: bool


# ---------------------------------------------------------------------------------------------- checks
def _weight(weight, ndim: int, layout: str) -> np.ndarray:
    w = weight.numpy() if isinstance(weight, Tensor) else np.asarray(weight)
    if w.dtype not in FLOAT_DTYPES:
        raise TypeError(f"weight must be float32 or float64, got dtype {w.dtype}")
    if w.ndim != ndim or w.size == 0:
        raise ValueError(f"weight must be a non-empty {ndim}-D array {layout}, got shape {w.shape}")
    return w


def _conv_args(weight, stride, padding, input_size, padding_mode):
    """The checked (W, stride, padding, (h, w)) of a conv layer, or an error naming the bad argument."""
    w = _weight(weight, 4, "[C_out, C_in, kh, kw]")
    if padding_mode != "zeros":
        raise ValueError(f"padding_mode must be 'zeros' (the formulas are for zero padding), got {padding_mode!r}")
    stride, padding = check_int(stride, "stride", 1), check_int(padding, "padding", 0)
    sizes = tuple(input_size) if isinstance(input_size, tuple | list) else (input_size, input_size)
    if len(sizes) != 2:
        raise ValueError(f"input_size must be an int or a pair (h, w), got {input_size!r}")
    sizes = tuple(check_int(size, "input_size", 1) for size in sizes)
    for size, k in zip(sizes, w.shape[2:], strict=True):
        if size + 2 * padding < k:
            raise ValueError(f"input_size {size} plus padding 2 x {padding} is smaller than the kernel ({k}): "
                             f"the conv has no output")
    return w, stride, padding, sizes


def _finite(value: float, name: str) -> float:
    if not np.isfinite(value):
        raise ValueError(f"weight holds NaN or inf: its {name} norm is {value}")
    return float(value)


# ---------------------------------------------------------------------------------------------- exactness
def _taps_reaching_pixels(size, kernel_size, stride, padding) -> list[set]:
    """I(u) for every input row u: the taps i for which some output row t reads u = stride t - padding + i."""
    reached = [set() for _ in range(size)]
    for t in range(output_size(size, kernel_size, stride, padding)):
        for i in range(kernel_size):
            u = stride * t - padding + i
            if 0 <= u < size:
                reached[u].add(i)
    return reached


def linf_formula_is_exact(size, kernel_size, stride, padding) -> bool:
    """Along one axis: does some output window lie entirely inside the unpadded input? Then that row of A holds
    a whole filter and the l-inf formula is exact for every W (otherwise it is strictly above the norm for some
    W). In closed form: kernel_size + stride ceil(padding / stride) - padding <= size."""
    return any(0 <= stride * t - padding and stride * t - padding + kernel_size <= size
               for t in range(output_size(size, kernel_size, stride, padding)))


def l1_formula_is_exact(size, kernel_size, stride, padding) -> bool:
    """Along one axis: is every residue class {i : i = r (mod stride)} of taps the tap set I(u) of some input
    row u? Then every class sum is a column sum of A and the l1 formula is exact for every W (otherwise it is
    strictly above the norm for some W). With stride 1 this is size >= 2 kernel_size - 1 - 2 padding."""
    reached = _taps_reaching_pixels(size, kernel_size, stride, padding)
    return all(set(range(r, kernel_size, stride)) in reached for r in range(min(stride, kernel_size)))


# ---------------------------------------------------------------------------------------------- conv layers
def conv_l1_norm(weight, stride, padding, input_size, *, padding_mode="zeros") -> Norm:
    """||A||_1 = max_{c, r1, r2} sum_o sum_{i = r1, j = r2 (mod stride)} |W[o, c, i, j]| for the zero-padded conv
    on a C_in x h x w input (Liang & Huang 2021, as their code computes it: the largest column sum of A; with
    stride 1 the largest per-input-channel sum of |W|). Exact when `l1_formula_is_exact` holds along both axes,
    else an upper bound."""
    w, stride, padding, sizes = _conv_args(weight, stride, padding, input_size, padding_mode)
    value = _finite(kernel("conv_l1_class_sums")(w, stride).max(), "l1")
    exact = all(l1_formula_is_exact(n, k, stride, padding) for n, k in zip(sizes, w.shape[2:], strict=True))
    return Norm(value, exact)


def conv_linf_norm(weight, stride, padding, input_size, *, padding_mode="zeros") -> Norm:
    """||A||_inf = max_o sum_{c, i, j} |W[o, c, i, j]| for the zero-padded conv on a C_in x h x w input (Liang &
    Huang 2021, as their code computes it: the largest row sum of A, the largest per-filter sum of |W|). Exact when
    `linf_formula_is_exact` holds along both axes, else an upper bound."""
    w, stride, padding, sizes = _conv_args(weight, stride, padding, input_size, padding_mode)
    value = _finite(kernel("conv_linf_filter_sums")(w).max(), "l-inf")
    exact = all(linf_formula_is_exact(n, k, stride, padding) for n, k in zip(sizes, w.shape[2:], strict=True))
    return Norm(value, exact)


def conv_spectral_norm(weight, stride, padding, input_size, *, tol=1e-3, max_iter=1000, seed=0,
                       padding_mode="zeros") -> SpectralNorm:
    """||A||_2 by power iteration on A^T A, through the conv (A x) and its transpose (the input gradient, A^T y):
    x <- A^T A x / ||x||, sigma = ||A x|| for unit x (the baseline that Liang & Huang 2021 time their exact l1 /
    l-inf norms against). sigma rises towards the norm from below, its steps shrinking in the end geometrically,
    by a rate r close to 1 when the top singular values are close (as in random conv weights). So the iteration
    stops when the rest of that series, step r / (1 - r), is below tol sigma, with r the largest ratio of
    successive steps among the last RATES (the first steps, while other directions die out, shrink faster): an
    estimate of the relative error, where the last step alone understates it (by 17x at r = 0.94). An estimate,
    not a bound: an iteration that has not yet reached its geometric regime can stop early (at tol = 1e-3 the
    worst of 60 random small convs was 1.2% low, the median within tol)."""
    w, stride, padding, (h, v) = _conv_args(weight, stride, padding, input_size, padding_mode)
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < tol < 1:
        raise ValueError(f"tol must be a relative error in (0, 1), got {tol!r}")
    max_iter = check_int(max_iter, "max_iter", 1)
    forward, transpose = kernel("conv2d_forward"), kernel("conv2d_backward_input")
    w = np.ascontiguousarray(w)
    x = np.random.default_rng(seed).standard_normal((1, w.shape[1], h, v)).astype(w.dtype)
    sigma, steps = 0.0, []  # the steps sigma_t - sigma_{t-1} since the second iteration (the first is from 0)
    for iteration in range(1, max_iter + 1):
        x /= np.linalg.norm(x)
        y = forward(x, w, stride, padding)
        previous, sigma = sigma, _finite(float(np.linalg.norm(y)), "spectral")
        if sigma == 0:  # A x = 0 for a random x: A = 0 (almost surely), e.g. every tap on padding
            return SpectralNorm(0.0, iteration, True)
        if iteration > 1:
            if sigma <= previous:  # sigma can only rise: rounding has the last word
                return SpectralNorm(previous, iteration, True)
            steps = [*steps[-RATES:], sigma - previous]
            if len(steps) > RATES:
                rate = max(later / earlier for earlier, later in zip(steps[:-1], steps[1:], strict=True))
                if rate < 1 and steps[-1] * rate / (1 - rate) <= tol * sigma:
                    return SpectralNorm(sigma, iteration, True)
        x = transpose(y, w, x.shape, stride, padding)
    return SpectralNorm(sigma, max_iter, False)


def circular_conv_singular_values(weight, n) -> np.ndarray:
    """All singular values of the stride-1 circular conv on C_in x n x n inputs, shape [n, n, min(C_out, C_in)]:
    at each frequency (f1, f2), those of the C_out x C_in matrix FFT2(W zero-padded to n x n)[:, :, f1, f2]
    (Sedghi, Gupta & Long 2019; Liang & Huang 2021 clip them, singular value clipping)."""
    w = _weight(weight, 4, "[C_out, C_in, kh, kw]")
    n = check_int(n, "n", 1)
    if n < max(w.shape[2:]):
        raise ValueError(f"n must be >= the kernel size {w.shape[2:]}, got {n}")
    transfer = np.fft.fft2(w, s=(n, n), axes=(2, 3))
    return np.linalg.svd(transfer.transpose(2, 3, 0, 1), compute_uv=False)


# ---------------------------------------------------------------------------------------------- other layers
def linear_l1_norm(weight) -> Norm:
    """||W||_1 = max_j sum_i |W[i, j]| (largest absolute column sum) of y = W x, W [out, in]
    (Liang & Huang 2021, fully connected layers)."""
    w = _weight(weight, 2, "[out_features, in_features]")
    return Norm(_finite(np.abs(w).sum(axis=0, dtype=np.float64).max(), "l1"), True)


def linear_linf_norm(weight) -> Norm:
    """||W||_inf = max_i sum_j |W[i, j]| (largest absolute row sum) of y = W x, W [out, in]
    (Liang & Huang 2021, fully connected layers)."""
    w = _weight(weight, 2, "[out_features, in_features]")
    return Norm(_finite(np.abs(w).sum(axis=1, dtype=np.float64).max(), "l-inf"), True)


def batchnorm_norm(weight, running_var, eps) -> Norm:
    """max_c |gamma_c| / sqrt(running_var_c + eps): BatchNorm in eval mode is the diagonal map x_c -> gamma_c x_c /
    sigma_c plus a shift, so this is its l1, l-inf and spectral norm alike (Liang & Huang 2021 treat
    BatchNorm as a layer of its own). `weight` None means gamma = 1 (affine=False)."""
    var = np.asarray(running_var, dtype=np.float64)
    gamma = np.ones_like(var) if weight is None else np.asarray(_weight(weight, 1, "[C]"), dtype=np.float64)
    if var.ndim != 1 or gamma.shape != var.shape:
        raise ValueError(f"running_var must be 1-D like weight {gamma.shape}, got shape {var.shape}")
    if not eps >= 0 or np.any(var + eps <= 0):
        raise ValueError(f"running_var + eps must be > 0, got eps {eps} and min(running_var) {var.min()}")
    return Norm(_finite(np.max(np.abs(gamma) / np.sqrt(var + eps)), "BatchNorm"), True)


# ---------------------------------------------------------------------------------------------- whole models
@dataclass(frozen=True)
class LayerNorms:
    """One row of `layer_norms`: a layer's l1, l-inf and spectral norms and whether each is exact (l1 and l-inf
    are upper bounds otherwise; a conv's spectral norm is a power-iteration estimate, a lower bound)."""

    name: str
    kind: str
    l1: float
    linf: float
    spectral: float
    l1_exact: bool
    linf_exact: bool
    spectral_exact: bool = True


def conv_input_sizes(model, input_shape) -> dict:
    """{module: (h, w)} of every Conv2d's input, recorded on one eval-mode forward pass of a zero example."""
    sizes = {}

    def recorder(conv):
        def forward(x):
            sizes[conv] = tuple(x.shape[2:])
            return type(conv).forward(conv, x)
        return forward

    convs = [m for m in model.modules() if isinstance(m, Conv2d)]
    dtype = model.parameters()[0].dtype
    try:
        for conv in convs:
            conv.forward = recorder(conv)
        with eval_mode(model), no_grad():
            model(np.zeros((1, *input_shape), dtype=dtype))
    finally:
        for conv in convs:
            del conv.forward
    return sizes


def layer_norms(model, input_shape, *, tol=1e-3, max_iter=1000) -> list[LayerNorms]:
    """The norms of every Conv2d, Linear and BatchNorm layer of `model` in module order, for inputs of shape
    `input_shape` (one example, e.g. (1, 28, 28)). Liang & Huang 2021 compare these per-layer norms
    across regularizers and training methods. Spectral norms: power iteration to `tol` for conv layers, the SVD
    for linear ones."""
    sizes = conv_input_sizes(model, tuple(input_shape))
    rows = []
    for name, m in model.named_modules():
        if isinstance(m, Conv2d):
            if m not in sizes:
                raise ValueError(f"layer {name!r} did not run in a forward pass on input_shape {input_shape}")
            args = (m.weight.data, m.stride, m.padding, sizes[m])
            l1, linf = conv_l1_norm(*args), conv_linf_norm(*args)
            spectral = conv_spectral_norm(*args, tol=tol, max_iter=max_iter).value
            rows.append(LayerNorms(name, "conv", l1.value, linf.value, spectral, l1.exact, linf.exact, False))
        elif isinstance(m, Linear):
            l1, linf = linear_l1_norm(m.weight.data), linear_linf_norm(m.weight.data)
            spectral = float(np.linalg.norm(m.weight.data.astype(np.float64), 2))
            rows.append(LayerNorms(name, "linear", l1.value, linf.value, spectral, True, True))
        elif isinstance(m, BatchNorm1d | BatchNorm2d):
            value = batchnorm_norm(None if m.weight is None else m.weight.data, m.running_var, m.eps).value
            rows.append(LayerNorms(name, "batchnorm", value, value, value, True, True))
    return rows


def format_norm_table(rows: list[LayerNorms]) -> str:
    """A text table of `layer_norms` rows; '<=' marks an upper bound (the input is too small for exactness), '>='
    a lower one (power iteration's estimate)."""
    def cell(value, exact=True, mark="<= "):
        return f"{'' if exact else mark}{value:.4g}"

    width = max([len("layer")] + [len(r.name) for r in rows])
    lines = [f"{'layer':{width}s}  {'kind':9s}  {'l1':>12s}  {'l-inf':>12s}  {'spectral':>12s}"]
    for r in rows:
        lines.append(f"{r.name:{width}s}  {r.kind:9s}  {cell(r.l1, r.l1_exact):>12s}  "
                     f"{cell(r.linf, r.linf_exact):>12s}  {cell(r.spectral, r.spectral_exact, '>= '):>12s}")
    return "\n".join(lines)


def plot_norms(rows: list[LayerNorms], ax=None, path=None):
    """Bars of each layer's l1, l-inf and spectral norm (log scale; bars hatched "//" are upper bounds, dotted ones
    lower bounds), drawn into `ax`, or into a new figure saved atomically to `path`. Returns the axes."""
    if ax is None and path is None:
        raise ValueError("plot_norms needs ax or path, got neither")
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(max(6.0, 0.9 * len(rows)), 4.0), layout="constrained").subplots()
    x = np.arange(len(rows))
    series = [("l1", [r.l1 for r in rows], [r.l1_exact for r in rows], "//"),
              ("l-inf", [r.linf for r in rows], [r.linf_exact for r in rows], "//"),
              ("spectral", [r.spectral for r in rows], [r.spectral_exact for r in rows], "..")]
    for k, (label, values, exact, hatch) in enumerate(series):
        bars = ax.bar(x + (k - 1) * 0.27, values, width=0.27, label=label)
        for bar, is_exact in zip(bars, exact, strict=True):
            bar.set_hatch("" if is_exact else hatch)
    ax.set_xticks(x, [f"{r.name}\n{r.kind}" for r in rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("operator norm")
    ax.legend()
    if path is not None:
        path = os.fspath(path)
        fd, tmp = tempfile.mkstemp(suffix=os.path.splitext(path)[1], dir=os.path.dirname(path) or ".")
        os.close(fd)
        ax.figure.savefig(tmp)
        os.replace(tmp, path)
    return ax
