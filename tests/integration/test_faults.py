"""Fault injection: index writers killed (SIGKILL, real subprocesses) at named points.

The points: during embedding (after the first track), once the new forest
is built, after the shard files are renamed into place, and after the new
manifest's temporary file is written (before its rename); for a compaction
the same points from ``built`` on. After each kill, readers see the old
index, whole (its shards as listed, the same answers, no error); a re-run
takes the lock the dead writer held, removes what it left (temporary files,
unpublished shard files) and publishes an index that answers as one built
without the kill.

The writer is stopped at a point by its ``progress`` callback
(:data:`audiosim.index.writer.Progress` stages); the manifest's temporary
file has no stage of its own, so the child wraps :func:`os.replace` to stop
just before the manifest is renamed. No hook is needed in the library.
Concurrent readers during updates and compactions are tested in
``test_index_crashes.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from audiosim.index import manifest as M
from audiosim.index import reader as I
from audiosim.index import writer as IB
from audiosim.ingest.ingest import ingest_many
from audiosim.store.home import DataHome

ROOT = Path(__file__).resolve().parents[2]

from index_support import CFG, answers, clips_of, make_home, models, songs  # noqa: E402,F401 (fixtures)

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}

WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from audiosim.index import writer as IB
    from index_support import CFG
    home, model, action, point = sys.argv[1:5]

    def stop():
        print("READY", flush=True)
        time.sleep(600)

    def progress(stage, info):
        if stage == point and (stage != "embed" or info["done"] == 1):
            stop()

    if point == "manifest-temp":  # the new manifest is written and fsynced, not yet renamed
        real_replace = os.replace
        def replace(src, dst, *args, **kwargs):
            if Path(dst).name == "manifest.json":
                stop()
            return real_replace(src, dst, *args, **kwargs)
        os.replace = replace

    if action == "update":
        IB.update(home, model, CFG, progress=progress)
    else:
        IB.compact(home, progress=progress)
    print("NOT STOPPED", flush=True)
    """
)

UPDATE_POINTS = ["embed", "built", "shard-files", "manifest-temp"]
COMPACT_POINTS = ["built", "shard-files", "manifest-temp"]


def _kill_writer_at(home: Path, model: Path, action: str, point: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(model), action, point],
                            stdout=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "READY", f"the writer never reached {point}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _shard_files(d: Path) -> set[str]:
    return {p.name for p in d.glob("shard-*")}


def _temp_files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir() if p.name.endswith(".tmp")}


def _assert_whole(home: Path, manifest: M.Manifest) -> None:
    """Readers open exactly ``manifest``: its generation and shards, every file present."""
    with I.Index.open(home) as idx:
        assert idx.manifest.generation == manifest.generation
        assert [s.info.name for s in idx.shards] == [s.name for s in manifest.shards]
    d = DataHome(home).index_dir
    listed = {f"{s.name}{suffix}" for s in manifest.shards for suffix in M.SHARD_SUFFIXES}
    assert listed <= _shard_files(d)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, songs, models) -> dict[str, list]:
    """Answers of indexes built without any kill: three tracks, then two more; then compacted."""
    home = make_home(tmp_path_factory.mktemp("clean"), songs, 3)
    IB.update(home, models[0], CFG)
    ingest_many(songs[3:5], home)
    IB.update(home, models[0], CFG)
    clips = clips_of(songs[:5], starts=(2.0, 9.0))
    out = {"update": answers(home, models[0], clips)}
    IB.compact(home)
    out["compact"] = answers(home, models[0], clips)
    return out


@pytest.mark.parametrize("point", UPDATE_POINTS)
def test_an_update_killed_at_any_point_leaves_the_old_index_and_a_rerun_recovers(
    tmp_path: Path, songs, models, clean, point: str
) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG)
    d = DataHome(home).index_dir
    old = M.Manifest.load(d)
    clips = clips_of(songs[:5], starts=(2.0, 9.0))
    before = answers(home, models[0], clips)
    ingest_many(songs[3:5], home)

    _kill_writer_at(home, models[0], "update", point)
    leftovers = _shard_files(d) | _temp_files(d)
    if point in ("shard-files", "manifest-temp"):
        assert "shard-0002.ann" in leftovers  # renamed into place, but never published
    else:
        assert any(n.endswith(".tmp") for n in leftovers)  # the forest being built
    if point == "manifest-temp":
        assert any(n.startswith(".manifest.json.") for n in _temp_files(d))
    assert M.Manifest.load(d).generation == old.generation
    _assert_whole(home, old)
    assert answers(home, models[0], clips) == before, "readers see the old index"

    res = IB.update(home, models[0], CFG, lock_timeout=30)  # the lock died with the writer
    assert res.action == "update" and res.added_tracks == 2
    if point in ("shard-files", "manifest-temp"):
        assert res.shard == "shard-0003", "a name a dead writer put in place is not reused"
    new = M.Manifest.load(d)
    assert new.generation == old.generation + 1
    assert not _temp_files(d), "a dead writer's temporary files are removed"
    assert _shard_files(d) == {f"{s.name}{x}" for s in new.shards for x in M.SHARD_SUFFIXES}, \
        "unpublished shard files are removed"
    _assert_whole(home, new)
    assert len(new.live_tracks()) == 5
    assert [a[:2] if a else None for a in answers(home, models[0], clips)] == \
        [a[:2] if a else None for a in clean["update"]], "the recovered index answers as a clean build"


@pytest.mark.parametrize("point", COMPACT_POINTS)
def test_a_compaction_killed_at_any_point_leaves_the_old_index_and_a_rerun_recovers(
    tmp_path: Path, songs, models, clean, point: str
) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG)
    ingest_many(songs[3:5], home)
    IB.update(home, models[0], CFG)
    d = DataHome(home).index_dir
    old = M.Manifest.load(d)
    assert len(old.shards) == 2
    clips = clips_of(songs[:5], starts=(2.0, 9.0))
    before = answers(home, models[0], clips)

    _kill_writer_at(home, models[0], "compact", point)
    assert M.Manifest.load(d).generation == old.generation
    _assert_whole(home, old)
    assert answers(home, models[0], clips) == before, "readers see the old, uncompacted index"

    res = IB.compact(home, lock_timeout=30)
    assert res.action == "compact" and res.shards == 1
    new = M.Manifest.load(d)
    assert new.generation == old.generation + 1
    assert not _temp_files(d)
    assert _shard_files(d) == {f"{new.shards[0].name}{x}" for x in M.SHARD_SUFFIXES}
    _assert_whole(home, new)
    assert [a[:2] if a else None for a in answers(home, models[0], clips)] == \
        [a[:2] if a else None for a in clean["compact"]], "the recovered index answers as a clean compaction"
