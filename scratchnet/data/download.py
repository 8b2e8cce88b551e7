"""Fetching files safely: bytes go to a temporary file beside the destination, are verified, then renamed.

`os.replace` is atomic, so the destination either holds a complete, verified file or does not exist: an
interrupted download or a corrupted mirror never leaves a half file that a later run would trust.
"""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from scratchnet.data.checksum import ChecksumError
from scratchnet.data.errors import DownloadError

TIMEOUT_S = 30.0


def save_stream(stream, dest, check=None, total: int | None = None) -> Path:
    """Copy the binary file object `stream` into `dest` atomically. `check(tmp_path)` may raise to refuse the
    bytes before they take the name `dest`; `total` (bytes, if known) sizes the progress bar."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, tqdm.wrapattr(out, "write", total=total, desc=dest.name, leave=False,
                                                       disable=None) as bar:
            shutil.copyfileobj(stream, bar, 1 << 20)
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename makes it visible
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def download(urls, dest, check) -> Path:
    """Download `dest` from the first of `urls` that answers with bytes that pass `check(tmp_path)` (checked
    before the rename). A network failure or a checksum mismatch (a mirror that serves an error page or another
    file) moves on to the next mirror; if all fail, DownloadError lists every URL and its error. Anything else
    (a malformed URL, a fault in `check`) is raised at once."""
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                size = response.headers.get("Content-Length")
                return save_stream(response, dest, check, int(size) if size else None)
        except (OSError, http.client.HTTPException, ChecksumError) as error:  # no network, HTTP error, timeout,
            failures.append(f"{url}: {error}")  # a cut-off body, wrong bytes
    raise DownloadError(f"could not download {Path(dest).name}:\n  " + "\n  ".join(failures))
