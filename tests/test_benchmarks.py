"""The benchmarks end to end on tiny shapes: the cuda benchmark (benchmarks/cuda.py) in the simulator in CI (a GPU
session is short, and a typo in a code path that only a GPU runs would cost one), and the CPU benchmarks that
compare their results with torch's. Timings mean nothing here; what is checked is that every row is produced and
that the results agree, and that a disagreement is caught."""

import importlib

import numpy as np
import pytest

from benchmarks import __main__ as cli
from benchmarks.timing import agreement
from scratchnet.backend import cuda_problem

needs_cuda = pytest.mark.skipif(cuda_problem() is not None, reason=f"CUDA kernels cannot run: {cuda_problem()}")


@needs_cuda
def test_the_cuda_benchmark_produces_every_row_and_compares_the_gpu_with_the_cpu(monkeypatch):
    from benchmarks import cuda as bench

    tiny = dict(B=3, N=9, M=5, CONV=(2, 2, 3, 5, 3, 1, 1), EPOCH_IMAGES=4, EPOCH_INPUT=7, EPOCH_BATCH=2,
                EPOCH_DEPTH=2, EPOCH_WIDTHS=(6,))
    for name, value in tiny.items():
        monkeypatch.setattr(bench, name, value)
    rows = bench._linf_rows(1, None) + bench._conv_rows(1, None) + bench._epoch_rows(1)
    assert len(rows) == 2 + 3 + 2 * 2
    compared = [r["gpu_vs_cpu"] for r in rows if "gpu_vs_cpu" in r]
    assert compared == ["equal", "close", "close", "close", "close"]
    assert all(r["ours_s"] > 0 and r["reference_s"] > 0 for r in rows)


def test_the_agreement_check_flags_a_wrong_result():
    a = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    assert agreement([(a, a)], exact=True) == "equal"
    assert agreement([(a * (1 + 1e-6), a)], exact=False) == "close"
    assert agreement([(a * (1 + 1e-6), a)], exact=True) == "MISMATCH"
    assert agreement([(a, a), (a[:, :4], a[:, :4] + 1)], exact=False) == "MISMATCH"
    assert agreement([(a, a[:, :4])], exact=False) == "MISMATCH"


TINY_CPU = {"benchmarks.conv": dict(SHAPES=[("3x3", 2, 3, 5, 6, 3, 1, 1), ("3x3 stride 2", 2, 3, 4, 7, 3, 2, 1)]),
            "benchmarks.linf_dist": dict(B=4, N=9, M=6, B_REFERENCE=2),
            "benchmarks.pool": dict(N=2, C=3, SIDE=6),
            "benchmarks.attack": dict(IMAGES=4, STEPS=2),
            "benchmarks.training": dict(IMAGES=8, BATCH=4),
            "benchmarks.norms": dict(SHAPES=[("3x3", 6, 5, 3, 8, 1, 1), ("3x3 stride 2", 6, 5, 3, 8, 2, 1)])}


@pytest.mark.parametrize("name", list(TINY_CPU))
def test_a_cpu_benchmark_produces_its_rows_and_checks_them_against_torch(name, monkeypatch):
    """With torch installed (the `bench` extra), every row with a torch time says its results agree with torch's;
    without it, no row claims a comparison."""
    module = importlib.import_module(name)
    for attribute, value in TINY_CPU[name].items():
        monkeypatch.setattr(module, attribute, value)
    try:
        import torch
    except ImportError:
        torch = None
    rows = module.run(1, torch)
    assert rows and all(r["ours_s"] > 0 and r["reference_s"] > 0 for r in rows)
    for r in rows:
        if torch is None:
            assert r["torch_s"] is None and r["torch_results"] is None
        else:
            assert r["torch_results"] in ("equal", "close"), r
            exact = "linf forward" in r["name"] and "backward" not in r["name"] or "max_pool2d" in r["name"]
            if exact:
                assert r["torch_results"] == "equal", r


def test_a_mismatch_is_shown_and_fails_the_benchmark_command():
    base = {"ours_s": 1.0, "reference_s": 2.0, "torch_s": 1.0, "ratio_vs_torch": 1.0, "ratio_vs_reference": 2.0,
            "shape": "x"}
    rows = [base | {"name": "a", "torch_results": "close"}, base | {"name": "b", "gpu_vs_cpu": "MISMATCH"},
            base | {"name": "c", "torch_results": None}]
    table = cli.format_table(rows).splitlines()
    assert [line.split()[-2] for line in table[1:]] == ["close", "MISMATCH", "-"]
    assert cli.mismatched(rows) == ["b"] and cli.mismatched(rows[:1] + rows[2:]) == []
