"""CUDA kernels for the exact l1 / l-inf norms of conv layers (references: kernels/reference/norms.py).

Liang & Huang 2021 ("Large Norms of CNN Layers Do Not Hurt Adversarial Robustness", AAAI, Sec. 3) read both
norms off |W| for W [C_out, C_in, kh, kw]: the l-inf norm is the largest absolute filter sum, the l1 norm the
largest sum over filters of one channel's taps in one residue class mod the stride. Each sum is one thread's
loop, in float64; the max over them is taken by the caller (scratchnet/norms.py), as for the CPU kernels.
"""

import numpy as np
from numba import cuda, float64

from scratchnet.kernels.cuda.launch import THREADS, blocks, to_device


@cuda.jit
def _class_sums(w, stride, sums):
    """sums[c, r1, r2] = sum_o sum_{i = r1, j = r2 (mod stride)} |w[o, c, i, j]|.

    Thread layout: one thread per class (c, r1, r2), flat, THREADS per block."""
    t = cuda.grid(1)
    if t >= sums.size:
        return
    rows, cols = sums.shape[1], sums.shape[2]
    c, r1, r2 = t // (rows * cols), t // cols % rows, t % cols
    total = float64(0)
    for o in range(w.shape[0]):
        for i in range(r1, w.shape[2], stride):
            for j in range(r2, w.shape[3], stride):
                total += abs(float64(w[o, c, i, j]))
    sums[c, r1, r2] = total


@cuda.jit
def _filter_sums(flat, sums):
    """sums[o] = sum_k |flat[o, k]| for the weight seen as [C_out, C_in kh kw].

    Thread layout: one thread per filter o, THREADS per block."""
    o = cuda.grid(1)
    if o >= sums.size:
        return
    total = float64(0)
    for k in range(flat.shape[1]):
        total += abs(float64(flat[o, k]))
    sums[o] = total


def conv_l1_class_sums(w, stride):
    """sums[c, r1, r2] = sum_o sum_{i = r1, j = r2 (mod stride)} |w[o, c, i, j]| (float64, on the host)."""
    if len(w.shape) != 4 or stride < 1:
        raise ValueError(f"w must be [C_out, C_in, kh, kw] and stride >= 1, got {tuple(w.shape)}, stride {stride}")
    sums = cuda.device_array((w.shape[1], min(stride, w.shape[2]), min(stride, w.shape[3])), np.float64)
    _class_sums[blocks(sums.size), THREADS](to_device(w), stride, sums)
    return sums.copy_to_host()


def conv_linf_filter_sums(w):
    """sums[o] = sum_{c, i, j} |w[o, c, i, j]| (float64, on the host)."""
    if len(w.shape) != 4:
        raise ValueError(f"w must be [C_out, C_in, kh, kw], got {tuple(w.shape)}")
    wd = to_device(w)
    sums = cuda.device_array(w.shape[0], np.float64)
    _filter_sums[blocks(sums.size), THREADS](wd.reshape(w.shape[0], wd.size // max(w.shape[0], 1)), sums)
    return sums.copy_to_host()
