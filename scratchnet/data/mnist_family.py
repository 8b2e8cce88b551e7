"""MNIST and Fashion-MNIST: 28x28 grey images in ten classes, stored as the same four IDX files.

MNIST (LeCun, Bottou, Bengio & Haffner 1998) holds handwritten digits; Fashion-MNIST (Xiao, Rasul & Vollgraf
2017) is its drop-in replacement with clothing, harder and less saturated. Both ship 60,000 training and
10,000 test images. The files are looked for in the folders of `locate.py`, downloaded when absent, and every
file is checked against the SHA-256 of its uncompressed bytes before it is used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchnet.data.checksum import check_sha256, sha256_bytes
from scratchnet.data.download import download
from scratchnet.data.errors import DatasetNotFoundError, DownloadError, MnistSplitWarning
from scratchnet.data.idx import load_bytes, read_idx
from scratchnet.data.loader import ArrayDataset
from scratchnet.data.locate import ENV, cache_folder, find_files, search_folders

TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SPLIT_SEED = 0


@dataclass(frozen=True)
class IdxSource:
    """Everything needed to find, fetch and verify one data set of the MNIST family."""

    title: str
    names: tuple[str, ...]  # folder name under $SCRATCHNET_DATA and in the cache, then accepted spellings
    system: tuple[str, ...]  # folders a package manager fills
    mirrors: tuple[str, ...]  # base URLs holding the four .gz files
    sha256: dict  # uncompressed file name -> hex SHA-256
    install_hint: str = ""


MNIST = IdxSource(
    title="MNIST",
    names=("mnist",),
    system=(),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    # The test hashes match the shared copy's README; the train hashes are the values published with many
    # independent MNIST loaders, whose test hashes agree with that README.
    sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
)

FASHION_MNIST = IdxSource(
    title="Fashion-MNIST",
    names=("fashion_mnist", "fashion-mnist"),
    system=("/usr/share/datasets/fashion-mnist",),
    # Plain HTTP (this endpoint has no HTTPS); the checksum guards the content.
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    install_hint="install Debian's package (`apt-get install dataset-fashion-mnist`, which puts them in "
                 "/usr/share/datasets/fashion-mnist), or ",
)


def mnist(root=None, download: bool = True) -> tuple[ArrayDataset, ArrayDataset]:
    """MNIST as (train, test): x float32 [N, 1, 28, 28] in [0, 1], y int64 [N] (the digit).

    The four files come from `root` if given (and are downloaded there), otherwise from the first of
    `$SCRATCHNET_DATA/mnist` and the cache `~/.cache/scratchnet/mnist` that holds them. When no folder has all
    four but one has the two test files, the result is a fixed 8,000 / 2,000 split of the 10k test set, with a
    MnistSplitWarning.
    Otherwise the files are downloaded into the cache (unless `download=False`) or DatasetNotFoundError says
    where to put them.
    """
    return _load(MNIST, root, download, allow_split=True)


def fashion_mnist(root=None, download: bool = True) -> tuple[ArrayDataset, ArrayDataset]:
    """Fashion-MNIST as (train, test): x float32 [N, 1, 28, 28] in [0, 1], y int64 [N] (the garment class).

    Searched in `root`, or else `$SCRATCHNET_DATA/fashion_mnist` (or `fashion-mnist`), the system folder
    `/usr/share/datasets/fashion-mnist` and the cache; downloaded into the cache (or `root`) when absent.
    """
    return _load(FASHION_MNIST, root, download, allow_split=False)


def _load(source: IdxSource, root, download: bool, allow_split: bool):
    folders = [(Path(root), "root")] if root is not None else search_folders(source.names, source.system)
    paths = [folder for folder, _ in folders]
    files = find_files(paths, TRAIN + TEST)
    if files is None and allow_split:
        test_files = find_files(paths, TEST)
        if test_files is not None:
            return _split_test_set(source, test_files)
    if files is None:
        target = Path(root) if root is not None else cache_folder(source.names[0])
        files = _fetch(source, target, folders, download)
    return _read_pair(source, files, *TRAIN), _read_pair(source, files, *TEST)


def _read_pair(source: IdxSource, files: dict, images_name: str, labels_name: str) -> ArrayDataset:
    images = read_idx(files[images_name], 3, source.sha256[images_name])
    labels = read_idx(files[labels_name], 1, source.sha256[labels_name])
    if len(images) != len(labels):
        raise ValueError(f"{files[images_name]} holds {len(images)} images but {files[labels_name]} holds "
                         f"{len(labels)} labels; they must pair up one to one")
    x = images[:, None].astype(np.float32)  # [N, 1, rows, cols]: one channel, NCHW
    x /= 255
    return ArrayDataset(x, labels.astype(np.int64))


def _split_test_set(source: IdxSource, files: dict) -> tuple[ArrayDataset, ArrayDataset]:
    """A fixed 80 / 20 split of the test files, for machines that have only those (8,000 / 2,000 on MNIST)."""
    full = _read_pair(source, files, *TEST)
    # RandomState, not default_rng: NumPy freezes RandomState's stream, so this split is the same on every
    # machine and every NumPy version, while Generator's algorithms may change between releases.
    order = np.random.RandomState(SPLIT_SEED).permutation(len(full))
    n_test = len(full) // 5
    folder = files[TEST[0]].parent
    warnings.warn(f"only the {source.title} test files were found (in {folder}): using a fixed "
                  f"{len(full) - n_test:,} / {n_test:,} split of its {len(full):,} test images as (train, "
                  f"test). Put {TRAIN[0]}.gz and {TRAIN[1]}.gz beside them for the standard 60k / 10k.",
                  MnistSplitWarning, stacklevel=4)  # point at the caller of mnist()
    return full.subset(np.sort(order[n_test:])), full.subset(np.sort(order[:n_test]))


def _fetch(source: IdxSource, target: Path, folders, allowed: bool) -> dict:
    """Download the missing files into `target`, each verified before it takes its name."""
    if not allowed:
        raise _not_found(source, folders, target, "download=False was given")
    # Train files first: a run cut off midway then never leaves the test pair alone in the cache, where it
    # would be mistaken for a deliberate test-only copy.
    for name in TRAIN + TEST:
        if find_files([target], [name]) is not None:
            continue
        dest = target / f"{name}.gz"
        try:
            download([base + dest.name for base in source.mirrors], dest, _checker(source.sha256[name], dest))
        except DownloadError as error:
            raise _not_found(source, folders, target, f"downloading failed: {error}") from error
    return find_files([target], TRAIN + TEST)


def _checker(expected: str, dest: Path):
    return lambda tmp: check_sha256(sha256_bytes(load_bytes(tmp)), expected, f"{dest} (downloaded)", downloaded=True)


def _not_found(source: IdxSource, folders, target: Path, reason: str) -> DatasetNotFoundError:
    looked = "\n".join(f"  {folder}  ({where})" for folder, where in folders)
    files = ", ".join(f"{name}.gz" for name in TRAIN + TEST)
    return DatasetNotFoundError(
        f"{source.title} not found: no folder holds all of {files} (gzip-compressed or not). Looked in:\n"
        f"{looked}\nand {reason}.\nTo get them, {source.install_hint}download the four files from "
        f"{source.mirrors[0]} into {target} (or into ${ENV}/{source.names[0]} with {ENV} set).")
