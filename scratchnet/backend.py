"""Which kernels the differentiable ops call: "numba" (the default) or "numpy" (the readable references).

The choice comes from `set_backend` / `use_backend`, or else from the environment variable SCRATCHNET_BACKEND.
Every backend provides the same functions with the same signatures (see `kernels/reference/`), so an op asks
for a kernel by name and never knows which tier runs.
"""

import contextlib
import importlib
import os

BACKENDS = {
    "numpy": ("scratchnet.kernels.reference", "scratchnet.kernels.reference.linf_dist"),
    "numba": (
        "scratchnet.kernels.conv",
        "scratchnet.kernels.pool",
        "scratchnet.kernels.linf_dist",
        "scratchnet.kernels.attack",
        "scratchnet.kernels.activation",
    ),
}

_active: str | None = None
_kernels: dict[tuple[str, str], object] = {}


def _check(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}")
    return name


def get_backend() -> str:
    """The active backend's name."""
    return _active or _check(os.environ.get("SCRATCHNET_BACKEND", "numba"))


def set_backend(name: str) -> None:
    global _active
    _active = _check(name)


@contextlib.contextmanager
def use_backend(name: str):
    """Run a block with another backend, then restore the previous one."""
    global _active
    previous, _active = _active, _check(name)
    try:
        yield
    finally:
        _active = previous


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
