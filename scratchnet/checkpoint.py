"""Saving and loading arrays: atomic `.npz` files whose contents are checked on the way back in.

A file holds named arrays plus a SHA-256 of all of them, so a truncated or altered file is refused with a clear
error instead of loading half a model. Writing goes to a temporary file that is renamed into place, so a crash
mid-write never leaves a broken checkpoint behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "scratchnet-npz-1"


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_arrays(arrays: dict[str, np.ndarray], path) -> Path:
    """Write `arrays` (name -> array; no object arrays) to `path` atomically, with a checksum."""
    path = Path(path)
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if name.startswith("__") or a.dtype == object:
            raise ValueError(f"cannot save array {name!r}: reserved name or object dtype")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, {"__format__": np.array(FORMAT), "__checksum__": np.array(_digest(arrays)), **arrays})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def _write_npz(f, arrays: dict[str, np.ndarray]) -> None:
    """What np.savez writes (one .npy member per array), with any name: np.savez takes the names as keyword
    arguments, so an array called "file" or "allow_pickle" would collide with its own parameters."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, a in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, a, allow_pickle=False)


def load_arrays(path) -> dict[str, np.ndarray]:
    """Read a file written by `save_arrays`, verifying its format marker and checksum."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable .npz file ({error})") from None
    if str(arrays.pop("__format__", "")) != FORMAT:
        raise ValueError(f"{path} was not written by scratchnet.save (no '{FORMAT}' marker)")
    expected, actual = str(arrays.pop("__checksum__", "")), _digest(arrays)
    if expected != actual:
        raise ValueError(f"{path} is corrupted: checksum {actual} does not match the stored {expected}")
    return arrays


def save(model, path) -> Path:
    """Save a Module's `state_dict` (or a dict of arrays) to `path` atomically."""
    return save_arrays(model.state_dict() if hasattr(model, "state_dict") else dict(model), path)


def load(path, model=None):
    """The arrays saved at `path`; with `model`, load them into it (names, shapes and dtypes checked) and return it."""
    arrays = load_arrays(path)
    if model is None:
        return arrays
    model.load_state_dict(arrays)
    return model
