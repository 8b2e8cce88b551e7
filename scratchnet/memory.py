"""Keeping freed memory for reuse, so that the large arrays of one training step do not page-fault again in the next.

Every op of the autograd allocates its output. glibc's malloc serves a large allocation with pages it maps from the
operating system and gives them back when they are freed (it unmaps them, or trims the top of its heap), so the next
step's arrays fault on first touch, page by page (4 KB each). On this project's virtual machine that cost more than
the ops' own passes over memory: the ReLU backward of a 26 MB gradient took 9 ms, against well under 1 ms for the
same call on memory already mapped. shared/specs/kernel-performance.md, lesson 4, met the same effect in torch. The
demos call `keep_freed_memory()`; it saved 8-9% of the time of a PGD attack on Madry et al.'s CNN (batch 256) and
5-12% of an MNIST CNN training epoch (same-session runs)."""

import ctypes
import ctypes.util
import numbers

# mallopt's parameters, from glibc's malloc.h
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# the largest mmap threshold glibc accepts on 64-bit systems: allocations up to this size come from the heap
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def keep_freed_memory(limit_bytes: int = 1 << 30) -> bool:
    """Make glibc's malloc serve allocations up to 32 MB from its heap, and keep up to `limit_bytes` of free memory
    at the top of the heap for reuse instead of returning it to the system (below 2 GB: mallopt takes a C int).
    Returns False where the C library has no mallopt (not glibc); True means glibc accepted the settings, which
    have no effect if another allocator (jemalloc, tcmalloc) was preloaded. It applies to the whole process from
    then on: freed memory stays resident up to the heap's peak use."""
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, numbers.Integral) or not 0 <= limit_bytes < 2**31:
        raise ValueError(f"limit_bytes must be an int in [0, 2**31), got {limit_bytes!r}")
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, limit_bytes))
