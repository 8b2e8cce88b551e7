"""keep_freed_memory (scratchnet/memory.py): after it, freeing a large array and allocating it again reuses the
memory instead of faulting in fresh pages. Measured in a fresh process, whose allocator nothing else has tuned."""

import platform
import subprocess
import sys

import pytest

from scratchnet.memory import keep_freed_memory

COUNT_FAULTS = """
import resource, sys
import numpy as np
from scratchnet.memory import keep_freed_memory
took_effect = keep_freed_memory() if sys.argv[1] == "keep" else None


def step():  # a step's activations: several large arrays alive at once, then all freed
    arrays = [np.ones(4_000_000, np.float32) for _ in range(6)]  # 6 x 16 MB
    del arrays


step()  # the first step faults in any case
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(took_effect, faults * resource.getpagesize())
"""


def _faults(mode):
    out = subprocess.run([sys.executable, "-c", COUNT_FAULTS, mode], capture_output=True, text=True, check=True)
    took_effect, faulted_bytes = out.stdout.split()
    return took_effect, int(faulted_bytes)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's; elsewhere it returns False")
def test_freed_arrays_are_reused_instead_of_faulting_again():
    _, default = _faults("default")
    took_effect, kept = _faults("keep")
    assert took_effect == "True"
    # by default glibc trims the freed top of its heap beyond twice the largest array freed so far, and the next
    # step faults it in again: about 60 MB over five steps here; with the memory kept, nothing
    assert default > 20e6, default
    assert kept < default / 20, (kept, default)


@pytest.mark.parametrize("limit", [-1, 2**31, 4 << 30, 1.5e9, True])
def test_a_limit_beyond_a_c_int_is_refused(limit):
    # mallopt takes a C int: 4 GB would wrap to 0 (trim at every free), 2 GB to a negative number
    with pytest.raises(ValueError, match="limit_bytes"):
        keep_freed_memory(limit)
