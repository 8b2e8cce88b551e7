"""What every CUDA kernel module shares: block sizes, and moving arrays between the host and the GPU.

A kernel function takes host (NumPy) arrays or device arrays. Host arrays are copied to the GPU, the result is
copied back, and the caller never sees the GPU: the same call works on every backend. Device arrays (Numba's, or
any array with `__cuda_array_interface__`, such as a CuPy array or a torch CUDA tensor) are used in place, and
the results stay on the GPU, so that a chain of kernels moves no data over PCIe. Which of the two happens is
decided by the kernel's first array argument.

Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) runs each GPU thread as a Python thread, so it gets small blocks:
no kernel's indexing depends on the block sizes, and small tiles make the tests' tiny shapes cross tile edges.
"""

import numba
import numpy as np
from numba import config, cuda

SIMULATOR = bool(config.ENABLE_CUDASIM)
TILE = 4 if SIMULATOR else 16  # side of the square thread blocks (and shared-memory tiles) of the tiled kernels
THREADS = 32 if SIMULATOR else 256  # threads per block of the one-dimensional kernels
# a shared tile's row padded by one entry, so that a warp reading a column hits distinct banks; a named constant
# because a shared array's shape must be compile-time constants (the compiler does not fold TILE + 1 there)
PADDED = TILE + 1


def is_device(a) -> bool:
    """True for a device array (Numba's, real or simulated, or anything with __cuda_array_interface__)."""
    return hasattr(a, "copy_to_host") or hasattr(a, "__cuda_array_interface__")


def dtype_of(a) -> np.dtype:
    """The NumPy dtype of a host or device array. A torch CUDA tensor's `dtype` is torch's own (torch.float32, never
    equal to np.float32), so a device array's is read from its __cuda_array_interface__."""
    interface = getattr(a, "__cuda_array_interface__", None)
    return np.dtype(interface["typestr"]) if interface is not None else np.dtype(a.dtype)


def to_device(a, dtype=None):
    """`a` as a C-contiguous device array: a host array is copied (converted to `dtype` if given), a device array
    is used in place and must already have that dtype and layout."""
    if not is_device(a):
        return cuda.to_device(np.ascontiguousarray(a, dtype))
    if not hasattr(a, "copy_to_host"):
        a = cuda.as_cuda_array(a)
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise TypeError(f"device array must have dtype {np.dtype(dtype)}, got {a.dtype}")
    if not a.is_c_contiguous():
        raise ValueError(f"device array must be C-contiguous, got strides {a.strides}")
    return a


def returned(a, on_device: bool):
    """A result as the caller passed its inputs: the device array itself, or a copy on the host."""
    return a if on_device else a.copy_to_host()


def blocks(count: int, size: int = THREADS) -> int:
    """The number of blocks of `size` threads that cover `count` items (at least one)."""
    return max(1, -(-count // size))


@cuda.jit(device=True, inline=True)
def nan_max(a, b):
    """np.maximum(a, b): a NaN in either is kept, as the CPU kernels keep it (numba-cuda's own max is fmax, which
    drops a NaN: a diverged model's NaN would come out as a plausible number)."""
    return a if a > b or a != a else b


@cuda.jit(device=True, inline=True)
def nan_min(a, b):
    """np.minimum(a, b): a NaN in either is kept (see nan_max)."""
    return a if a < b or a != a else b


@cuda.jit
def _fill_zero(flat):
    """Thread layout: one thread per element, THREADS per block."""
    t = cuda.grid(1)
    if t < flat.size:
        flat[t] = 0


def zeros(shape, dtype):
    """A device array of zeros, filled on the GPU (no host array is copied)."""
    out = cuda.device_array(shape, dtype)
    flat = out.reshape(out.size)
    _fill_zero[blocks(out.size), THREADS](flat)
    return out


_compiled = {}


def specialized(factory, dtype, *args):
    """factory(numba_dtype, *args), built once per (factory, dtype, args): kernels whose shared-memory arrays need
    the element type as a compile-time constant are written as factories of it."""
    key = (factory, np.dtype(dtype), args)
    if key not in _compiled:
        _compiled[key] = factory(numba.from_dtype(np.dtype(dtype)), *args)
    return _compiled[key]


def tiled(kernel_factory, dtype, batch, m):
    """The kernel for dtype, configured for a grid of TILE x TILE blocks over the [batch, m] outputs."""
    return specialized(kernel_factory, dtype)[(blocks(m, TILE), blocks(batch, TILE)), (TILE, TILE)]


@cuda.jit(device=True, inline=True)
def load_tile(tile, a, r, k):
    """tile[ty, tx] = a[r, k], or 0 outside a."""
    tile[cuda.threadIdx.y, cuda.threadIdx.x] = a[r, k] if r < a.shape[0] and k < a.shape[1] else a.dtype.type(0)


@cuda.jit(device=True, inline=True)
def times_sign(g, d):
    """g sign(d), in g's dtype (g - g: 0, or NaN for an infinite g, as g * 0 would give; a NaN d gives NaN, as
    the CPU's g * np.sign(d))."""
    return g if d > 0 else -g if d < 0 else g - g if d == d else d
