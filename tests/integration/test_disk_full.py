"""A full disk: one clear message and exit code, nothing half-written, no file blamed for it.

On a real, small file system (a 2 MiB tmpfs; tests run as root, and are
skipped when mounting is not permitted) and with an injected
``OSError(ENOSPC)``:

- ingest stops at the first file that finds the disk full, with
  :class:`~audiosim.store.errors.DiskFullError`, and records that file
  nowhere (it is not the file's fault), leaving no temporary file;
- ``audiosim catalog`` on a full disk prints ``disk full: <where>`` and exits
  with 4, without a traceback;
- building an Annoy shard that does not fit raises ``DiskFullError``
  instead of dying of SIGBUS, and leaves no temporary file.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from audiosim.ingest.ingest import ingest_many
from audiosim.store.catalog import Catalog
from audiosim.store.content import FeatureStore
from audiosim.store.errors import DiskFullError
from audiosim.store.home import DataHome

pytestmark = pytest.mark.slow

DISK_SIZE = "2m"


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs mounted in ``tmp_path``; skipped where mounting is not permitted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` with a file, then give back ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1 << 9):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def catalogued(home: DataHome) -> list[str]:
    with Catalog(home.catalog_path) as cat:
        return [f"{Path(t.path).name}:{t.status}" for t in cat.iter_tracks()]


@pytest.mark.parametrize("leave", [0, 48 * 1024], ids=["no-byte-free", "some-bytes-free"])
def test_ingest_on_a_full_disk_stops_and_records_no_file_as_bad(small_disk, make_wav, leave):
    home = DataHome(small_disk / "home")
    first, *rest = [make_wav(f"{n}.wav", seconds=20.0, freq=f) for n, f in (("a", 330), ("b", 440), ("c", 550))]
    assert [r.status for r in ingest_many([first], home)] == ["added"]
    filler = fill(small_disk, leave)
    with pytest.raises(DiskFullError, match="disk full: "):
        ingest_many(rest, home)
    assert temp_files(small_disk) == []
    filler.unlink()  # (reading the catalogue on a full disk is a DiskFullError too)
    assert catalogued(home) == ["a.wav:ok"]


def test_an_injected_enospc_stops_the_ingest_and_records_no_file_as_bad(home, make_wav, monkeypatch):
    files = [make_wav("a.wav", freq=330), make_wav("b.wav", freq=440)]

    def no_space(self, content_hash, logmel):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FeatureStore, "put", no_space)
    with pytest.raises(DiskFullError, match=f"disk full: {home.root}"):
        ingest_many(files, home)
    assert catalogued(home) == []


def test_the_ingest_flow_stops_on_a_full_disk_without_retrying(prefect_harness, home, make_wav, monkeypatch):
    from flows.ingest import ingest_flow

    files = [make_wav("a.wav", freq=330), make_wav("b.wav", freq=440)]
    calls = []

    def no_space(self, content_hash, logmel):
        calls.append(content_hash)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FeatureStore, "put", no_space)
    with pytest.raises(DiskFullError):
        ingest_flow(files, home=home.root)
    assert catalogued(home) == []
    assert len(calls) == 1  # not retried: another attempt would find the disk as full


def test_catalog_on_a_full_disk_says_disk_full_and_exits_4(small_disk, make_wav):
    home = DataHome(small_disk / "home")
    ingest_many([make_wav("a.wav")], home)
    fill(small_disk)
    done = subprocess.run([sys.executable, "-m", "audiosim.cli.main", "catalog", "--home", str(home.root)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 4, done.stderr
    assert f"audiosim catalog: disk full: {home.catalog_path}" in done.stderr
    assert "Traceback" not in done.stderr


BUILD_SHARD = textwrap.dedent("""
    import sys
    import numpy as np
    from pathlib import Path
    from audiosim.config import IndexConfig
    from audiosim.index.half_hops import pack
    from audiosim.index.writer import _shard_writer
    from audiosim.store.errors import DiskFullError

    folder = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    try:
        with _shard_writer(folder, "shard-0001", 96, IndexConfig()) as writer:
            for track in range(400):  # about 8 MB of items, on a 2 MiB disk
                vectors = rng.standard_normal((50, 96)).astype(np.float32)
                writer.add(track, f"{track:064x}", vectors, np.arange(50, dtype=np.float32), 20.0, pack(vectors))
            writer.build()
    except DiskFullError as e:
        print(e)
        sys.exit(4)
""")


def test_an_index_shard_that_does_not_fit_is_a_disk_full_error_not_sigbus(small_disk):
    folder = small_disk / "index"
    folder.mkdir()
    done = subprocess.run([sys.executable, "-c", BUILD_SHARD, str(folder)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 4, (done.returncode, done.stderr)  # SIGBUS would be -7
    assert done.stdout.startswith(f"disk full: {folder}")
    assert list(folder.iterdir()) == []  # the temporary forest is gone
