"""Data files: MNIST / Fashion-MNIST (IDX) and CIFAR-10 (pickles): where they are found, downloads, refusals.

The real MNIST test files come from $SCRATCHNET_DATA (CI points it at ../shared/data) and the full
Fashion-MNIST from Debian's package; every other test builds small files in tmp_path and never touches the
network: downloads are served from file:// mirrors.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import tarfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from scratchnet import data
from scratchnet.data import cifar, idx, mnist_family
from scratchnet.data.download import download
from scratchnet.data.locate import find_files, search_folders

TRAIN, TEST = mnist_family.TRAIN, mnist_family.TEST
README_SHA256 = {  # ../shared/data/README.md, uncompressed files
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


def shared_mnist_folder() -> Path:
    root = os.environ.get("SCRATCHNET_DATA") or "/work/shared/data"
    folder = Path(root) / "mnist"
    if not all((folder / f"{name}.gz").is_file() for name in TEST):
        pytest.skip(f"the real MNIST test files are not in {folder} (set SCRATCHNET_DATA to ../shared/data)")
    return folder


# ---------------------------------------------------------------- small generated IDX files

def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, raw: bytes, gz: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def make_idx_set(folder: Path, n_train=6, n_test=5, label=None, names=TRAIN + TEST, gz=True) -> dict:
    """Write a tiny MNIST-like set (4x3 images) into `folder`; return {file name: sha256 of its raw bytes}.
    Labels are `label` everywhere if given (to tell copies apart), else 0, 1, 2, ..."""
    rng = np.random.default_rng(len(str(folder)))
    hashes = {}
    for name in names:
        n = n_train if name.startswith("train") else n_test
        if "images" in name:
            array = rng.integers(0, 256, size=(n, 4, 3))
        else:
            array = np.full(n, label) if label is not None else np.arange(n) % 10
        raw = idx_bytes(array)
        write(folder / name, raw, gz)
        hashes[name] = hashlib.sha256(raw).hexdigest()
    return hashes


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Empty $SCRATCHNET_DATA, cache and system folders, dead mirrors: nothing real can be found."""
    env, cache = tmp_path / "env", tmp_path / "xdg"
    env.mkdir()
    monkeypatch.setenv("SCRATCHNET_DATA", str(env))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    dead, system = ((tmp_path / "no-mirror").as_uri() + "/",), (str(tmp_path / "sys"),)
    for source in ("MNIST", "FASHION_MNIST"):
        patched = dataclasses.replace(getattr(mnist_family, source), mirrors=dead, system=system)
        monkeypatch.setattr(mnist_family, source, patched)
    monkeypatch.setattr(cifar, "URLS", (dead[0] + cifar.ARCHIVE,))
    return tmp_path


def trust(monkeypatch, hashes: dict, source="MNIST"):
    """Make the loader expect the hashes of generated files instead of the published ones."""
    patched = dataclasses.replace(getattr(mnist_family, source), sha256=dict(hashes))
    monkeypatch.setattr(mnist_family, source, patched)


def serve(monkeypatch, folder: Path, source="MNIST"):
    patched = dataclasses.replace(getattr(mnist_family, source), mirrors=(folder.as_uri() + "/",))
    monkeypatch.setattr(mnist_family, source, patched)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ---------------------------------------------------------------- the real files

