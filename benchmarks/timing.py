"""Timing shared by the benchmark modules: the variants of a job (ours, the reference, torch) run in rotating
order in one process, and a row reports the fastest call of each and the ratios between them."""

import time


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
