"""Timing shared by the benchmark modules: the variants of a job (ours, the reference, torch) run in rotating
order in one process, and a row reports the fastest call of each and the ratios between them. Before timing, a
job checks that our results agree with the other implementation's on the benchmark's own shapes (the tests run
the kernels on small shapes only), so that a fast wrong kernel cannot pass for a speed-up."""

import time

import numpy as np


def best_times(variants: dict, repeat: int) -> dict:
    """{name: seconds of the fastest of `repeat` calls} for each callable in `variants` (None stays None).

    Each variant first runs once untimed (JIT compilation, caches, allocator). Then every round calls each
    variant once, starting from a different one each round, so that the machine's slow drifts and any
    library's lingering threads fall evenly on all of them. The minimum is the least disturbed call.
    """
    live = {name: fn for name, fn in variants.items() if fn is not None}
    for fn in live.values():
        fn()
    names, calls = list(live), {name: [] for name in live}
    for r in range(repeat):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            start = time.perf_counter()
            live[name]()
            calls[name].append(time.perf_counter() - start)
    return {name: min(calls[name]) if name in calls else None for name in variants}


def row(name: str, shape: str, times: dict) -> dict:
    """A result row; ratio = the other's time / ours, so above 1 means ours is faster."""
    ours, reference, torch = times["ours"], times.get("reference"), times.get("torch")
    return {
        "name": name,
        "shape": shape,
        "ours_s": ours,
        "reference_s": reference,
        "torch_s": torch,
        "ratio_vs_torch": None if torch is None else torch / ours,
        "ratio_vs_reference": None if reference is None else reference / ours,
    }


def in_sequence(*fns):
    """One callable that calls `fns` in order (a forward pass, then its backward)."""

    def run():
        for fn in fns:
            fn()

    return run


def _on_host(a) -> np.ndarray:
    """A NumPy array, a numba.cuda device array or a torch tensor as a NumPy array."""
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    if type(a).__module__.startswith("torch"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def agreement(pairs, exact: bool) -> str:
    """"equal" if the two arrays of every (ours, theirs) pair have one shape and dtype and are equal bit for bit
    (exact), "close" if within the float32 rounding of sums taken in another order (1e-4 relative, and 1e-4 of the
    largest magnitude absolute), else "MISMATCH"."""
    for ours, theirs in pairs:
        ours, theirs = _on_host(ours), _on_host(theirs)
        if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
            return "MISMATCH"
        scale = float(np.abs(theirs).max()) if theirs.size else 0.0
        same = np.array_equal(ours, theirs) if exact else np.allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)
        if not same:
            return "MISMATCH"
    return "equal" if exact else "close"
