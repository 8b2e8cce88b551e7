"""python -m benchmarks [--only conv,pool] [--json FILE] [--threads 2] [--repeat 5] [--backend numba]

Runs the registered benchmarks (benchmarks/__init__.py) in one process and prints, for each row, the fastest
call of ours, of the NumPy reference and of torch (when installed), with the ratios other / ours: above 1 means
ours is faster, and whether our results agree with torch's (the GPU rows: with the CPU kernels') on the same
inputs: "equal", "close" (to float32 rounding), "MISMATCH", or "-" where not compared. Any MISMATCH makes the exit
status 1, and so does a benchmark named in --only that gives no rows (cuda without a GPU). `--json FILE` also
writes the rows, after each benchmark, so that runs can be compared.

Thread pools: every library gets the same thread count, set before any of them loads. The reference's
matmul runs on OpenBLAS, the kernels on Numba's OpenMP layer, torch on its own OpenMP; each spin-waits after a
parallel call, and a spinning pool steals the cores of whichever variant runs next (shared/specs/
kernel-performance.md, lesson 4: 20-45% lost). So idle OpenMP threads sleep (OMP_WAIT_POLICY=passive) and
OpenBLAS spins for the shortest time it allows (OPENBLAS_THREAD_TIMEOUT=4). Values of these two already in the
environment are kept.
"""

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from benchmarks import BENCHMARKS

COLUMNS = [("ours_s", "ours ms"), ("reference_s", "reference ms"), ("torch_s", "torch ms"),
           ("ratio_vs_torch", "vs torch"), ("ratio_vs_reference", "vs reference")]


def configure_threads(threads: int):
    """Give every thread pool `threads` threads and make idle pools sleep; returns torch, or None if absent.
    Must run before NumPy, Numba or torch is imported: they read the environment once, when they load."""
    assert "numpy" not in sys.modules, "configure_threads must run before NumPy is imported"
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    # the size of Numba's pool, fixed when it loads (set_num_threads below picks how many run): not the
    # environment's, which could be below `threads`
    os.environ["NUMBA_NUM_THREADS"] = str(max(threads, os.cpu_count() or 1))
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    import numba

    numba.set_num_threads(threads)
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def format_table(rows: list[dict]) -> str:
    def cell(key, value):
        if value is None:
            return "-"
        return f"{value * 1e3:.2f}" if key.endswith("_s") else f"{value:.2f}x"

    width = max(len(r["name"]) for r in rows)
    lines = [f"{'benchmark':{width}s}" + "".join(f"{title:>14s}" for _, title in COLUMNS) + f"{'results':>10s}  shape"]
    for r in rows:
        lines.append(f"{r['name']:{width}s}" + "".join(f"{cell(key, r[key]):>14s}" for key, _ in COLUMNS)
                     + f"{results(r) or '-':>10s}  {r['shape']}")
    return "\n".join(lines)


def results(r: dict) -> str | None:
    """How a row's results compare: with torch's, or for a GPU row with the CPU kernels'; None if not compared."""
    return r.get("torch_results") or r.get("gpu_vs_cpu")


def mismatched(rows: list[dict]) -> list[str]:
    """The names of the rows whose results disagree with the implementation they are timed against."""
    return [r["name"] for r in rows if (results(r) or "").startswith("MISMATCH")]


def write_json(rows: list[dict], path: Path) -> None:
    """Write atomically: a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(rows, indent=2) + "\n")
    os.replace(temporary, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {list(BENCHMARKS)} (default: all; a "
                                                     "benchmark named here that cannot run here is an error)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument("--threads", type=int, default=2, help="threads for Numba, torch and OpenBLAS (default 2)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per variant; the fastest counts")
    parser.add_argument("--backend", choices=["numba", "numpy", "cuda"], default=None,
                        help="the active kernel backend for ops that do not name theirs (the training and attack "
                             "jobs compare numba with numpy explicitly; the cuda benchmark always times the GPU)")
    args = parser.parse_args(argv)
    only = args.only if args.only is not None else ",".join(BENCHMARKS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        parser.error(f"--only must name some of {list(BENCHMARKS)}, got {args.only!r}")
    if args.threads < 1 or args.repeat < 1:
        parser.error(f"--threads and --repeat must be >= 1, got {args.threads} and {args.repeat}")

    torch = configure_threads(args.threads)
    if args.backend:
        from scratchnet.backend import BackendUnavailable, set_backend

        try:
            set_backend(args.backend)
        except BackendUnavailable as error:
            parser.error(str(error))
    print(f"{args.threads} threads, fastest of {args.repeat} calls (of half as many, at least one, for the slow "
          f"training and attack jobs; of at most two for the GPU epochs); torch: "
          f"{torch.__version__ if torch is not None else 'not installed'}", flush=True)
    rows, empty = [], []
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        print(f"=== {name}: {module.DESCRIPTION}", flush=True)
        new_rows = module.run(args.repeat, torch)
        if new_rows:
            print(format_table(new_rows), flush=True)
        else:
            empty.append(name)
        rows += new_rows
        if args.json is not None:  # after each benchmark, so that a later failure loses none of these rows
            write_json(rows, args.json)
    if args.json is not None:
        print(f"wrote {len(rows)} rows to {args.json}")
    wrong = mismatched(rows)
    if wrong:
        print(f"MISMATCH: these rows' results disagree with the implementation they are timed against: {wrong}")
        return 1
    if empty and args.only is not None:
        print(f"no rows from {empty}, which --only asked for: nothing was measured")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
