"""Tests of audiosim.index.writer: building, updating, tombstoning, compacting and publishing an index.

These tests do not need a trained model: they use a randomly initialised
encoder saved to a checkpoint (answers are deterministic, which is all
that is compared) and the synthetic songbook. Calibration, which lives in
the match package, is handed in as a calibrator (``LOO``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from annoy import AnnoyIndex

from audiosim.config import FeatureConfig, IndexConfig
from audiosim.demo.songbook import write_songbook
from audiosim.fingerprint.embed import embed_logmel
from audiosim.fingerprint.model import model_digest
from audiosim.index import manifest as M
from audiosim.index import reader as I
from audiosim.index import writer as IB
from audiosim.index.thresholds import STATISTIC, Calibration
from audiosim.ingest.ingest import ingest_many
from audiosim.match.calibrate import calibrate_leave_one_out as LOO
from audiosim.match.matcher import Matcher
from audiosim.store.atomic import FILE_MODE
from audiosim.store.catalog import Catalog
from audiosim.store.content import FeatureStore
from audiosim.store.home import DataHome

ROOT = Path(__file__).resolve().parents[3]

from index_support import CFG, SR, answers, clips_of, make_home, models, songs  # noqa: E402,F401 (fixtures)

# Every test here builds an index or runs a model over songs: seconds each.
pytestmark = pytest.mark.slow


def test_build_writes_shards_and_manifest(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 4)
    res = IB.update(home, models[0], CFG, calibrate=LOO)
    assert res.action == "update" and res.added_tracks == 4 and res.shard == "shard-0001" and res.calibrated
    d = DataHome(home).index_dir
    for suffix in M.SHARD_SUFFIXES:
        assert (d / f"shard-0001{suffix}").is_file()
    man = json.loads((d / "manifest.json").read_text())
    assert man["format"] == 1 and man["generation"] == 1
    assert man["metric"] == "angular" and man["dim"] == 96 and man["n_trees"] == CFG.n_trees
    assert man["model"]["digest"] == model_digest(I.resolve_model(models[0]))
    assert man["feature_config"] == FeatureConfig().to_dict() and man["index_config"]["search_k"] == 100_000
    (shard,) = man["shards"]
    assert shard["name"] == "shard-0001" and len(shard["tracks"]) == 4
    assert [len(t) for t in shard["tracks"]] == [3] * 4  # id, content hash, seconds
    assert man["tombstones"] == []
    cal = man["calibration"]
    assert cal["method"] == "leave-one-track-out" and cal["max_false_match"] == 0.01
    assert [b["seconds"] for b in cal["bins"]] == [1.0, 3.0] and all(b["clips"] == 24 for b in cal["bins"])
    published_mode = (d / "manifest.json").stat().st_mode & 0o777
    assert published_mode == FILE_MODE
    for p in d.glob("shard-0001*"):  # readable by other users, as every published file (the forest too)
        assert p.stat().st_mode & 0o777 == published_mode, p
    side = json.loads((d / "shard-0001.json").read_text())
    assert side["dim"] == 96 and side["metric"] == "angular" and side["items"] == shard["items"]

    ids = np.load(d / "shard-0001.ids.npy")
    assert ids.dtype == M.IDS_DTYPE and len(ids) == shard["items"]
    ann = AnnoyIndex(96, "angular")
    ann.load(str(d / "shard-0001.ann"))
    assert ann.get_n_items() == len(ids)  # ids are dense 0..n-1
    # One item every 0.5 s of audible audio: about 40 per 20 s song.
    per_track = np.bincount(ids["track"])
    assert all(30 <= c <= 40 for c in per_track[per_track > 0])
    times = ids["time"][ids["track"] == ids["track"][0]]
    assert np.allclose(np.diff(times), 0.5)

    with I.Index.open(home) as idx:
        assert idx.n_items == len(ids) and len(idx.live_tracks()) == 4
        v = np.stack([idx.shards[0].vector(i) for i in (0, 7)])
        nn = idx.search(v, k=3)
        assert nn.track.shape == (2, 3) and nn.sim[0, 0] == pytest.approx(1.0, abs=1e-5)
        tr, tm = idx.lookup(nn.item.ravel())
        assert (tr == nn.track.ravel()).all() and (tm == nn.time.ravel()).all()
        assert (tr == ids["track"][nn.item.ravel()]).all() and (tm == ids["time"][nn.item.ravel()]).all()
    assert IB.update(home, models[0], CFG).action == "nothing"


def test_verification_sees_the_segments_half_a_hop_after_the_indexed_ones(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 2)
    IB.update(home, models[0], CFG)
    d = DataHome(home).index_dir
    half = np.load(d / "shard-0001.half.npy")
    ids = np.load(d / "shard-0001.ids.npy")
    assert half.dtype == np.uint8 and half.shape == (len(ids), 48), "one 48-byte row per indexed item"
    with I.Index.open(home) as index:
        track = int(ids["track"][0])
        times, vecs = index.track_segments(track, 2.0, 8.0)
        assert np.allclose(np.diff(times), 0.25) and times[0] == 2.0 and times[-1] == 8.0
        # Each half-hop segment is the track's own audio there: as the encoder embeds it, to 4 bits.
        enc = I.resolve_model(models[0])
        h = index.live_tracks()[track]
        lm = FeatureStore(DataHome(home).features_dir, enc.features).get(h)
        direct, starts = embed_logmel(enc, lm, 16)
        direct /= np.linalg.norm(direct, axis=1, keepdims=True)
        at = {round(s / enc.features.frames_per_second, 3): v for s, v in zip(starts, direct)}
        cos = [float(v @ at[round(float(t), 3)]) for t, v in zip(times, vecs)]
        assert min(cos) > 0.97, cos

    # Without them an index holds no rows and verifies on its own hop.
    other = make_home(tmp_path / "without", songs, 2)
    IB.update(other, models[0], replace(CFG, half_hop_vectors=False))
    assert np.load(DataHome(other).index_dir / "shard-0001.half.npy").shape == (0, 48)
    with I.Index.open(other) as index:
        times, _ = index.track_segments(track, 2.0, 8.0)
        assert np.allclose(np.diff(times), 0.5)


def test_new_tracks_add_a_shard_and_compaction_keeps_answers(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG)
    ingest_many(songs[3:6], home)
    res = IB.update(home, models[0], CFG)
    assert res.shard == "shard-0002" and res.added_tracks == 3 and res.shards == 2
    clips = clips_of(songs[:6])
    sharded = answers(home, models[0], clips)
    assert all(a is not None for a in sharded)

    res = IB.compact(home)
    assert res.action == "compact" and res.shards == 1 and res.shard == "shard-0003"
    d = DataHome(home).index_dir
    assert not list(d.glob("shard-0001*")) and not list(d.glob("shard-0002*")), "superseded shards are deleted"
    assert answers(home, models[0], clips) == sharded
    assert IB.compact(home).action == "nothing"


def test_removed_and_changed_tracks_never_match(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 5)
    IB.update(home, models[0], CFG)
    with Catalog(DataHome(home).catalog_path) as cat:
        rows = {Path(t.path).name: t for t in cat.iter_tracks()}
        removed = rows[songs[1].name]
        cat.remove(removed.id)
    changed_path = songs[2]
    old_hash = rows[changed_path.name].content_hash
    x, _ = sf.read(songs[7], dtype="float32")  # the file now holds other music
    sf.write(changed_path, x, SR)
    try:
        ingest_many([changed_path], home)
        res = IB.update(home, models[0], CFG)
        assert res.tombstoned_tracks == 2 and res.added_tracks == 1
        man = M.Manifest.load(DataHome(home).index_dir)
        reasons = {(t.track_id, t.content_hash): t.reason for t in man.tombstones}
        assert reasons == {(removed.id, removed.content_hash): "removed", (rows[changed_path.name].id, old_hash): "changed"}
        changed_id = rows[changed_path.name].id

        def check(home: Path) -> None:
            with I.Index.open(home) as idx:
                assert removed.id not in idx.live_tracks()
                assert idx.live_tracks()[changed_id] != old_hash
                dead = idx.manifest.dead_pairs() | {(removed.id, removed.content_hash), (changed_id, old_hash)}
                dead_keys, queries = set(), []
                for s in idx.shards:
                    for tid, h in s.info.tracks:
                        if (tid, h) in dead:
                            items = np.flatnonzero(s.track == tid)
                            dead_keys |= set((items + s.base).tolist())
                            queries += [s.vector(i) for i in items[::4]]
                # Query with the dead items' own vectors: they must not come back.
                nn = idx.search(np.stack(queries), k=10) if queries else None
                assert nn is None or not (set(nn.item.ravel().tolist()) & dead_keys)
                assert nn is None or removed.id not in nn.track
            xs, _ = sf.read(songs[1], dtype="float32")
            for ans in answers(home, models[0], [xs[SR * s : SR * (s + 3)] for s in (2, 8, 14)]):
                assert ans is None or ans[0] != removed.id

        check(home)
        IB.compact(home)
        man = M.Manifest.load(DataHome(home).index_dir)
        assert man.tombstones == [] and len(man.shards) == 1
        assert (removed.id, removed.content_hash) not in man.indexed_pairs()
        assert (changed_id, old_hash) not in man.indexed_pairs()
        check(home)
    finally:
        write_songbook(changed_path.parent, n=8, seconds=20.0, sample_rate=SR, seed=11)  # restore the fixture


def test_plan_update_logic(tmp_path: Path) -> None:
    class Store:
        def has(self, h: str) -> bool:
            return h != "nofeat"

    man = M.Manifest("m", "", None, FeatureConfig(), IndexConfig(), 96)
    man.shards.append(M.ShardInfo("shard-0001", 10, ((1, "a"), (2, "b"), (3, "c")), (1.0, 1.0, 1.0), 10, ""))
    man.tombstones.append(M.Tombstone(3, "c", "removed", ""))
    plan = IB.plan_update(man, {1: "a", 2: "b2", 3: "c", 4: "d", 5: "nofeat"}, Store())  # type: ignore[arg-type]
    assert plan.add == [(2, "b2"), (3, "c"), (4, "d")]  # changed, re-added after removal, new
    assert [(t.track_id, t.content_hash, t.reason) for t in plan.tombstone] == [(2, "b", "changed")]
    assert plan.missing_features == [(5, "nofeat")]
    plan = IB.plan_update(man, {}, Store())  # type: ignore[arg-type]
    assert [(t.track_id, t.reason) for t in plan.tombstone] == [(1, "removed"), (2, "removed")]


def test_false_match_rate_setting_and_absent_calibration(tmp_path: Path, songs, models) -> None:
    import dataclasses

    from audiosim.match.calibrate import calibrate

    home = make_home(tmp_path, songs, 4)
    IB.update(home, models[0], CFG, calibrate=LOO)
    d = DataHome(home).index_dir
    before = M.Manifest.load(d)
    res = IB.update(home, models[0], dataclasses.replace(CFG, max_false_match=0.1), calibrate=LOO)
    assert res.action == "update" and res.added_tracks == 0  # a settings change is published on its own
    after = M.Manifest.load(d)
    assert after.config.max_false_match == 0.1 and after.calibration.max_false_match == 0.1
    cal = after.calibration
    assert cal.threshold(1) <= before.calibration.threshold(1)
    with Matcher(home, models[0]) as m:
        assert m.threshold(1) == pytest.approx(cal.threshold(1, 0.1))
        assert m.threshold(1, max_false_match=0.0) >= m.threshold(1)
    cal2 = calibrate(home, songs[6:8], model=models[0], seconds=(1.0, 2.0), clips=20, max_false_match=0.05)
    generation = IB.store_calibration(home, cal2)
    man = M.Manifest.load(d)
    assert man.generation == generation and man.calibration.generation == generation
    assert man.calibration.method == "absent-music" and man.config.max_false_match == 0.05
    assert [b.seconds for b in man.calibration.bins] == [1.0, 2.0] and cal2.tracks == 2


def test_pruned_tracks_are_tombstoned_and_never_match(tmp_path: Path, songs, models) -> None:
    import shutil

    from audiosim.ingest.ingest import prune_missing

    music = tmp_path / "music"
    music.mkdir()
    copies = [Path(shutil.copy(p, music / p.name)) for p in songs[:4]]
    home = tmp_path / "home"
    ingest_many(copies, home)
    IB.update(home, models[0], CFG)
    with Catalog(DataHome(home).catalog_path) as cat:
        gone = cat.get_by_path(copies[1])
    copies[1].unlink()

    res = prune_missing([music], home)
    assert res.track_ids == [gone.id]
    tombs = IB.tombstone_removed(home)
    assert [(t.track_id, t.content_hash, t.reason) for t in tombs] == [(gone.id, gone.content_hash, "removed")]
    assert IB.tombstone_removed(home) == []  # nothing more to do
    with I.Index.open(home) as idx:
        assert gone.id not in idx.live_tracks() and len(idx.live_tracks()) == 3
    x, _ = sf.read(songs[1], dtype="float32")
    for ans in answers(home, models[0], [x[SR * s : SR * (s + 3)] for s in (2, 8, 14)]):
        assert ans is None or ans[0] != gone.id
    later = IB.update(home, models[0], CFG)
    assert later.action == "nothing" and later.tombstoned_tracks == 0


def test_small_additions_reuse_the_stored_calibration(tmp_path: Path, songs, models) -> None:
    import dataclasses

    assert IB.needs_calibration(None, 0, CFG)
    assert not IB.needs_calibration(Calibration("leave-one-track-out", 0.01, [], index_tracks=10), 0, CFG)
    home = make_home(tmp_path, songs, 4)
    cfg = dataclasses.replace(CFG, recalibrate_share=0.5)
    first = IB.update(home, models[0], cfg, calibrate=LOO)
    assert first.calibrated
    cal = M.Manifest.load(DataHome(home).index_dir).calibration
    assert cal.index_tracks == 4
    ingest_many(songs[4:6], home)  # 2 new tracks: not more than half of 4
    second = IB.update(home, models[0], cfg, calibrate=LOO)
    assert second.added_tracks == 2 and not second.calibrated
    kept = M.Manifest.load(DataHome(home).index_dir).calibration
    assert kept.added_since == 2 and kept.to_dict()["bins"] == cal.to_dict()["bins"]
    ingest_many(songs[6:7], home)  # 3 since the calibration: more than half of 4
    third = IB.update(home, models[0], cfg, calibrate=LOO)
    assert third.calibrated
    fresh = M.Manifest.load(DataHome(home).index_dir).calibration
    assert fresh.index_tracks == 7 and fresh.added_since is None


def test_a_calibration_for_another_score_is_redone(tmp_path: Path, songs, models) -> None:
    assert IB.needs_calibration(Calibration("leave-one-track-out", 0.01, [], "vote-score", index_tracks=10), 0, CFG)
    home = make_home(tmp_path, songs, 4)
    IB.update(home, models[0], CFG, calibrate=LOO)
    d = DataHome(home).index_dir
    man = M.Manifest.load(d)
    man.calibration = Calibration.from_dict(dict(man.calibration.to_dict(), statistic="vote-score"))  # as before verification
    man.save(d)
    with pytest.warns(UserWarning, match="calibrated for score 'vote-score'"):
        m = Matcher(home, models[0])
    with m:
        assert m.calibration is None
        assert not m.match(clips_of(songs[:1])[0], SR).matched, "stale thresholds are not applied"
    res = IB.update(home, models[0], CFG, calibrate=LOO)
    assert res.calibrated and res.added_tracks == 0
    assert M.Manifest.load(d).calibration.statistic == STATISTIC



def test_without_a_calibrator_an_update_never_calibrates(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    res = IB.update(home, models[0], CFG)
    assert res.action == "update" and not res.calibrated and res.calibrate_seconds == 0.0
    assert M.Manifest.load(DataHome(home).index_dir).calibration is None
    assert IB.update(home, models[0], CFG).action == "nothing", "missing thresholds alone do not make work"


def test_a_rebuild_without_calibration_keeps_thresholds_that_still_hold(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG, calibrate=LOO)
    d = DataHome(home).index_dir
    before = M.Manifest.load(d).calibration
    res = IB.update(home, models[0], CFG, rebuild=True)  # `audiosim index --rebuild --no-calibrate`
    assert res.action == "rebuild" and not res.calibrated and res.thresholds_dropped == ""
    kept = M.Manifest.load(d).calibration
    assert kept is not None and kept.is_current(CFG)
    assert kept.to_dict()["bins"] == before.to_dict()["bins"] and kept.added_since in (None, 0)
    with Matcher(home, models[0]) as m:
        assert m.calibration is not None
        assert m.match(clips_of(songs[:1], starts=(6.0,))[0], SR).matched, "the kept thresholds still let clips match"


def test_a_rebuild_for_another_model_says_why_its_thresholds_were_not_kept(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG, calibrate=LOO)
    res = IB.update(home, models[1], CFG, rebuild=True)
    assert M.Manifest.load(DataHome(home).index_dir).calibration is None
    assert "another model" in res.thresholds_dropped


def test_orphan_shard_files_are_removed_by_an_update_with_nothing_to_do(tmp_path: Path, songs, models) -> None:
    """A writer killed after renaming its shard files into place, before publishing, leaves them behind."""
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG)
    clips = clips_of(songs[:3], starts=(2.0, 9.0))
    before = answers(home, models[0], clips)
    d = DataHome(home).index_dir
    for suffix in M.SHARD_SUFFIXES:
        (d / f"shard-0009{suffix}").write_bytes((d / f"shard-0001{suffix}").read_bytes())
    res = IB.update(home, models[0], CFG)
    assert res.action == "nothing"
    assert not list(d.glob("shard-0009*")), "orphan shard files are removed while the writer lock is held"
    assert {p.name for p in d.glob("shard-0001*")} == {f"shard-0001{s}" for s in M.SHARD_SUFFIXES}
    assert answers(home, models[0], clips) == before


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["index", "fingerprint"])
def test_the_package_never_imports_the_matcher(package: str) -> None:
    """Imports go one way: index and fingerprint sit above match (not even inside functions)."""
    for path in sorted((ROOT / "audiosim" / package).glob("*.py")):
        upward = {m for m in _imports(path) if m.startswith(("audiosim.match", "audiosim.cli", "audiosim.demo", "flows"))}
        assert not upward, f"{path.name} imports {sorted(upward)}"


@pytest.mark.slow
def test_importing_the_writer_loads_nothing_of_the_matcher() -> None:
    code = ("import sys, audiosim.index.writer, audiosim.index.hubs, audiosim.fingerprint.embed; "
            "bad = sorted(m for m in sys.modules if m.startswith('audiosim.match')); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
