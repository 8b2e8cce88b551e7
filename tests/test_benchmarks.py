"""The cuda benchmark (benchmarks/cuda.py) end to end on tiny shapes, in the simulator in CI: a GPU session is
short, and a typo in a code path that only a GPU runs would cost one. Its timings mean nothing here; what is
checked is that every row is produced and that the GPU's results agree with the CPU kernels'."""

import numpy as np
import pytest

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


@needs_cuda
def test_the_agreement_check_flags_a_wrong_gpu_result():
    from benchmarks.cuda import _agreement

    a = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    assert _agreement([(a, a)], exact=True) == "equal"
    assert _agreement([(a * (1 + 1e-6), a)], exact=False) == "close"
    assert _agreement([(a * (1 + 1e-6), a)], exact=True).startswith("MISMATCH")
    assert _agreement([(a, a), (a[:, :4], a[:, :4] + 1)], exact=False).startswith("MISMATCH")
