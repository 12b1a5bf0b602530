"""The one way audiosim writes a file: temp file, fsync, rename.

Every file is written to a temporary file in the same folder, flushed to
disk and renamed over the destination, so a reader never sees half a file
and a killed writer leaves at most a temporary file, named after the writer's
host and process (:func:`temp_prefix`), that :func:`clean_temp_files`
removes once that writer is gone. A write that finds the disk full removes
its temporary file and raises :class:`~audiosim.store.errors.DiskFullError`
naming the destination (whatever the writing library raised).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from audiosim.store.errors import disk_full_as

TEMP_SUFFIX = ".tmp"
_HOST = socket.gethostname().replace(".", "_") or "host"
# mkstemp creates 0600 files; finished files get the usual 0666 & ~umask.
# (Read once at import: os.umask can only be read by setting it.)
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def temp_prefix(path: Path) -> str:
    """Name prefix of the temporary files written before ``path`` is renamed into place."""
    # ".<name>.<host>-<pid>." lets clean_temp tell a dead writer's leftovers
    # from a live writer's file in progress.
    return f".{path.name}.{_HOST}-{os.getpid()}."


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk, so a rename inside it survives a crash (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the block succeeds.

    The temporary file is created beside ``path`` (same file system, so the
    final :func:`os.replace` is atomic), flushed and fsynced before the
    rename. If the block raises, the temporary file is removed and ``path``
    is left untouched.

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.
    mode : {"wb", "w"}
        Binary or text.
    encoding : str, optional
        Text encoding for ``mode="w"`` (UTF-8 by default).

    Yields
    ------
    file object
        Write to it; do not close it yourself.

    Raises
    ------
    DiskFullError
        If the disk fills (the temporary file is removed).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports modes 'wb' and 'w', not {mode!r}")
    path = Path(path)
    with disk_full_as(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, mode, encoding=(encoding or "utf-8") if mode == "w" else None) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path that replaces ``path`` when the block succeeds.

    For writers that need a file name rather than a file object (Annoy's
    ``save``, ``numpy.save`` of a library that opens the file itself). The
    temporary file is created beside ``path``; on success it gets the usual
    permissions (:data:`FILE_MODE`), is fsynced and renamed over ``path``,
    and the folder is fsynced. If the block raises, it is removed and
    ``path`` is left untouched.

    Yields
    ------
    Path
        Write the finished file there; do not rename it yourself.

    Raises
    ------
    DiskFullError
        If the disk fills, whatever error the writing library raised for
        it (the temporary file is removed).
    """
    path = Path(path)
    with disk_full_as(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, FILE_MODE)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename).

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.
    data : bytes
    """
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically; see :func:`atomic_write_bytes`."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """Save ``array`` in ``.npy`` format to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def create_exclusive(path: Path, data: bytes) -> bool:
    """Atomically create ``path`` with ``data`` unless it exists; True if created."""
    with disk_full_as(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # fails if path exists: no race between writers
            except FileExistsError:
                return False
            fsync_dir(path.parent)
            return True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def clean_temp_files(folder: str | Path, max_age_seconds: float = 24 * 3600.0) -> int:
    """Remove temporary files left in ``folder`` (recursively) by killed writers.

    A temporary file is removed when the process that made it (same host)
    is gone, or when it is older than ``max_age_seconds`` whoever made it.
    Files of live writers are kept.

    Returns
    -------
    int
        Number of files removed.
    """
    removed = 0
    now = time.time()
    for root, dirs, files in os.walk(folder):
        for name in files:
            if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
                continue
            p = Path(root) / name
            if _writer_is_gone(name) or _age(p, now) > max_age_seconds:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed += 1
    return removed


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _writer_is_gone(name: str) -> bool:
    # name: ".<dest>.<host>-<pid>.<random>.tmp"
    parts = name[: -len(TEMP_SUFFIX)].split(".")
    if len(parts) < 4:
        return False
    host, _, pid = parts[-2].rpartition("-")
    if host != _HOST or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