def test_real_mnist_test_files_give_the_fixed_8000_2000_split_with_a_warning(tmp_path, monkeypatch):
    folder = shared_mnist_folder()
    monkeypatch.setenv("SCRATCHNET_DATA", str(folder.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a full MNIST in the user's cache would win
    with pytest.warns(data.MnistSplitWarning, match="8,000 / 2,000"):
        train, test = data.mnist()
    assert (len(train), len(test)) == (8000, 2000)
    for part in (train, test):
        assert part.x.dtype == np.float32 and part.x.shape[1:] == (1, 28, 28) and part.y.dtype == np.int64
        assert part.x.min() == 0.0 and part.x.max() == 1.0
    assert np.bincount(train.y).tolist() == (np.array(MNIST_TEST_COUNTS) - np.bincount(test.y)).tolist()
    assert np.bincount(test.y).tolist() == [210, 243, 199, 206, 228, 166, 180, 185, 195, 188]  # fixed split

    raw = idx.read_idx(folder / f"{TEST[0]}.gz", 3)
    def images(x):
        return Counter(image.tobytes() for image in np.rint(x * 255).astype(np.uint8))

    assert images(train.x) + images(test.x) == images(raw[:, None] / 255)  # disjoint; together the 10k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.MnistSplitWarning)
        again = data.mnist()[1]
    np.testing.assert_array_equal(again.x, test.x)


def test_real_mnist_labels_and_their_checksums():
    folder = shared_mnist_folder()
    labels = idx.read_idx(folder / f"{TEST[1]}.gz", 1, README_SHA256[TEST[1]])
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS
    for name, digest in README_SHA256.items():
        assert mnist_family.MNIST.sha256[name] == digest


def test_the_loader_hashes_the_uncompressed_real_file(monkeypatch):
    folder = shared_mnist_folder()
    trust(monkeypatch, {**mnist_family.MNIST.sha256, TEST[0]: "0" * 64})
    with pytest.raises(ValueError, match=TEST[0]) as error, warnings.catch_warnings():
        warnings.simplefilter("ignore", data.MnistSplitWarning)
        data.mnist(root=folder)
    assert "0" * 64 in str(error.value) and README_SHA256[TEST[0]] in str(error.value)


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """The full Fashion-MNIST, read once from the system folder (an empty $SCRATCHNET_DATA and cache)."""
    if not all((FASHION_SYSTEM / f"{name}.gz").is_file() for name in TRAIN + TEST):
        pytest.skip(f"Fashion-MNIST is not in {FASHION_SYSTEM} (apt-get install dataset-fashion-mnist)")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCRATCHNET_DATA", str(empty))
        patch.setenv("XDG_CACHE_HOME", str(empty))
        patch.setattr(mnist_family, "download", lambda *args: pytest.fail("must not download"))
        return data.fashion_mnist()


def test_fashion_mnist_from_the_system_folder_is_the_full_60k_10k(fashion):
    train, test = fashion
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    assert np.bincount(train.y).tolist() == [6000] * 10 and np.bincount(test.y).tolist() == [1000] * 10
    assert train.y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert test.y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


# ---------------------------------------------------------------- IDX refusals

@pytest.mark.parametrize("header, message", [
    (bytes([1, 0, 8, 3]), "not an IDX file: magic number 0x01000803, expected 0x00000803"),
    (bytes([0, 0, 0x0D, 3]), "element type 0x0D"),
    (bytes([0, 0, 8, 1]), "1 dimension"),
])
def test_a_bad_magic_number_is_refused_naming_the_file(sandbox, header, message):
    make_idx_set(sandbox / "env" / "mnist")
    path = sandbox / "env" / "mnist" / f"{TRAIN[0]}.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(header + raw[4:]))
    with pytest.raises(ValueError, match=message) as error:
        data.mnist()
    assert str(path) in str(error.value)


@pytest.mark.parametrize("gz", [True, False])
def test_a_truncated_file_is_refused_naming_the_file(tmp_path, gz):
    raw = idx_bytes(np.zeros((5, 4, 3)))
    path = write(tmp_path / TRAIN[0], raw[:-7], gz)
    with pytest.raises(ValueError, match=r"is truncated: its header declares shape \(5, 4, 3\), which needs "
                                         r"76 bytes, but it has 69") as error:
        idx.read_idx(path, 3)
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match="shorter than its 16-byte header"):
        idx.read_idx(write(tmp_path / "header", raw[:10], gz), 3)


def test_a_cut_gzip_stream_and_trailing_bytes_are_refused(tmp_path):
    raw = idx_bytes(np.zeros((5, 4, 3)))
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(ValueError, match=f"{path} is not a readable gzip file"):
        idx.read_idx(path, 3)
    with pytest.raises(ValueError, match="has 2 bytes after the"):
        idx.read_idx(write(tmp_path / "long", raw + b"xx"), 3)


def test_images_and_labels_of_different_counts_are_refused(sandbox, monkeypatch):
    folder = sandbox / "env" / "mnist"
    hashes = make_idx_set(folder)
    labels = idx_bytes(np.arange(5))  # 5 labels for the 6 training images
    write(folder / TRAIN[1], labels)
    trust(monkeypatch, {**hashes, TRAIN[1]: hashlib.sha256(labels).hexdigest()})
    with pytest.raises(ValueError, match="holds 6 images but .* holds 5 labels") as error:
        data.mnist()
    assert f"{TRAIN[0]}.gz" in str(error.value) and f"{TRAIN[1]}.gz" in str(error.value)


def test_a_wrong_checksum_names_the_file_and_both_hashes(sandbox):
    hashes = make_idx_set(sandbox / "env" / "mnist")
    with pytest.raises(ValueError, match=f"checksum mismatch for .*{TRAIN[0]}.gz") as error:
        data.mnist()
    assert mnist_family.MNIST.sha256[TRAIN[0]] in str(error.value) and hashes[TRAIN[0]] in str(error.value)


def test_generated_files_load_gzip_or_not(sandbox, monkeypatch):
    trust(monkeypatch, make_idx_set(sandbox / "plain", gz=False))
    train, test = data.mnist(root=sandbox / "plain")
    assert train.x.shape == (6, 1, 4, 3) and test.y.tolist() == [0, 1, 2, 3, 4]
    raw = idx.read_idx(sandbox / "plain" / TRAIN[0], 3)
    np.testing.assert_array_equal(train.x[:, 0], raw / np.float32(255))


# ---------------------------------------------------------------- where files are found

def test_search_order_is_env_then_system_then_cache(sandbox, monkeypatch):
    names, system = mnist_family.FASHION_MNIST.names, mnist_family.FASHION_MNIST.system
    wheres = [where for _, where in search_folders(names, system)]
    assert wheres == ["$SCRATCHNET_DATA", "$SCRATCHNET_DATA", "system folder", "cache"]
    env, sys_folder = sandbox / "env" / "fashion-mnist", sandbox / "sys"  # the alias spelling is accepted
    cache = sandbox / "xdg" / "scratchnet" / "fashion_mnist"
    for label, folder in enumerate([env, sys_folder, cache]):
        make_idx_set(folder, label=label)
    read = idx.read_idx
    monkeypatch.setattr(mnist_family, "read_idx", lambda path, ndim, sha256: read(path, ndim))  # 3 copies
    for label, folder in enumerate([env, sys_folder, cache]):
        assert data.fashion_mnist()[0].y.tolist() == [label] * 6
        (folder / f"{TEST[1]}.gz").unlink()  # an incomplete folder is passed over
    with pytest.raises(data.DatasetNotFoundError):
        data.fashion_mnist()


def test_find_files_takes_the_first_complete_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "one", b"1")
    write(b / "one", b"1", gz=False)
    write(b / "two", b"2")
    assert find_files([a, b], ["one", "two"]) == {"one": b / "one", "two": b / "two.gz"}
    assert find_files([a, b], ["one"]) == {"one": a / "one.gz"}
    assert find_files([a, b], ["two"], suffixes=("",)) is None


