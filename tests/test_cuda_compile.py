"""Every CUDA kernel (scratchnet/kernels/cuda/) compiles for a real GPU: typed by numba-cuda and turned into PTX for
compute capability 9.0 by NVVM, for float32 and float64, with the argument types its host function launches it with;
and a float32 kernel's PTX holds no float64 arithmetic (but where float64 is the design: norm sums, attack steps).

The simulator, which runs the other CUDA tests in CI, executes kernels as Python and never types them, so a kernel
that only the real compiler rejects passes there (a shared array shaped `(TILE, TILE + 1)` did, until a GPU session
found it: a shared array's shape must be compile-time constants). Compiling needs numba-cuda and the CUDA toolkit's
NVVM (`pip install -e '.[gpu]'`) but no GPU. It runs in a fresh interpreter without NUMBA_ENABLE_CUDASIM, because the
simulator replaces numba.cuda in this one.
"""

import os
import subprocess
import sys
import textwrap

import pytest

COMPILE_EVERY_KERNEL = textwrap.dedent("""
    import numba
    import numpy as np
    from numba import cuda

    try:
        import numba_cuda  # noqa: F401  (the maintained CUDA target; Numba's own numba.cuda is deprecated)
        from numba.cuda.cudadrv.nvvm import NVVM
        NVVM()
    except Exception as error:  # no numba-cuda, or no NVVM library
        print(f"NO NVVM: {type(error).__name__}: {error}")
        raise SystemExit(0)

    from numba.cuda.dispatcher import CUDADispatcher as Dispatcher

    from scratchnet.kernels.cuda import activation, attack, conv, elementwise, launch, linf_dist, lp_dist, norms, pool

    def compile_all(dtype):
        real = dtype.type
        m2, m4 = np.zeros((2, 3), dtype), np.zeros((1, 2, 3, 3), dtype)
        flat, index2, index4 = np.zeros(6, dtype), np.zeros((2, 3), np.int64), np.zeros((1, 2, 3, 3), np.int64)
        steps, geometry, s = np.zeros(2), (1, 2, 3, 3, 2, 2, 2, 2, 2, 1, 0), 1
        launches = {"fill zero": (launch._fill_zero, (flat,)),
                    "relu": (activation._relu, (flat, flat)),
                    "relu backward": (activation._relu_backward, (flat, flat, flat)),
                    "max pool": (pool._max_pool, (m4, 2, s, 0, m4, index4)),
                    "max unpool": (pool._max_unpool, (m4, index4, np.zeros((1, 2, 9), dtype))),
                    "avg pool": (pool._avg_pool, (m4, 2, s, 0, real(4), m4)),
                    "avg unpool": (pool._avg_unpool, (m4, 2, s, 0, real(4), m4)),
                    "linf scatter": (linf_dist._linf_scatter, (m2, m2, m2, index2, True, m2)),
                    "linf step": (attack._linf, (m2, m2, m2, steps, 0.3, 0.0, 1.0, True, m2)),
                    "l2 step": (attack._l2, (m2, m2, m2, steps, 0.3, 0.0, 1.0, True, m2)),
                    "l1 class sums": (norms._class_sums, (m4, s, np.zeros((2, 1, 1)))),
                    "linf filter sums": (norms._filter_sums, (m2, np.zeros(2))),
                    "normalize": (elementwise._normalize, (m2, flat, real(2), m2)),
                    "column sums": (elementwise._column_sums, (m2, real(1), flat)),
                    "add row": (elementwise._add_row, (m2, flat, real(-1))),
                    "lerp": (elementwise._lerp, (flat, flat, real(0.9), real(0.1))),
                    "adam": (elementwise._adam, (flat, flat, flat, flat, real(0.1), (real(0.9),) * 4, real(1e-8),
                                                 (real(0.1),) * 2))}
        for which, loaders in conv._LOADERS.items():
            product = launch.specialized(conv._tiled_product, dtype, *loaders)
            launches[f"conv {which}"] = (product, (m4, m4, geometry, 2, 2, 2, 2, np.zeros((1, 2, 2), dtype)))
        for name, factory, args in (("linf forward", linf_dist._linf_forward, (m2, m2, m2, index2)),
                                    ("lp forward", lp_dist._lp_forward, (m2, m2, real(8), m2)),
                                    ("interval bounds", linf_dist._interval_bounds, (m2, m2, m2, m2, m2)),
                                    ("lp backward", lp_dist._lp_backward, (m2, m2, m2, m2, real(7), True, m2))):
            launches[name] = (launch.specialized(factory, dtype), args)
        covered = {id(kernel) for kernel, _ in launches.values()}
        # every kernel of every module must be in the table above
        for module in (activation, attack, conv, elementwise, launch, linf_dist, norms, pool):
            for name, value in vars(module).items():
                if isinstance(value, Dispatcher) and not value.targetoptions.get("device") and id(value) not in covered:
                    print(f"FAILED {module.__name__}.{name}: a kernel that this test does not compile")
        for name, (kernel, args) in launches.items():
            signature = tuple(numba.typeof(a) for a in args)
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
            except Exception as error:
                print(f"FAILED {name} {dtype}: {type(error).__name__}: {str(error)[:2000]}")
            else:
                print(f"compiled {name} {dtype}")
                # float64 instructions in a float32 kernel, beyond the declaration of a float64 scalar argument
                wide = [line.strip() for line in ptx.splitlines() if ".f64" in line and ".param" not in line]
                if dtype == np.float32 and wide:
                    print(f"FLOAT64 {name}: {'; '.join(wide)[:300]}")

    for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        compile_all(dtype)
""")


def test_every_cuda_kernel_compiles_for_a_real_gpu():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-c", COMPILE_EVERY_KERNEL], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    if done.stdout.startswith("NO NVVM"):
        pytest.skip(f"compiling CUDA kernels needs numba-cuda with NVVM ({done.stdout.strip()}); "
                    "`pip install -e '.[gpu]'`")
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert not failed, "\n".join(failed)
    # A float32 kernel computes in float32: an untyped constant (-np.inf, or 0 beside a float32 value) made pixels
    # and tiles round-trip through float64, slow on most GPUs. By design in float64, as on the CPU: the norm sums,
    # and the attack steps until their result is stored.
    designed = ("l1 class sums", "linf filter sums", "linf step", "l2 step")
    wide = [line for line in done.stdout.splitlines() if line.startswith("FLOAT64")
            and not line.startswith(tuple(f"FLOAT64 {name}:" for name in designed))]
    assert not wide, "\n".join(wide)
    assert done.stdout.count("compiled ") == 2 * 24, done.stdout
