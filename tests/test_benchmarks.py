"""The benchmarks end to end on tiny shapes: the cuda benchmark (benchmarks/cuda.py) in the simulator in CI (a GPU
session is short, and a typo in a code path that only a GPU runs would cost one), and the CPU benchmarks that
compare their results with torch's. Timings mean nothing here; what is checked is that every row is produced and
that the results agree, and that a disagreement is caught."""

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import __main__ as cli
from benchmarks.timing import agreement
from scratchnet import backend
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
    assert compared == ["equal", "close", "close", "close", "close"] + ["close"] * 4  # the epochs: resident, cuda
    assert all(r["ours_s"] > 0 and r["reference_s"] > 0 for r in rows)
    from scratchnet.linf_dist_gpu import ResidentTrainer

    monkeypatch.setattr(ResidentTrainer, "_update", lambda self, parameter, gradient: None)  # it never learns
    assert bench._epoch_agreement(6, 8.0) == {"resident": "MISMATCH", "cuda": "close"}


def test_the_agreement_check_flags_a_wrong_result():
    a = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    assert agreement([(a, a)], exact=True) == "equal"
    assert agreement([(a * (1 + 1e-6), a)], exact=False) == "close"
    assert agreement([(a * (1 + 1e-6), a)], exact=True) == "MISMATCH"
    assert agreement([(a, a), (a[:, :4], a[:, :4] + 1)], exact=False) == "MISMATCH"
    assert agreement([(a, a[:, :4])], exact=False) == "MISMATCH"
    assert agreement([(a, a.astype(np.float64))], exact=False) == "MISMATCH"


TINY_CPU = {"benchmarks.conv": dict(SHAPES=[("3x3", 2, 3, 5, 6, 3, 1, 1), ("3x3 stride 2", 2, 3, 4, 7, 3, 2, 1)]),
            "benchmarks.linf_dist": dict(B=4, N=9, M=6, B_REFERENCE=2),
            "benchmarks.pool": dict(N=2, C=3, SIDE=6),
            "benchmarks.attack": dict(IMAGES=4, STEPS=2),
            "benchmarks.training": dict(IMAGES=8, BATCH=4),
            "benchmarks.norms": dict(SHAPES=[("3x3", 6, 5, 3, 8, 1, 1), ("3x3 stride 2", 6, 5, 3, 8, 2, 1)])}


def _tiny(name, monkeypatch):
    module = importlib.import_module(name)
    for attribute, value in TINY_CPU[name].items():
        monkeypatch.setattr(module, attribute, value)
    return module


@pytest.mark.parametrize("name", list(TINY_CPU))
def test_a_cpu_benchmark_without_torch_produces_its_rows_and_claims_no_comparison(name, monkeypatch):
    rows = _tiny(name, monkeypatch).run(1, None)
    assert rows and all(r["ours_s"] > 0 and r["reference_s"] > 0 for r in rows)
    assert all(r["torch_s"] is None and r["torch_results"] is None for r in rows)


def _torch():
    return pytest.importorskip("torch", reason="the comparisons with torch need it (the `bench` extra)")


# a wrong kernel or a wrong torch model planted in each job: (object, attribute, wrapper of the original, rows hit)
SABOTAGE = {
    "benchmarks.conv": ("scratchnet.kernels.conv", "conv2d_backward_weight", lambda f: lambda *a: f(*a) * 1.01,
                        ["backward-weight", "forward+backward"]),
    "benchmarks.linf_dist": ("scratchnet.kernels.linf_dist", "linf_dist_backward",
                             lambda f: lambda *a: (f(*a)[0] * 1.01, f(*a)[1]), ["linf forward+backward"]),
    "benchmarks.pool": ("scratchnet.kernels.pool", "avg_pool2d_backward", lambda f: lambda *a: f(*a) * 1.01,
                        ["avg_pool2d forward+backward"]),
    "benchmarks.attack": ("benchmarks.attack", "torch_mnist_cnn", lambda f: lambda torch: f(torch)[:-1],
                          ["pgd-20"]),
    "benchmarks.training": ("benchmarks.training", "torch_mnist_cnn", lambda f: lambda torch: f(torch)[:-1],
                            ["mnist_cnn"]),
    "benchmarks.norms": ("benchmarks.norms", "_torch_norms",
                         lambda f: lambda torch, w, stride: f(torch, w * 1.01, stride), ["l1", "l-inf"]),
}


