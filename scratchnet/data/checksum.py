"""SHA-256 checks: a file is accepted only if its bytes hash to the published value.

A truncated download, a flipped bit or a different data set with the same file names all change the hash, so
checking it turns a silent wrong answer (a model trained on other data) into a clear error.
"""

import hashlib


def sha256_bytes(data: bytes) -> str:
    """The hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str:
    """The hex SHA-256 of a file, read in chunks so that a large archive never sits whole in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ChecksumError(ValueError):
    """A file's bytes do not hash to the published value."""


def check_sha256(actual: str, expected: str, name, downloaded: bool = False) -> None:
    """Raise a ChecksumError naming `name`, the expected and the actual hash when they differ. `downloaded`: the
    bytes are a download's, which is not kept (so there is no file to delete)."""
    if actual != expected:
        advice = "the download was not kept" if downloaded else "delete it and fetch it again"
        raise ChecksumError(f"checksum mismatch for {name}: expected sha256 {expected}, got {actual} "
                            f"(a corrupted or different file; {advice})")
