"""The one atomic writer: temp file, fsync, rename; dead writers' leftovers cleaned."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from audiosim.store.atomic import (
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    clean_temp_files,
)
from audiosim.store.errors import DiskFullError


def temp_files(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    umask = os.umask(0o022)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": [1, 2], "b": 1}
    assert temp_files(tmp_path) == []


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write(b"half")
            raise RuntimeError("crash")
    assert p.read_bytes() == b"old"
    assert temp_files(tmp_path) == []


def test_atomic_path_renames_a_file_written_by_name(tmp_path):
    p = tmp_path / "sub" / "index.ann"
    with atomic_path(p) as tmp:
        assert tmp.parent == p.parent and tmp.name.startswith(".index.ann.") and not p.exists()
        tmp.write_bytes(b"built")
    assert p.read_bytes() == b"built"
    umask = os.umask(0o022)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert p.read_bytes() == b"built"
    assert temp_files(tmp_path) == []


@pytest.mark.slow
def test_clean_temp_removes_dead_writers_only(tmp_path):
    # A writer killed mid-write leaves its temp file; ours (alive) is kept.
    code = (
        "import os, sys; from audiosim.store.atomic import atomic_open\n"
        "cm = atomic_open(sys.argv[1]); f = cm.__enter__(); f.write(b'x'); f.flush(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "dead.npy")], check=True)
    live = atomic_open(tmp_path / "live.npy")
    live.__enter__()
    assert len(temp_files(tmp_path)) == 2
    assert clean_temp_files(tmp_path) == 1
    [left] = temp_files(tmp_path)
    assert left.name.startswith(".live.npy.")
    live.__exit__(None, None, None)
    assert temp_files(tmp_path) == [] and (tmp_path / "live.npy").exists()


def test_a_full_disk_while_writing_is_a_disk_full_error_and_leaves_nothing(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"old")
    with pytest.raises(DiskFullError, match=f"disk full: {p}"):
        with atomic_open(p) as f:
            f.write(b"new")
            raise OSError(28, "No space left on device")  # errno ENOSPC, as write() raises it
    assert p.read_bytes() == b"old" and temp_files(tmp_path) == []


def test_a_library_that_reports_a_full_disk_in_words_gets_a_disk_full_error(tmp_path):
    p = tmp_path / "songs.ann"
    with pytest.raises(DiskFullError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise OSError("Unable to write: No space left on device")  # Annoy's save, no errno
    assert not p.exists() and temp_files(tmp_path) == []