@pytest.mark.parametrize("name", list(TINY_CPU))
def test_a_cpu_benchmark_checks_its_results_against_torch(name, monkeypatch):
    """Every row agrees with torch; then, with a wrong kernel (or a wrong torch model) planted, exactly the rows
    that use it say MISMATCH: the check compares what it claims to."""
    torch = _torch()
    module = _tiny(name, monkeypatch)
    rows = module.run(1, torch)
    for r in rows:
        exact = "linf forward" in r["name"] and "backward" not in r["name"] or "max_pool2d" in r["name"]
        assert r["torch_results"] == "equal" if exact else r["torch_results"] == "close", r
    target, attribute, wrap, hit = SABOTAGE[name]
    target = importlib.import_module(target)
    monkeypatch.setattr(target, attribute, wrap(getattr(target, attribute)))
    for r in module.run(1, torch):
        wrong = any(h in r["name"] for h in hit)
        assert (r["torch_results"] == "MISMATCH") == wrong, r


def test_the_attack_check_compares_the_numba_kernels_whatever_backend_is_active(monkeypatch):
    """The attack times the Numba kernels; with --backend numpy active, its check must still be on them."""
    torch = _torch()
    module = _tiny("benchmarks.attack", monkeypatch)
    conv = importlib.import_module("scratchnet.kernels.conv")
    forward = conv.conv2d_forward
    monkeypatch.setattr(conv, "conv2d_forward", lambda *a: forward(*a) * 1.01)
    monkeypatch.setattr(backend, "_kernels", {})  # forget the kernels looked up before
    with backend.use_backend("numpy"):
        assert module.run(1, torch)[0]["torch_results"] == "MISMATCH"


def test_the_norms_rows_name_their_backend_and_the_power_iteration_steps(monkeypatch):
    module = _tiny("benchmarks.norms", monkeypatch)
    with backend.use_backend("numpy"):
        rows = module.run(1, None)
    assert all(re.search(r", [1-9]\d* power-iteration steps, backend numpy$", r["shape"]) for r in rows), rows


def test_l_inf_ties_are_left_out_of_the_gradient_check(monkeypatch):
    """Integer data ties nearly every output: torch sends its gradient to every maximal coordinate, ours to the
    first, and the check must not call that a mismatch."""
    torch = _torch()
    from benchmarks import linf_dist as bench

    rng = np.random.default_rng(0)
    x, w = rng.integers(-2, 3, (5, 12)).astype(np.float32), rng.integers(-2, 3, (7, 12)).astype(np.float32)
    gy = rng.standard_normal((5, 7)).astype(np.float32)
    y, _ = bench.linf_dist.linf_dist_forward(x, w)
    assert bench._maximal(x, w, y)[0].mean() > 0.3
    assert bench._torch_results(torch, x, w, gy)["forward+backward"] == "close"
    maximal = bench._maximal
    monkeypatch.setattr(bench, "_maximal", lambda x, w, y: (np.zeros(y.shape, bool), maximal(x, w, y)[1]))
    assert bench._torch_results(torch, x, w, gy)["forward+backward"] == "MISMATCH"


