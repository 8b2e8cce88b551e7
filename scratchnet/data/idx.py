"""The IDX file format of MNIST and Fashion-MNIST: a four-byte magic number, the sizes, then the raw array.

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): bytes 0-1 are zero, byte 2 is the element type
(0x08 = unsigned byte), byte 3 the number of dimensions d; then d big-endian uint32 sizes; then the
prod(sizes) elements in C order. So images are 0x00000803 (N, rows, cols) and labels 0x00000801 (N,).
Every field is checked against the bytes actually present, so a truncated or foreign file is refused with an
error that names it instead of being reshaped into nonsense.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from scratchnet.data.checksum import check_sha256, sha256_bytes

UBYTE = 0x08  # the only element type of the MNIST family
GZIP_MAGIC = b"\x1f\x8b"


def load_bytes(path) -> bytes:
    """The contents of `path`, gunzipped if it is gzip-compressed (known by its magic bytes, not its name)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:  # bad header, cut-off stream, corrupt deflate data
        raise ValueError(f"{path} is not a readable gzip file ({error})") from None


def parse_idx(raw: bytes, ndim: int, name) -> np.ndarray:
    """The uint8 array of `ndim` dimensions stored in the IDX bytes `raw` (a read-only view of them).

    `name` is only used in error messages.
    """
    expected = (UBYTE << 8) | ndim
    if len(raw) < 4:
        raise ValueError(f"{name} is truncated: {len(raw)} bytes, shorter than the 4-byte IDX magic number")
    magic = int.from_bytes(raw[:4], "big")
    what = f"magic number 0x{magic:08X}, expected 0x{expected:08X}"
    if raw[:2] != b"\0\0":
        raise ValueError(f"{name} is not an IDX file: {what} (the first two bytes must be zero)")
    if raw[2] != UBYTE:
        raise ValueError(f"{name}: {what}: element type 0x{raw[2]:02X}, expected 0x{UBYTE:02X} (unsigned)")
    if raw[3] != ndim:
        raise ValueError(f"{name}: {what}: {raw[3]} dimension(s), expected {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{name} is truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    needed = header + math.prod(shape)
    if len(raw) < needed:
        raise ValueError(f"{name} is truncated: its header declares shape {shape}, which needs {needed} "
                         f"bytes, but it has {len(raw)}")
    if len(raw) > needed:
        raise ValueError(f"{name} has {len(raw) - needed} bytes after the {shape} array its header declares")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def read_idx(path, ndim: int, sha256: str | None = None) -> np.ndarray:
    """Read the IDX file at `path` (gzip-compressed or not); with `sha256`, verify the uncompressed bytes.

    The uncompressed bytes are hashed because they are the canonical content: the same array can sit in gzip
    wrappers that differ (compression level, timestamp, file name) and therefore hash differently.
    """
    raw = load_bytes(path)
    array = parse_idx(raw, ndim, path)  # structure first: "truncated" says more than "checksum mismatch"
    if sha256 is not None:
        check_sha256(sha256_bytes(raw), sha256, path)
    return array
