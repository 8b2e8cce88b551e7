"""Exact l1 / l-inf norms of a conv layer against power iteration (Liang & Huang 2021 time the same comparison).

"ours" is the exact formula (one pass over |W| plus the exactness test for the input size), "reference" the
spectral norm by power iteration through the conv and its transpose, stopped when its estimated remaining error
falls below 1e-3 of the norm (`norms.conv_spectral_norm`; the shape column gives its number of steps), and "torch"
the same formula written in PyTorch. Power iteration is timed once per shape and its time stands as the reference
of both the l1 and the l-inf row. The issue's bar: both at least 100x faster. Both sides run on the active backend
(`--backend`, numba by default), which the shape column names. Before timing, our norms are checked against
torch's formula ("close": sums in another order).
"""

from functools import partial

import numpy as np

from benchmarks.timing import agreement, best_times, row
from scratchnet import norms
from scratchnet.backend import get_backend

DESCRIPTION = "exact l1 and l-inf norms of a 512x256x3x3 conv against power iteration to 1e-3"

# (label, C_out, C_in, kernel, input side, stride, padding)
SHAPES = [
    ("3x3", 512, 256, 3, 32, 1, 1),
    ("3x3 stride 2", 512, 256, 3, 32, 2, 1),
]


def _torch_norms(torch, w, stride):
    wt = torch.from_numpy(w)

    def l1():
        per_tap = wt.abs().sum(dim=0)
        return max(per_tap[:, r1::stride, r2::stride].sum(dim=(1, 2)).max().item()
                   for r1 in range(min(stride, w.shape[2])) for r2 in range(min(stride, w.shape[3])))

    def linf():
        return wt.abs().sum(dim=(1, 2, 3)).max().item()

    return {"l1": l1, "l-inf": linf}


def _recording(fn, results: list):
    """fn, appending each result to `results` (to read what a timed call returned)."""
    return lambda: results.append(fn())


def run(repeat: int, torch=None) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for label, f, c, k, side, stride, padding in SHAPES:
        w = rng.standard_normal((f, c, k, k), dtype=np.float32) / np.float32(np.sqrt(c * k * k))
        layer = (w, stride, padding, side)
        ours = {"l1": partial(norms.conv_l1_norm, *layer), "l-inf": partial(norms.conv_linf_norm, *layer)}
        theirs = _torch_norms(torch, w, stride) if torch is not None else {}
        spectral = []
        power = best_times({"ours": _recording(partial(norms.conv_spectral_norm, *layer, tol=1e-3), spectral)}, repeat)
        shape = (f"w[{f},{c},{k},{k}] input {side}x{side} stride {stride} padding {padding} float32, "
                 f"{spectral[-1].iterations} power-iteration steps, backend {get_backend()}")
        for name in ours:
            results = None
            if torch is not None:
                results = agreement([(np.float64(ours[name]().value), np.float64(theirs[name]()))], exact=False)
            # sub-millisecond calls: more rounds, for a minimum that the machine's noise does not decide
            times = best_times({"ours": ours[name], "torch": theirs.get(name)}, max(repeat, 20))
            rows.append(row(f"norms {label} exact {name} vs power iteration", shape,
                            times | {"reference": power["ours"]}) | {"torch_results": results})
    return rows
