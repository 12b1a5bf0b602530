"""The SQLite catalogue."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from audiosim.store.catalog import COLUMNS, Catalog
from audiosim.store.errors import DiskFullError

OK = dict(content_hash="ab" * 32, size=10, mtime_ns=1, duration=3.0, sample_rate=8000, channels=1)


def test_wal_and_schema(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert len(cat) == 0
    with sqlite3.connect(tmp_path / "c.sqlite") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer"):
        Catalog(tmp_path / "c.sqlite")


def test_missing_catalogue_not_created_when_asked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no catalogue"):
        Catalog(tmp_path / "c.sqlite", create=False)
    assert not (tmp_path / "c.sqlite").exists()


def test_upsert_keeps_one_row_per_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Catalog(tmp_path / "c.sqlite") as cat:
        tid, new = cat.upsert_ok("a/song.wav", **OK, artist="Me")
        assert new
        t = cat.get(tid)
        assert t.path == str(tmp_path / "a" / "song.wav")  # stored absolute
        assert t.title == "song" and t.artist == "Me" and t.ok
        assert cat.get_by_path(tmp_path / "a" / "./song.wav").id == tid
        tid2, new = cat.upsert_failed("a/song.wav", reason="not-audio", detail="bad")
        assert (tid2, new) == (tid, False)
        t2 = cat.get(tid)
        assert (t2.status, t2.reason, t2.detail, t2.artist) == ("failed", "not-audio", "bad", "Me")
        assert t2.added_at == t.added_at and t2.updated_at >= t.updated_at
        tid3, new = cat.upsert_ok("a/song.wav", **OK)
        assert tid3 == tid and not new and cat.get(tid).reason is None
        assert len(cat) == 1 and cat.counts() == {"ok": 1, "failed": 0}
        assert cat.get(12345) is None and cat.get_by_path("nope.wav") is None


def test_transaction_is_all_or_nothing(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        with pytest.raises(RuntimeError):
            with cat.transaction():
                cat.upsert_ok(tmp_path / "a.wav", **OK)
                cat.upsert_ok(tmp_path / "b.wav", **OK)
                raise RuntimeError("crash")
        assert len(cat) == 0


def test_tracks_dataframe(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        empty = cat.tracks()
        assert empty.empty and list(empty.columns) == [c for c in COLUMNS if c != "id"]
        cat.upsert_ok(tmp_path / "a.wav", **OK, title="A")
        cat.upsert_failed(tmp_path / "b.wav", reason="silence", detail="RMS -90 dBFS")
        df = cat.tracks()
        assert list(df.index) == [1, 2] and df.index.name == "id"
        assert df["sample_rate"].dtype == "Int64" and pd.isna(df.loc[2, "sample_rate"])
        assert pd.api.types.is_string_dtype(df["path"]) and pd.isna(df.loc[1, "reason"])
        assert str(df["added_at"].dt.tz) == "UTC"
        failed = cat.tracks(status="failed")
        assert list(failed["reason"]) == ["silence"]
        with pytest.raises(ValueError, match="status"):
            cat.tracks(status="bogus")


def test_move_and_remove_missing(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    b.write_bytes(b"x")
    with Catalog(tmp_path / "c.sqlite") as cat:
        tid, _ = cat.upsert_ok(a, **OK)
        other, _ = cat.upsert_ok(tmp_path / "gone.wav", **OK)
        cat.move(tid, b, size=1, mtime_ns=2)
        assert cat.get(tid).path == str(b) and cat.get_by_path(a) is None
        assert [t.id for t in cat.find_by_hash(OK["content_hash"])] == [tid, other]
        with pytest.raises(sqlite3.IntegrityError):
            cat.move(other, b, size=1, mtime_ns=2)
        removed = cat.remove_missing()
        assert [t.id for t in removed] == [other] and len(cat) == 1


@pytest.mark.slow
def test_two_processes_write_at_once(tmp_path):
    db = tmp_path / "c.sqlite"
    Catalog(db).close()
    code = (
        "import sys\n"
        "from audiosim.store.catalog import Catalog\n"
        "with Catalog(sys.argv[1]) as cat:\n"
        "    for i in range(40):\n"
        "        cat.upsert_ok(f'/x/{sys.argv[2]}-{i}.wav', content_hash='ab'*32, size=i, mtime_ns=i,\n"
        "                      duration=1.0, sample_rate=8000, channels=1)\n"
        "        cat.upsert_failed(f'/x/{sys.argv[2]}-{i}.wav', reason='silence')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), tag]) for tag in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with Catalog(db) as cat:
        assert cat.counts() == {"ok": 0, "failed": 80}


class _FullDisk:
    """A connection whose writes fail as SQLite's do on a full disk."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, *args):
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "COMMIT")):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_full_disk_is_a_disk_full_error_and_rolls_back(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.upsert_failed("/music/a.wav", reason="not-audio")
        real = cat._conn
        cat._conn = _FullDisk(real)
        with pytest.raises(DiskFullError, match=f"disk full: {tmp_path / 'c.sqlite'}"):
            cat.upsert_failed("/music/b.wav", reason="not-audio")
        cat._conn = real
        assert not real.in_transaction
        assert [t.path for t in cat.iter_tracks()] == ["/music/a.wav"]