def test_the_l_inf_forward_check_holds_the_argmax_to_the_first_maximal_coordinate(monkeypatch):
    """A forward with the right values that points at the last of tied maximal coordinates is caught: the values
    alone would pass it, and the backward check leaves tied outputs out."""
    torch = _torch()
    from benchmarks import linf_dist as bench

    rng = np.random.default_rng(0)
    x, w = rng.integers(-2, 3, (5, 12)).astype(np.float32), rng.integers(-2, 3, (7, 12)).astype(np.float32)
    gy = rng.standard_normal((5, 7)).astype(np.float32)
    assert bench._torch_results(torch, x, w, gy)["forward"] == "equal"
    forward = bench.linf_dist.linf_dist_forward

    def last_maximal(x, w):
        y, index = forward(x, w)
        hit = (np.abs(x[:, None] - w[None]) == y[..., None])[..., ::-1]
        return y, (w.shape[1] - 1 - hit.argmax(axis=-1)).astype(index.dtype)

    monkeypatch.setattr(bench.linf_dist, "linf_dist_forward", last_maximal)
    assert bench._torch_results(torch, x, w, gy)["forward"] == "MISMATCH"


def test_a_mismatch_is_shown_in_the_table():
    base = {"ours_s": 1.0, "reference_s": 2.0, "torch_s": 1.0, "ratio_vs_torch": 1.0, "ratio_vs_reference": 2.0,
            "shape": "x"}
    rows = [base | {"name": "a", "torch_results": "close"}, base | {"name": "b", "gpu_vs_cpu": "MISMATCH"},
            base | {"name": "c", "torch_results": None}]
    table = cli.format_table(rows).splitlines()
    assert [line.split()[-2] for line in table[1:]] == ["close", "MISMATCH", "-"]
    assert cli.mismatched(rows) == ["b"]


FAKE_BENCHMARK = """
DESCRIPTION = "one row"


def run(repeat, torch=None):
    return [{{"name": "row", "shape": "-", "ours_s": 1.0, "reference_s": None, "torch_s": None,
             "ratio_vs_torch": None, "ratio_vs_reference": None, "torch_results": "{verdict}"}}]
"""


EMPTY_BENCHMARK = """
DESCRIPTION = "no rows (as the cuda benchmark without a GPU)"


def run(repeat, torch=None):
    return []
"""


def _benchmark_command(tmp_path, args, environment=None):
    """`python -m benchmarks args` in a fresh process (it sets the thread pools before NumPy loads), with the fake
    benchmarks "fake" (one row, written by the test into tmp_path) and "empty" (no rows) registered."""
    (tmp_path / "empty_benchmark.py").write_text(EMPTY_BENCHMARK)
    code = ("import sys; from benchmarks import BENCHMARKS; BENCHMARKS['fake'] = 'fake_benchmark'; "
            "BENCHMARKS['empty'] = 'empty_benchmark'; from benchmarks.__main__ import main; "
            f"sys.exit(main({args!r}))")
    root = Path(__file__).resolve().parents[1]
    path = [str(tmp_path), str(root), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, **(environment or {}), "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("verdict", "status"), [("close", 0), ("MISMATCH", 1)])
def test_the_benchmark_command_fails_on_a_mismatch(verdict, status, tmp_path):
    (tmp_path / "fake_benchmark.py").write_text(FAKE_BENCHMARK.format(verdict=verdict))
    result = _benchmark_command(tmp_path, ["--only", "fake", "--repeat", "1"])
    assert result.returncode == status, result.stdout + result.stderr
    assert any(line.split()[:1] == ["row"] and verdict in line.split() for line in result.stdout.splitlines())


def test_the_benchmark_command_fails_when_a_benchmark_it_was_asked_for_measures_nothing(tmp_path):
    """`--only cuda` on a machine without a GPU must not pass for a measurement; the rows of the benchmarks that
    ran are in the JSON file all the same, and a smaller NUMBA_NUM_THREADS in the environment does not stop the run."""
    (tmp_path / "fake_benchmark.py").write_text(FAKE_BENCHMARK.format(verdict="close"))
    rows = tmp_path / "rows.json"
    result = _benchmark_command(tmp_path, ["--only", "fake,empty", "--repeat", "1", "--threads", "2", "--json",
                                           str(rows)], {"NUMBA_NUM_THREADS": "1"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no rows from ['empty']" in result.stdout
    assert [r["name"] for r in json.loads(rows.read_text())] == ["row"]
