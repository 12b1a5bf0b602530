"""A full disk, told apart from other errors and reported as one typed error.

A write that finds no space shows up in several disguises: ``OSError``
with ``errno`` ``ENOSPC`` (``write``, ``fsync``, ``rename``), an
``OSError`` without an errno from numpy (``"851712 requested and 417728
written"``) or Annoy (``"Unable to write: No space left on device"``), and
from SQLite ``database or disk is full`` or, when not even its shared-memory
file can grow, ``disk I/O error``. :func:`disk_full_as` turns every one of
them into :class:`DiskFullError` naming where the data was going, which the
command line prints as ``disk full: <where>`` with its own exit code and no
traceback. It is nobody's fault but the disk's: ingest does not record the
file being written as a bad file, and a batch stops (the next file would
fail the same way).

Where a library would not fail cleanly (Annoy's ``on_disk_build`` writes
through a memory map, and a memory map that cannot grow kills the process
with ``SIGBUS``), :func:`ensure_free_space` checks before writing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Iterator

LOW_SPACE_BYTES = 1 << 20
"""Below this many free bytes an ambiguous write error (numpy's short write,
SQLite's ``disk I/O error``) is taken for a full disk."""

_SQLITE_FULL = 13
_SQLITE_IOERR = 10


class DiskFullError(Exception):
    """The disk holding ``path`` is full; nothing half-written was kept.

    Not an :class:`OSError` on purpose: code that tolerates a missing or
    unreadable file (``except OSError``) must not swallow it.

    Parameters
    ----------
    path : str or Path
        Where the data was going (a file or folder of the data home).
    detail : str, optional
        The underlying error, for the curious.
    """

    def __init__(self, path: str | os.PathLike[str], detail: str | None = None):
        super().__init__(str(path), detail)
        self.path = str(path)
        self.detail = detail

    def __str__(self) -> str:
        return f"disk full: {self.path}" + (f" ({self.detail})" if self.detail else "")


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of ``path``
    (its nearest existing folder); None if that cannot be told."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


def is_disk_full(exc: BaseException, path: str | os.PathLike[str] | None = None) -> bool:
    """True if ``exc`` means that the disk (of ``path``, when given) is full.

    Unambiguous signs (``ENOSPC``, ``EDQUOT``, SQLite's ``SQLITE_FULL``, the
    text "No space left on device") suffice; errors that a full disk causes
    among others (a short write without errno, SQLite's ``disk I/O error``)
    count only when ``path``'s file system has less than
    :data:`LOW_SPACE_BYTES` free.
    """
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    if "no space left" in text or "disk is full" in text or "disk quota exceeded" in text:
        return True
    ambiguous = False
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF == _SQLITE_FULL:
            return True
        ambiguous = (code is not None and code & 0xFF == _SQLITE_IOERR) or "disk i/o error" in text
    elif isinstance(exc, OSError) and exc.errno is None:
        ambiguous = "requested and" in text and "written" in text  # numpy's short write
    if not ambiguous or path is None:
        return False
    free = free_bytes(path)
    return free is not None and free < LOW_SPACE_BYTES


@contextlib.contextmanager
def disk_full_as(path: str | os.PathLike[str]) -> Iterator[None]:
    """Raise :class:`DiskFullError` (``path``) for any error of the block that means a full disk.

    Other errors pass unchanged; so does a :class:`DiskFullError` raised
    inside (it already names its place).
    """
    try:
        yield
    except DiskFullError:
        raise
    except (OSError, sqlite3.Error) as e:
        if is_disk_full(e, path):
            raise DiskFullError(path, _detail(e)) from e
        raise


def ensure_free_space(path: str | os.PathLike[str], needed: int, what: str = "") -> None:
    """Raise :class:`DiskFullError` unless ``path``'s file system has ``needed`` bytes
    (plus :data:`LOW_SPACE_BYTES`) free.

    For writers that cannot fail cleanly when the disk fills (memory-mapped
    files). Best effort: another process may use the space meanwhile.
    """
    free = free_bytes(path)
    if free is not None and free < int(needed) + LOW_SPACE_BYTES:
        room = f"{what} needs about {_mib(needed)}, {_mib(free)} free" if what else f"{_mib(free)} free"
        raise DiskFullError(path, room)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _detail(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


__all__ = ["DiskFullError", "LOW_SPACE_BYTES", "disk_full_as", "ensure_free_space", "free_bytes", "is_disk_full"]
