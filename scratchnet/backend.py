"""Which kernels the differentiable ops call: "numba" (the default), "numpy" (the readable references) or "cuda"
(numba.cuda kernels on an NVIDIA GPU).

The choice comes from `use_backend` (for a block, in the thread that runs it), else `set_backend` (for the whole
process), else the environment variable SCRATCHNET_BACKEND.
Every backend provides the same functions with the same signatures (see `kernels/reference/`), so an op asks
for a kernel by name and never knows which tier runs. A backend's modules are imported on first use, so
scratchnet imports without numba-cuda or a GPU; choosing "cuda" where it cannot run raises `BackendUnavailable`
with what to do about it.
"""

import contextlib
import contextvars
import functools
import importlib
import os

BACKENDS = {
    "numpy": ("scratchnet.kernels.reference",),
    "numba": (
        "scratchnet.kernels.conv",
        "scratchnet.kernels.pool",
        "scratchnet.kernels.linf_dist",
        "scratchnet.kernels.lp_dist",
        "scratchnet.kernels.attack",
        "scratchnet.kernels.activation",
        "scratchnet.kernels.norms",
    ),
    "cuda": (
        "scratchnet.kernels.cuda.conv",
        "scratchnet.kernels.cuda.pool",
        "scratchnet.kernels.cuda.linf_dist",
        "scratchnet.kernels.cuda.lp_dist",
        "scratchnet.kernels.cuda.attack",
        "scratchnet.kernels.cuda.activation",
        "scratchnet.kernels.cuda.norms",
    ),
}

_default: str | None = None  # set_backend's choice
_block: contextvars.ContextVar[str | None] = contextvars.ContextVar("scratchnet_backend", default=None)  # use_backend's
_kernels: dict[tuple[str, str], object] = {}


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run here (for "cuda": no numba.cuda, or no GPU and no simulator)."""


@functools.cache
def cuda_problem() -> str | None:
    """Why the cuda backend cannot run here, or None when it can (a GPU, or Numba's CUDA simulator)."""
    try:
        from numba import config, cuda
    except ImportError as error:
        return (f"the cuda backend needs numba.cuda, which failed to import ({error}); install it with "
                "`pip install numba-cuda` (or `pip install -e '.[gpu]'`)")
    if config.ENABLE_CUDASIM or cuda.is_available():
        return None
    return ("the cuda backend found no usable CUDA GPU (numba.cuda.is_available() is False: no NVIDIA GPU, driver "
            "or CUDA runtime). Use backend 'numba' or 'numpy' instead, or set NUMBA_ENABLE_CUDASIM=1 before "
            "starting Python to run the CUDA kernels in Numba's simulator (slow: for tests)")


def _check(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}")
    if name == "cuda" and cuda_problem() is not None:
        raise BackendUnavailable(cuda_problem())
    return name


def get_backend() -> str:
    """The active backend's name."""
    return _block.get() or _default or _from_environment()


def _from_environment() -> str:
    name = os.environ.get("SCRATCHNET_BACKEND", "numba")
    try:
        return _check(name)
    except (ValueError, BackendUnavailable) as error:
        raise type(error)(f"the environment variable SCRATCHNET_BACKEND={name!r}: {error}") from None


def set_backend(name: str) -> None:
    """Choose the backend for the whole process (a `use_backend` block still takes precedence inside it)."""
    global _default
    _default = _check(name)


@contextlib.contextmanager
def use_backend(name: str):
    """Run a block with another backend, then restore the previous one. The choice belongs to the thread (the
    context) that runs the block, so blocks in two threads never restore each other's."""
    token = _block.set(_check(name))
    try:
        yield
    finally:
        _block.reset(token)


def kernel(name: str):
    """The kernel called `name` in the active backend (imported on first use, then cached)."""
    backend = get_backend()
    key = (backend, name)
    if key not in _kernels:
        for module in BACKENDS[backend]:
            found = getattr(importlib.import_module(module), name, None)
            if found is not None:
                _kernels[key] = found
                break
        else:
            raise NotImplementedError(f"backend {backend!r} has no kernel {name!r}")
    return _kernels[key]