def test_missing_everything_says_where_to_put_the_files(sandbox):
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.mnist()
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    assert str(sandbox / "env" / "mnist") in message
    assert str(sandbox / "xdg" / "scratchnet" / "mnist") in message
    assert "downloading failed" in message and "no-mirror/train-images-idx3-ubyte.gz" in message
    with pytest.raises(data.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as error:
        data.fashion_mnist(download=False)
    assert "download=False" in str(error.value) and str(sandbox / "sys") in str(error.value)


def test_download_false_never_touches_the_network(sandbox, monkeypatch):
    monkeypatch.setattr(mnist_family, "download", lambda *args: pytest.fail("downloaded"))
    with pytest.raises(data.DatasetNotFoundError, match="download=False"):
        data.mnist(download=False)


def test_only_test_files_give_a_split_for_mnist_but_not_fashion(sandbox, monkeypatch):
    hashes = make_idx_set(sandbox / "env" / "mnist", n_test=10, names=TEST)
    trust(monkeypatch, hashes)
    with pytest.warns(data.MnistSplitWarning, match="8 / 2 split"):
        train, test = data.mnist()
    assert sorted(train.y.tolist() + test.y.tolist()) == list(range(10)) and len(test) == 2
    make_idx_set(sandbox / "env" / "fashion_mnist", names=TEST)
    with pytest.raises(data.DatasetNotFoundError):
        data.fashion_mnist(download=False)


def test_download_is_verified_and_lands_in_the_cache(sandbox, monkeypatch):
    hashes = make_idx_set(sandbox / "mirror", n_train=7, n_test=3)
    trust(monkeypatch, hashes)
    serve(monkeypatch, sandbox / "mirror")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the full set: no split warning
        train, test = data.mnist()
    assert (len(train), len(test)) == (7, 3)
    cache = sandbox / "xdg" / "scratchnet" / "mnist"
    assert listing(cache) == sorted(f"{name}.gz" for name in TRAIN + TEST)  # no temporary left behind
    serve(monkeypatch, sandbox / "gone")
    np.testing.assert_array_equal(data.mnist()[0].x, train.x)  # now read from the cache


def test_a_corrupt_download_is_refused_and_leaves_nothing(sandbox, monkeypatch):
    hashes = make_idx_set(sandbox / "mirror")
    trust(monkeypatch, {**hashes, TRAIN[0]: "f" * 64})
    serve(monkeypatch, sandbox / "mirror")
    mismatch = f"checksum mismatch for .*{TRAIN[0]}.gz \\(downloaded\\)"
    with pytest.raises(data.DatasetNotFoundError, match=mismatch) as error:
        data.mnist()
    message = str(error.value)
    assert "f" * 64 in message and hashes[TRAIN[0]] in message
    assert "the download was not kept" in message and "delete it" not in message  # there is no file to delete
    assert "Looked in" in message  # and where to put the files
    assert listing(sandbox / "xdg") == ["mnist", "scratchnet"]  # only the folders: no file, no .part


def test_only_a_network_failure_or_a_checksum_mismatch_moves_on_to_the_next_mirror(tmp_path):
    """A malformed URL or a fault in the check is a bug to see at once, not a mirror to pass over."""
    source = tmp_path / "f.bin"
    source.write_bytes(b"data")

    def faulty(path):
        raise ValueError("a bug in the check")

    with pytest.raises(ValueError, match="unknown url type"):
        download(["typo/f.bin", source.as_uri()], tmp_path / "out.bin", lambda path: None)  # no scheme
    with pytest.raises(ValueError, match="a bug in the check"):
        download([source.as_uri(), source.as_uri()], tmp_path / "out.bin", faulty)
    assert download([(tmp_path / "missing").as_uri(), source.as_uri()], tmp_path / "out.bin",
                    lambda path: None).read_bytes() == b"data"


def test_a_mirror_with_wrong_bytes_is_passed_over_for_the_next(sandbox, monkeypatch):
    """A mirror answering with an error page stopped the download: the next mirror was never tried."""
    hashes = make_idx_set(sandbox / "mirror")
    trust(monkeypatch, hashes)
    (sandbox / "wrong").mkdir()
    for name in TRAIN + TEST:
        (sandbox / "wrong" / f"{name}.gz").write_bytes(gzip.compress(b"<html>not found</html>"))
    patched = dataclasses.replace(mnist_family.MNIST, mirrors=tuple(
        folder.as_uri() + "/" for folder in (sandbox / "wrong", sandbox / "mirror")))
    monkeypatch.setattr(mnist_family, "MNIST", patched)
    train, test = data.mnist()
    assert (len(train), len(test)) == (6, 5)


# ---------------------------------------------------------------- CIFAR-10

def make_batches(folder: Path, n=4) -> dict:
    """Six pickled batches of n images; pixels encode (batch, image, position) so order can be checked."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {}
    for b, name in enumerate((*cifar.TRAIN_BATCHES, cifar.TEST_BATCH)):
        pixels = (np.arange(n * 3072).reshape(n, 3072) * 7 + b * 31) % 256
        batch = {b"batch_label": name.encode(), b"data": pixels.astype(np.uint8),
                 b"labels": [(b + i) % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
        contents[name] = batch
    return contents


@pytest.mark.parametrize("layout", ["root", "root/cifar-10-batches-py", "env"])
def test_cifar10_from_generated_batches(sandbox, layout):
    base = sandbox / "env" / "cifar10" if layout == "env" else sandbox / "root"
    contents = make_batches(base / cifar.FOLDER if layout.endswith("py") else base)
    train, test = data.cifar10() if layout == "env" else data.cifar10(root=sandbox / "root")
    assert train.x.shape == (20, 3, 32, 32) and test.x.shape == (4, 3, 32, 32) and train.x.dtype == np.float32
    expected_y = np.concatenate([contents[name][b"labels"] for name in cifar.TRAIN_BATCHES])
    assert train.y.dtype == np.int64 and train.y.tolist() == expected_y.tolist()
    first = contents["data_batch_2"][b"data"][1]  # image 1 of batch 2 is training example 5
    assert train.x[5, 1, 2, 3] == np.float32(first[1024 + 2 * 32 + 3]) / 255  # green plane, row 2, column 3
    expected = contents["test_batch"][b"data"].reshape(4, 3, 32, 32) / np.float32(255)
    np.testing.assert_array_equal(test.x, expected)


@pytest.mark.parametrize("change, message", [
    (lambda b: b"not a pickle at all", "not a readable CIFAR-10 pickle"),
    (lambda b: pickle.dumps([1, 2]), "should hold a dict"),
    (lambda b: pickle.dumps({b"data": b[b"data"]}), r"lacks the key\(s\) \[b'labels'\]"),
    (lambda b: pickle.dumps({**b, b"data": b[b"data"].astype(np.float32)}), "must be a uint8 array"),
    (lambda b: pickle.dumps({**b, b"data": b[b"data"][:, :100]}), r"got uint8 \(4, 100\)"),
    (lambda b: pickle.dumps({**b, b"labels": [0, 1, 2]}), "must be 4 integers"),
    (lambda b: pickle.dumps({**b, b"labels": [0, 1, 2, 10]}), r"must lie in 0..9, got 0..10"),
])
def test_bad_cifar10_pickles_are_refused_naming_the_file(tmp_path, change, message):
    batch = make_batches(tmp_path)["data_batch_3"]
    (tmp_path / "data_batch_3").write_bytes(change(batch))
    with pytest.raises(ValueError, match=message) as error:
        data.cifar10(root=tmp_path)
    assert str(tmp_path / "data_batch_3") in str(error.value)


def make_archive(sandbox: Path) -> tuple[Path, dict]:
    contents = make_batches(sandbox / "src" / cifar.FOLDER)
    archive = sandbox / "mirror" / cifar.ARCHIVE
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(sandbox / "src" / cifar.FOLDER, arcname=cifar.FOLDER)
        hostile = tarfile.TarInfo("../escaped")  # a path traversal the extraction must ignore
        hostile.size = 5
        tar.addfile(hostile, io.BytesIO(b"owned"))
    return archive, contents


def test_cifar10_download_is_verified_and_unpacked_safely(sandbox, monkeypatch):
    archive, contents = make_archive(sandbox)
    monkeypatch.setattr(cifar, "URLS", (archive.as_uri(),))
    monkeypatch.setattr(cifar, "ARCHIVE_SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    train, test = data.cifar10()
    assert len(train) == 20 and test.y.tolist() == contents["test_batch"][b"labels"]
    cache = sandbox / "xdg" / "scratchnet" / "cifar10"
    assert listing(cache) == sorted([cifar.FOLDER, *cifar.TRAIN_BATCHES, cifar.TEST_BATCH])  # archive removed
    assert not any(p.name == "escaped" for p in sandbox.rglob("*"))


def test_a_corrupt_cifar10_download_is_refused_and_missing_data_explained(sandbox, monkeypatch):
    archive, _ = make_archive(sandbox)
    with pytest.raises(data.DatasetNotFoundError, match="cifar-10-python.tar.gz") as error:
        data.cifar10()
    assert str(sandbox / "env" / "cifar10") in str(error.value) and "downloading failed" in str(error.value)
    monkeypatch.setattr(cifar, "URLS", (archive.as_uri(),))
    with pytest.raises(data.DatasetNotFoundError, match=f"expected sha256 {cifar.ARCHIVE_SHA256}, got "):
        data.cifar10()
    assert listing(sandbox / "xdg") == ["cifar10", "scratchnet"]
