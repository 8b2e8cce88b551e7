"""l-inf-dist and lp-dist layers (Zhang et al. 2021, ICML, Sections 3-4): the Numba kernels against the NumPy
reference and torch.cdist, with x [512, 1024] and w [1024, 1024] in float32 (the issue's shape).

torch's forward+backward is cdist followed by autograd's backward with a random output gradient; before timing,
each row's results are checked against torch's (`torch_results`: "equal", "close" or "MISMATCH"). Each row's name
also gives our throughput in elements per second (B * m * n / time; one element = one |x_j - w_j| term) and its
fraction of the arithmetic peak of the threads it runs on. Peak assumption: threads (--threads, one per core) x GHz
x 8 float32 SIMD lanes (AVX2) x 2 vector operations per cycle, with the clock read from lscpu (3.2 GHz, the boost
clock of this machine's EPYC, when lscpu does not report one). One l-inf element costs three vector operations
(subtract, absolute value, max) and an lp element more; Zen 3 can issue up to four vector operations a cycle, two of
them multiplies, so l-inf's ceiling lies between 1/3 and 2/3 of this peak. "values only" is the forward without the
argmax, which `functional.linf_dist` runs when no gradient is needed.
The reference builds [B, m, n] arrays (2 GB each at this shape), so it runs on the first B_REFERENCE rows of x
and its time is scaled by B / B_REFERENCE (it is linear in B).
"""

import re
import subprocess

import numba
import numpy as np

from benchmarks.timing import agreement, best_times, in_sequence, row
from scratchnet.backend import kernel, use_backend
from scratchnet.kernels import linf_dist, lp_dist

DESCRIPTION = "l-inf-dist forward, forward+backward, and lp-dist (p = 8) forward+backward"

B, N, M = 512, 1024, 1024
B_REFERENCE = 32
P = 8.0
LANES, OPS_PER_CYCLE, DEFAULT_GHZ = 8, 2, 3.2


def peak_ops_per_second() -> float:
    """threads x GHz x SIMD lanes x vector operations per cycle (see the module docstring): the peak of the threads
    the kernels run on (`--threads`), not of every core of the machine."""
    ghz = DEFAULT_GHZ
    try:
        found = re.search(r"CPU max MHz:\s*([\d.]+)", subprocess.run(["lscpu"], capture_output=True, text=True).stdout)
        if found:
            ghz = float(found.group(1)) / 1000
    except OSError:
        pass
    return numba.get_num_threads() * ghz * 1e9 * LANES * OPS_PER_CYCLE


def _torch_variants(torch, x, w, gy):
    xt, wt, gyt = (torch.from_numpy(a) for a in (x, w, gy))
    xg, wg = xt.clone().requires_grad_(), wt.clone().requires_grad_()

    def forward():
        with torch.no_grad():
            return torch.cdist(xt, wt, p=float("inf"))

    def forward_backward(p):
        def run():
            xg.grad = wg.grad = None
            y = torch.cdist(xg, wg, p=p)
            y.backward(gyt)
            return y, xg.grad, wg.grad

        return run

    return {"forward": forward, "forward, values only": forward, "forward+backward": forward_backward(float("inf")),
            "lp forward+backward": forward_backward(P)}


def _maximal(x, w, y):
    """Per output y[b, m] = max_j |x[b, j] - w[m, j]|: whether the maximum is reached at more than one coordinate j,
    and the first j that reaches it (the argmax the kernels promise)."""
    ties, first = np.empty(y.shape, bool), np.empty(y.shape, np.int64)
    for b in range(len(x)):
        hit = np.abs(x[b] - w) == y[b, :, None]
        ties[b], first[b] = hit.sum(axis=1) > 1, hit.argmax(axis=1)
    return ties, first


def _torch_results(torch, x, w, gy):
    """Our results against torch's, row by row: the l-inf values bit for bit (both take the max of the same rounded
    differences) and the forward's argmax against the first maximal coordinate of torch's values, the gradients and
    lp to rounding. torch's l-inf gradient goes to every maximal coordinate of an
    output, ours to the first, so outputs with a tie are left out of the gradient check (at this shape even
    continuous float32 data has one in about every other draw)."""
    y, index = linf_dist.linf_dist_forward(x, w)
    theirs = _torch_variants(torch, x, w, gy)["forward"]().numpy()
    ties, first = _maximal(x, w, theirs)
    untied = np.where(ties, np.float32(0), gy)
    linf = _torch_variants(torch, x, w, untied)["forward+backward"]()
    lp = _torch_variants(torch, x, w, gy)["lp forward+backward"]()
    y_p = lp_dist.lp_dist_forward(x, w, P)
    return {"forward": agreement([(y, theirs), (index, first.astype(index.dtype))], exact=True),
            "forward, values only": agreement([(linf_dist.linf_dist_values(x, w), linf[0])], exact=True),
            "forward+backward": agreement(zip(linf_dist.linf_dist_backward(untied, x, w, index), linf[1:],
                                              strict=True), exact=False),
            "lp forward+backward": agreement(zip((y_p, *lp_dist.lp_dist_backward(gy, x, w, y_p, P)), lp,
                                                 strict=True), exact=False)}


def _variants(backend, x, w, gy):
    """The timed calls of one backend's kernels, looked up by name as the ops look them up."""
    with use_backend(backend):
        forward, values, backward, lp_forward, lp_backward = (kernel(name) for name in (
            "linf_dist_forward", "linf_dist_values", "linf_dist_backward", "lp_dist_forward", "lp_dist_backward"))
    y, index = forward(x, w)
    y_p = lp_forward(x, w, P)
    return {
        "forward": lambda: forward(x, w),
        "forward, values only": lambda: values(x, w),
        "forward+backward": in_sequence(lambda: forward(x, w), lambda: backward(gy, x, w, index)),
        "lp forward+backward": in_sequence(lambda: lp_forward(x, w, P), lambda: lp_backward(gy, x, w, y_p, P)),
    }


def run(repeat: int, torch=None) -> list[dict]:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((B, N), dtype=np.float32), rng.standard_normal((M, N), dtype=np.float32)
    gy = rng.standard_normal((B, M), dtype=np.float32)
    ours = _variants("numba", x, w, gy)
    ref = _variants("numpy", x[:B_REFERENCE], w, gy[:B_REFERENCE])
    theirs = _torch_variants(torch, x, w, gy) if torch is not None else {}
    results = _torch_results(torch, x, w, gy) if torch is not None else {}
    peak, elements = peak_ops_per_second(), B * M * N
    rows = []
    for name in ours:
        times = best_times({"ours": ours[name], "reference": ref[name], "torch": theirs.get(name)}, repeat)
        times["reference"] *= B / B_REFERENCE
        rate = elements / times["ours"]
        label = name if name.startswith("lp") else f"linf {name}"
        rows.append(row(f"{label} ({rate / 1e9:.1f} G elem/s, {rate / peak:.1%} of peak)",
                        f"x[{B},{N}] w[{M},{N}] float32" + (f" p={P:g}" if name.startswith("lp") else ""), times)
                    | {"torch_results": results.get(name)})
    return rows
