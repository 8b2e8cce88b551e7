"""CIFAR-10 (Krizhevsky 2009): 32x32 colour images in ten classes, 50,000 for training and 10,000 for testing.

The official "python version" is a tar.gz of six pickled dicts (`cifar-10-batches-py/data_batch_1..5`,
`test_batch`), each with b"data" (uint8 [10000, 3072]: the red plane, then green, then blue, each row-major)
and b"labels" (a list of ints 0..9). Pickles can run arbitrary code when loaded: read only files from a
trusted source, such as the official archive, whose SHA-256 is checked when it is downloaded.
"""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np

from scratchnet.data.checksum import check_sha256, sha256_file
from scratchnet.data.download import download, save_stream
from scratchnet.data.errors import DatasetNotFoundError, DownloadError
from scratchnet.data.loader import ArrayDataset
from scratchnet.data.locate import ENV, cache_folder, find_files, search_folders

URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
FOLDER = "cifar-10-batches-py"  # the folder inside the archive
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = 10


def cifar10(root=None, download: bool = True) -> tuple[ArrayDataset, ArrayDataset]:
    """CIFAR-10 as (train, test): x float32 [N, 3, 32, 32] in [0, 1], y int64 [N]; train is the five training
    batches in order (50,000 images), test the test batch (10,000).

    The six batch files are read from `root` (or `root/cifar-10-batches-py`), otherwise from
    `$SCRATCHNET_DATA/cifar10` (or its `cifar-10-batches-py`), otherwise from the cache
    `~/.cache/scratchnet/cifar10`. When absent, the official archive is downloaded (unless `download=False`),
    checked and unpacked there. The pickles must come from a trusted source: loading a pickle can run code.
    """
    bases = [(Path(root), "root")] if root is not None else search_folders(("cifar10",))
    folders = [(folder, where) for base, where in bases for folder in (base, base / FOLDER)]
    names = (*TRAIN_BATCHES, TEST_BATCH)
    files = find_files([folder for folder, _ in folders], names, suffixes=("",))
    if files is None:
        target = Path(root) if root is not None else cache_folder("cifar10")
        files = _fetch(target, folders, download, names)
    train = [read_batch(files[name]) for name in TRAIN_BATCHES]
    x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    return _dataset(x_train, y_train), _dataset(*read_batch(files[TEST_BATCH]))


def read_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch as (images uint8 [N, 3, 32, 32], labels int64 [N]), with its contents validated.

    Only for trusted files: unpickling can run arbitrary code.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            batch = pickle.load(f, encoding="bytes")  # the official batches were pickled by Python 2
        except Exception as error:  # unpickling fails in many ways (EOFError, UnpicklingError, ...)
            reason = f"{type(error).__name__}: {error}"
            raise ValueError(f"{path} is not a readable CIFAR-10 pickle ({reason})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path} should hold a dict with b'data' and b'labels', got {type(batch).__name__}")
    missing = [key for key in (b"data", b"labels") if key not in batch]
    if missing:
        raise ValueError(f"{path} lacks the key(s) {missing}; it has {sorted(map(repr, batch))}")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: b'data' must be a uint8 array [N, 3072] (3 x 32 x 32 pixels), got {got}")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: b'labels' must be {len(data)} integers (one per image), "
                         f"got {labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= CLASSES):
        raise ValueError(f"{path}: labels must lie in 0..{CLASSES - 1}, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _dataset(images: np.ndarray, labels: np.ndarray) -> ArrayDataset:
    x = images.astype(np.float32)
    x /= 255
    return ArrayDataset(x, labels)


def _fetch(target: Path, folders, allowed: bool, names) -> dict:
    """Download the archive into `target`, verify it, unpack the batches into `target/cifar-10-batches-py`."""
    if not allowed:
        raise _not_found(folders, target, "download=False was given")
    archive = target / ARCHIVE
    try:
        download(URLS, archive, lambda tmp: check_sha256(sha256_file(tmp), ARCHIVE_SHA256, archive, downloaded=True))
    except DownloadError as error:
        raise _not_found(folders, target, f"downloading failed: {error}") from error
    extract(archive, target / FOLDER, names)
    archive.unlink()  # 170 MB that the unpacked batches make redundant
    return find_files([target / FOLDER], names, suffixes=("",))


def extract(archive, dest, names) -> None:
    """Write the members `cifar-10-batches-py/<name>` of the tar.gz `archive` into `dest/<name>`.

    Safe against hostile archives: the output paths come from `names`, never from the archive, so member names
    like `../x` or absolute paths, links and devices cannot write outside `dest`. One pass over the archive,
    because a gzip stream cannot seek backwards cheaply.
    """
    wanted = {f"{FOLDER}/{name}": name for name in names}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name in wanted and member.isfile():
                save_stream(tar.extractfile(member), Path(dest) / wanted.pop(member.name))
    if wanted:
        raise ValueError(f"{archive} lacks the file(s) {sorted(wanted)}: not the CIFAR-10 python archive")


def _not_found(folders, target: Path, reason: str) -> DatasetNotFoundError:
    looked = "\n".join(f"  {folder}  ({where})" for folder, where in folders)
    return DatasetNotFoundError(
        f"CIFAR-10 not found: no folder holds all of {', '.join((*TRAIN_BATCHES, TEST_BATCH))}. Looked in:\n"
        f"{looked}\nand {reason}.\nTo get them, download {URLS[0]} and unpack it into {target} (or into "
        f"${ENV}/cifar10 with {ENV} set).")
