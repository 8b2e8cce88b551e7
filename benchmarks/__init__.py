"""Timings of scratchnet's kernels and jobs against the NumPy reference and PyTorch: `python -m benchmarks`.

Each entry of BENCHMARKS names a module with `DESCRIPTION` and `run(repeat, torch) -> rows`; a row is
{"name", "shape", "ours_s", "reference_s", "torch_s", "ratio_vs_torch", "ratio_vs_reference"}, the ratios being
the other's time over ours (above 1: ours is faster), plus "torch_results" (the CPU jobs, with torch) or "gpu_vs_cpu"
(the cuda job): "equal", "close" or "MISMATCH", how our results compare on the same inputs. Add a benchmark by
adding a module and its entry here.
This package imports nothing heavy, so that the runner can set thread counts before NumPy and Numba load.
"""

BENCHMARKS = {
    "conv": "benchmarks.conv",
    "linf_dist": "benchmarks.linf_dist",
    "norms": "benchmarks.norms",
    "pool": "benchmarks.pool",
    "training": "benchmarks.training",
    "attack": "benchmarks.attack",
    "cuda": "benchmarks.cuda",
}
