"""The catalogue: one SQLite row per track, safe for several writers.

The database runs in WAL mode with a busy timeout, so several processes (or
threads, each with its own :class:`Catalog`) can ingest into the same data
home; every change is one short ``BEGIN IMMEDIATE`` transaction.

A row is either ``ok`` (decoded, features stored under ``content_hash``) or
``failed`` (with a short ``reason`` such as ``not-audio`` or ``too-short``
and a human ``detail``). Paths are stored absolute.

A full disk (SQLite's ``database or disk is full``, or the ``disk I/O
error`` of a WAL file that cannot grow) raises
:class:`~audiosim.store.errors.DiskFullError` naming the catalogue, from
opening as from any read or write; the transaction in progress is rolled
back, so nothing half-written is kept.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pandas as pd

from audiosim.store.errors import disk_full_as

SCHEMA_VERSION = 1
# pandas 3 has a real string dtype behind "str"; in pandas 2 "str" means object
# and turns None into "None", so use the nullable "string" dtype there.
_STR = "str" if int(pd.__version__.split(".")[0]) >= 3 else "string"
STATUSES = ("ok", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    content_hash TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    title TEXT,
    artist TEXT,
    album TEXT,
    duration REAL,
    sample_rate INTEGER,
    channels INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason TEXT,
    detail TEXT,
    added_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tracks_content_hash ON tracks (content_hash);
CREATE INDEX IF NOT EXISTS tracks_status ON tracks (status);
"""


@dataclass(frozen=True)
class Track:
    """One catalogue row."""

    id: int
    path: str
    content_hash: str | None
    size: int | None
    mtime_ns: int | None
    title: str | None
    artist: str | None
    album: str | None
    duration: float | None
    sample_rate: int | None
    channels: int | None
    status: str
    reason: str | None
    detail: str | None
    added_at: str
    updated_at: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


COLUMNS = tuple(f.name for f in fields(Track))


F = TypeVar("F", bound=Callable[..., Any])


def _disk_full_is_typed(method: F) -> F:
    """Run a :class:`Catalog` method with a full disk raised as ``DiskFullError(catalogue path)``."""

    @functools.wraps(method)
    def wrapper(self: "Catalog", *args: Any, **kwargs: Any) -> Any:
        with disk_full_as(self.path):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def normalise_path(path: str | Path) -> str:
    """The absolute, normalised path string used as a catalogue key (symlinks kept)."""
    return os.path.abspath(os.fspath(path))


