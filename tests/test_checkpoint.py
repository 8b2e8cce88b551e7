"""Checkpoint files: round trip, atomic writes, and refusal of corrupted or foreign files."""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.checkpoint import load_arrays, save_arrays


def test_save_and_load_a_model_round_trip(tmp_path):
    model = nn.models.mnist_cnn(seed=0, dropout=0.1)
    path = sn.save(model, tmp_path / "model.npz")
    other = sn.load(path, nn.models.mnist_cnn(seed=1, dropout=0.1))
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert set(sn.load(path)) == set(model.state_dict())


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = save_arrays({"a": np.arange(3)}, tmp_path / "c.npz")
    with pytest.raises(ValueError, match="object dtype"):
        save_arrays({"a": np.array([object()])}, path)

    def crash(member, a, **options):
        member.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(OSError, match="disk full"):
        save_arrays({"a": np.arange(5)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(load_arrays(path)["a"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_a_changed_byte_is_detected(tmp_path):
    path = save_arrays({"w": np.zeros(1000, np.float32)}, tmp_path / "c.npz")
    raw = bytearray(path.read_bytes())
    at = raw.find(b"\x00" * 400) + 200  # inside the stored zeros (np.savez does not compress)
    raw[at] = 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted|not a readable"):
        load_arrays(path)


def test_an_array_changed_in_a_well_formed_file_fails_the_checksum(tmp_path):
    """A file rewritten whole (zip CRCs intact: the change only the SHA-256 can see) is refused as corrupted."""
    path = save_arrays({"w": np.zeros(10), "b": np.ones(2)}, tmp_path / "c.npz")
    with np.load(path) as f:
        stored = {name: f[name] for name in f.files}
    stored["w"][3] = 1e-300
    np.savez(path, **stored)
    with pytest.raises(ValueError, match="is corrupted: checksum"):
        load_arrays(path)
    stored["w"] = np.zeros((2, 5))  # the same bytes under another shape
    np.savez(path, **stored)
    with pytest.raises(ValueError, match="is corrupted: checksum"):
        load_arrays(path)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = save_arrays({"w": np.ones(100)}, tmp_path / "c.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable"):
        load_arrays(path)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, w=np.ones(3))
    with pytest.raises(ValueError, match="not written by scratchnet"):
        load_arrays(foreign)
    with pytest.raises(FileNotFoundError):
        load_arrays(tmp_path / "missing.npz")


def test_any_array_name_round_trips(tmp_path):
    """np.savez takes the names as keyword arguments: "allow_pickle" was taken for its flag (the file written, then
    refused as corrupted) and "file" was a TypeError."""
    arrays = {"file": np.arange(3), "allow_pickle": np.ones(2), "model/w": np.zeros((2, 2), np.float32)}
    loaded = load_arrays(save_arrays(arrays, tmp_path / "names.npz"))
    assert set(loaded) == set(arrays)
    for name, a in arrays.items():
        np.testing.assert_array_equal(loaded[name], a)
        assert loaded[name].dtype == a.dtype
    assert set(np.load(tmp_path / "names.npz").files) == set(arrays) | {"__format__", "__checksum__"}  # still .npz
