"""A full disk is one typed error, whatever disguise the writing library gave it."""

from __future__ import annotations

import errno
import pickle
import sqlite3

import pytest

from audiosim.store import errors
from audiosim.store.errors import (
    DiskFullError,
    disk_full_as,
    ensure_free_space,
    is_disk_full,
)


@pytest.fixture
def low_space(monkeypatch):
    """Pretend that the disk has 4 KiB free."""
    monkeypatch.setattr(errors, "free_bytes", lambda path: 4096)


def test_enospc_and_sqlite_full_are_a_full_disk_anywhere(tmp_path):
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert is_disk_full(OSError("Unable to write: No space left on device"))  # Annoy's save
    assert is_disk_full(DiskFullError(tmp_path))


def test_ambiguous_errors_are_a_full_disk_only_when_space_is_low(tmp_path, monkeypatch):
    short_write = OSError("851712 requested and 417728 written")  # numpy, no errno
    io_error = sqlite3.OperationalError("disk I/O error")
    assert not is_disk_full(short_write, tmp_path) and not is_disk_full(io_error, tmp_path)
    monkeypatch.setattr(errors, "free_bytes", lambda path: 4096)
    assert is_disk_full(short_write, tmp_path) and is_disk_full(io_error, tmp_path)
    assert not is_disk_full(short_write)  # without a place, no guessing


def test_other_errors_are_not_a_full_disk(tmp_path, low_space):
    assert not is_disk_full(FileNotFoundError(errno.ENOENT, "no such file"), tmp_path)
    assert not is_disk_full(PermissionError(errno.EACCES, "denied"), tmp_path)
    assert not is_disk_full(sqlite3.OperationalError("database is locked"), tmp_path)
    assert not is_disk_full(ValueError("bad"), tmp_path)


def test_disk_full_as_names_the_place_and_keeps_the_cause(tmp_path):
    with pytest.raises(DiskFullError) as info:
        with disk_full_as(tmp_path / "catalog.sqlite"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(info.value) == f"disk full: {tmp_path / 'catalog.sqlite'} (No space left on device)"
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(FileNotFoundError):
        with disk_full_as(tmp_path):
            raise FileNotFoundError(errno.ENOENT, "gone")


def test_disk_full_error_is_not_an_oserror_and_crosses_processes(tmp_path):
    e = DiskFullError(tmp_path / "features", "No space left on device")
    assert not isinstance(e, OSError)  # `except OSError` for unreadable files must not swallow it
    copy = pickle.loads(pickle.dumps(e))  # from Dask workers
    assert str(copy) == str(e) and copy.path == str(tmp_path / "features")


def test_ensure_free_space_refuses_a_write_that_does_not_fit(tmp_path, low_space):
    with pytest.raises(DiskFullError, match="the shard needs about 10.0 MiB"):
        ensure_free_space(tmp_path, 10 << 20, "the shard")


def test_ensure_free_space_lets_a_write_that_fits(tmp_path):
    ensure_free_space(tmp_path / "not" / "yet", 1024)  # the nearest existing folder counts
