"""Numba kernels for the exact l1 / l-inf norms of conv layers (references: kernels/reference/norms.py).

Both norms are one pass over |W| (Liang & Huang 2021, Sec. 3), written so that the pass is a long contiguous
loop over W seen as a [C_out, C_in * kh * kw] matrix: the l1 norm adds the rows (the sum over filters of every
tap), then groups the taps of each channel into residue classes mod the stride; the l-inf norm sums each row.
The sums are float64 and may be reassociated (the `reassoc` flag alone lets LLVM vectorize the reductions and,
unlike full fastmath, keeps NaN and inf). Single-threaded: a pass over a 512 x 256 x 3 x 3 weight takes about
0.1 ms, less than waking a thread pool costs.
"""

import math

import numpy as np
from numba import njit

REASSOC = {"reassoc"}


@njit(fastmath=REASSOC, cache=True)
def _tap_sums(flat, taps):
    for o in range(flat.shape[0]):
        for k in range(flat.shape[1]):
            taps[k] += abs(flat[o, k])


@njit(cache=True)
def _group_classes(taps, stride, sums):
    for c in range(taps.shape[0]):
        for i in range(taps.shape[1]):
            for j in range(taps.shape[2]):
                sums[c, i % stride, j % stride] += taps[c, i, j]


@njit(fastmath=REASSOC, cache=True)
def _filter_sums(flat, sums):
    for o in range(flat.shape[0]):
        total = 0.0
        for k in range(flat.shape[1]):
            total += abs(flat[o, k])
        sums[o] = total


def conv_l1_class_sums(w, stride):
    """sums[c, r1, r2] = sum_o sum_{i = r1, j = r2 (mod stride)} |w[o, c, i, j]| (float64)."""
    f, c, kh, kw = w.shape
    taps = np.zeros(c * kh * kw)
    _tap_sums(np.ascontiguousarray(w).reshape(f, c * kh * kw), taps)  # f = 0 too
    sums = np.zeros((c, min(stride, kh), min(stride, kw)))
    _group_classes(taps.reshape(c, kh, kw), stride, sums)
    return sums


def conv_linf_filter_sums(w):
    """sums[o] = sum_{c, i, j} |w[o, c, i, j]| (float64)."""
    sums = np.empty(w.shape[0])
    _filter_sums(np.ascontiguousarray(w).reshape(w.shape[0], math.prod(w.shape[1:])), sums)  # f = 0 too
    return sums