class Catalog:
    """The track catalogue of a data home (``catalog.sqlite``).

    Use as a context manager, one instance per thread::

        with Catalog(home.catalog_path) as cat:
            track = cat.get_by_path("song.ogg")

    Parameters
    ----------
    path : str or Path
        The SQLite file; created (with its folder) unless ``create=False``.
    timeout : float
        Seconds to wait for another writer's lock before failing with
        ``sqlite3.OperationalError: database is locked``.
    create : bool
        If False, a missing file raises :class:`FileNotFoundError` instead
        of being created.

    Raises
    ------
    DiskFullError
        If the disk is full (here or from any method).
    """

    def __init__(self, path: str | Path, timeout: float = 60.0, create: bool = True):
        self.path = Path(path)
        self._conn = None
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(f"no catalogue at {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with disk_full_as(self.path):
                self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
                self._conn.row_factory = sqlite3.Row
                self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                if self._conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ----------------------------------------------------------

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: catalogue schema version {version} is newer than this audiosim ({SCHEMA_VERSION})"
            )
        with self.transaction():
            if self._conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    self._conn.execute(stmt)
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Catalog"]:
        """A write transaction (``BEGIN IMMEDIATE``): all or nothing.

        Nested use joins the outer transaction.
        """
        if self._conn.in_transaction:
            yield self
            return
        with disk_full_as(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
            with disk_full_as(self.path):
                self._conn.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk at COMMIT can do that).
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise

    # -- reading ------------------------------------------------------------

    @staticmethod
    def _track(row: sqlite3.Row | None) -> Track | None:
        return None if row is None else Track(**{k: row[k] for k in COLUMNS})

    @_disk_full_is_typed
    def get(self, track_id: int) -> Track | None:
        """The track with id ``track_id``, or None."""
        return self._track(self._conn.execute("SELECT * FROM tracks WHERE id = ?", (int(track_id),)).fetchone())

    @_disk_full_is_typed
    def get_by_path(self, path: str | Path) -> Track | None:
        """The track stored for ``path`` (made absolute), or None."""
        return self._track(
            self._conn.execute("SELECT * FROM tracks WHERE path = ?", (normalise_path(path),)).fetchone()
        )

    @_disk_full_is_typed
    def find_by_hash(self, content_hash: str, status: str | None = "ok") -> list[Track]:
        """Tracks whose file content has hash ``content_hash`` (``status`` None: any)."""
        sql, args = "SELECT * FROM tracks WHERE content_hash = ?", [content_hash]
        if status is not None:
            sql, args = sql + " AND status = ?", args + [status]
        return [self._track(r) for r in self._conn.execute(sql + " ORDER BY id", args)]  # type: ignore[misc]

    @_disk_full_is_typed
    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]

    @_disk_full_is_typed
    def counts(self) -> dict[str, int]:
        """Number of tracks per status, e.g. ``{"ok": 10, "failed": 2}``."""
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self._conn.execute("SELECT status, COUNT(*) FROM tracks GROUP BY status"):
            out[status] = n
        return out

    def iter_tracks(self, status: str | None = None) -> Iterator[Track]:
        """Iterate over tracks in id order, optionally of one status."""
        _check_status(status)
        with disk_full_as(self.path):
            if status is None:
                cur = self._conn.execute("SELECT * FROM tracks ORDER BY id")
            else:
                cur = self._conn.execute("SELECT * FROM tracks WHERE status = ? ORDER BY id", (status,))
            for row in cur:
                yield self._track(row)  # type: ignore[misc]

    @_disk_full_is_typed
    def tracks(self, status: str | None = None) -> pd.DataFrame:
        """All tracks (or those of one status) as a DataFrame indexed by ``id``.

        Parameters
        ----------
        status : {"ok", "failed"}, optional

        Returns
        -------
        pandas.DataFrame
            Columns as :class:`Track` (``id`` as the index); text columns have
            the ``str`` dtype, integer columns allowing missing values are
            nullable ``Int64``, ``added_at``/``updated_at`` are UTC timestamps.
        """
        _check_status(status)
        sql = "SELECT * FROM tracks" + (" WHERE status = ?" if status else "") + " ORDER BY id"
        df = pd.read_sql_query(sql, self._conn, params=(status,) if status else None)
        return _typed(df)

    # -- writing ------------------------------------------------------------

    def upsert_ok(
        self,
        path: str | Path,
        *,
        content_hash: str,
        size: int,
        mtime_ns: int,
        duration: float,
        sample_rate: int,
        channels: int,
        title: str | None = None,
        artist: str | None = None,
        album: str | None = None,
        detail: str | None = None,
    ) -> tuple[int, bool]:
        """Insert or update the ``ok`` row of ``path``.

        A missing ``title`` defaults to the file name without extension;
        ``detail`` is a warning about a usable file (one cut short but mostly there).

        Returns
        -------
        (int, bool)
            The track id and whether a new row was inserted.
        """
        return self._upsert(
            path,
            dict(
                content_hash=content_hash, size=size, mtime_ns=mtime_ns,
                title=title or Path(normalise_path(path)).stem, artist=artist,
                album=album, duration=duration, sample_rate=sample_rate, channels=channels,
                status="ok", reason=None, detail=detail,
            ),
        )

    def upsert_failed(
        self,
        path: str | Path,
        *,
        reason: str,
        detail: str | None = None,
        content_hash: str | None = None,
        size: int | None = None,
        mtime_ns: int | None = None,
    ) -> tuple[int, bool]:
        """Insert or update ``path`` as ``failed`` with a reason (retried next ingest).

        Tags and audio properties of a previously ``ok`` row are kept; the
        content hash, size and mtime are replaced by the ones given.

        Returns
        -------
        (int, bool)
            The track id and whether a new row was inserted.
        """
        return self._upsert(
            path,
            dict(
                content_hash=content_hash, size=size, mtime_ns=mtime_ns,
                status="failed", reason=reason, detail=detail,
            ),
        )

    @_disk_full_is_typed
    def _upsert(self, path: str | Path, values: dict[str, Any]) -> tuple[int, bool]:
        key = normalise_path(path)
        now = _now()
        with self.transaction():
            row = self._conn.execute("SELECT id FROM tracks WHERE path = ?", (key,)).fetchone()
            if row is None:
                values = {**values, "title": values.get("title") or Path(key).stem}
                cols = ["path", *values, "added_at", "updated_at"]
                cur = self._conn.execute(
                    f"INSERT INTO tracks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [key, *values.values(), now, now],
                )
                return int(cur.lastrowid), True  # type: ignore[arg-type]
            sets = ", ".join(f"{k} = ?" for k in values)
            self._conn.execute(
                f"UPDATE tracks SET {sets}, updated_at = ? WHERE id = ?", [*values.values(), now, row[0]]
            )
            return int(row[0]), False

    @_disk_full_is_typed
    def move(self, track_id: int, new_path: str | Path, *, size: int, mtime_ns: int) -> None:
        """Point an existing track at the path its file was moved or renamed to.

        Raises
        ------
        KeyError
            If there is no track ``track_id``.
        sqlite3.IntegrityError
            If another track already has ``new_path``.
        """
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE tracks SET path = ?, size = ?, mtime_ns = ?, updated_at = ? WHERE id = ?",
                (normalise_path(new_path), size, mtime_ns, _now(), int(track_id)),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no track {track_id} in {self.path}")

    @_disk_full_is_typed
    def touch(self, track_id: int, *, size: int, mtime_ns: int) -> None:
        """Record a new size/mtime for a track whose content did not change."""
        with self.transaction():
            self._conn.execute(
                "UPDATE tracks SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, int(track_id))
            )

    @_disk_full_is_typed
    def remove(self, track_id: int) -> bool:
        """Delete a track; True if it existed."""
        with self.transaction():
            return self._conn.execute("DELETE FROM tracks WHERE id = ?", (int(track_id),)).rowcount > 0

    @_disk_full_is_typed
    def mark_missing(self, tracks: list[Track], detail: str) -> list[Track]:
        """Mark tracks whose file is gone as ``failed`` with reason ``missing``.

        The row (id, content hash, tags) is kept, so the track is no longer
        ``ok`` (the index tombstones it) but its history is; if the file
        comes back, the next ingest makes it ``ok`` again. A track whose
        path changed since ``tracks`` were read (moved by another ingest)
        is left alone.

        Returns
        -------
        list of Track
            The rows marked.
        """
        marked = []
        now = _now()
        with self.transaction():
            for t in tracks:
                cur = self._conn.execute(
                    "UPDATE tracks SET status = 'failed', reason = 'missing', detail = ?, updated_at = ? "
                    "WHERE id = ? AND path = ?", (detail, now, int(t.id), t.path),
                )
                if cur.rowcount:
                    marked.append(t)
        return marked

    @_disk_full_is_typed
    def remove_missing(self) -> list[Track]:
        """Delete the tracks whose file no longer exists.

        Returns
        -------
        list of Track
            The rows removed.
        """
        gone = [t for t in self.iter_tracks() if not os.path.exists(t.path)]
        with self.transaction():
            for t in gone:
                self._conn.execute("DELETE FROM tracks WHERE id = ? AND path = ?", (t.id, t.path))
        return gone


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES} or None, not {status!r}")


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    df = df.astype(
        {
            "id": "int64",
            "size": "Int64",
            "mtime_ns": "Int64",
            "sample_rate": "Int64",
            "channels": "Int64",
            "duration": "float64",
            **{c: _STR for c in ("path", "content_hash", "title", "artist", "album", "status", "reason", "detail")},
        }
    )
    for c in ("added_at", "updated_at"):
        df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
    return df.set_index("id")
