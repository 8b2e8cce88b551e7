"""Backend selection (scratchnet/backend.py): precedence of a block, the process-wide choice and the environment,
blocks in two threads, and errors that name where a bad choice came from."""

import threading

import pytest

from scratchnet import backend


@pytest.fixture(autouse=True)
def restore_the_process_choice():
    saved = backend._default
    yield
    backend._default = saved


def test_a_block_beats_the_process_choice_which_beats_the_environment(monkeypatch):
    monkeypatch.setenv("SCRATCHNET_BACKEND", "numpy")
    backend._default = None
    assert backend.get_backend() == "numpy"
    backend.set_backend("numba")
    assert backend.get_backend() == "numba"
    with backend.use_backend("numpy"):
        assert backend.get_backend() == "numpy"
        with backend.use_backend("numba"):
            assert backend.get_backend() == "numba"
        assert backend.get_backend() == "numpy"
    assert backend.get_backend() == "numba"


def test_blocks_in_two_threads_never_restore_each_others_choice():
    """Thread A enters a numpy block, B a numba block, A leaves, then B: each saw its own choice throughout, and
    afterwards both see the process's (with one global, B's exit restored A's numpy for good)."""
    backend.set_backend("numba")
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with backend.use_backend("numpy"):
            a_in.set()
            b_in.wait(5)
            seen["a"] = backend.get_backend()
        seen["a after"] = backend.get_backend()
        a_out.set()

    def b():
        a_in.wait(5)
        with backend.use_backend("numba"):
            b_in.set()
            a_out.wait(5)
            seen["b"] = backend.get_backend()
        seen["b after"] = backend.get_backend()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"a": "numpy", "a after": "numba", "b": "numba", "b after": "numba"}
    assert backend.get_backend() == "numba"


def test_a_bad_environment_value_is_named():
    backend._default = None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCRATCHNET_BACKEND", "Numba")
        with pytest.raises(ValueError, match="environment variable SCRATCHNET_BACKEND='Numba': backend must be one"):
            backend.get_backend()
    with pytest.raises(ValueError, match="backend must be one of"):
        backend.set_backend("opencl")
