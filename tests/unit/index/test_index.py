"""Tests of audiosim.index.reader: shards, manifest, tombstones, compaction, atomic publishing.

These tests do not need a trained model: they use a randomly initialised
encoder saved to a checkpoint (answers are deterministic, which is all
that is compared), the synthetic songbook and real subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from annoy import AnnoyIndex

from audiosim.config import ConfigMismatchError, FeatureConfig, IndexConfig
from audiosim.demo.songbook import write_songbook
from audiosim.index import manifest as M
from audiosim.index import reader as I
from audiosim.index import writer as IB
from audiosim.ingest.ingest import ingest_many
from audiosim.match.matcher import Matcher
from audiosim.store.catalog import Catalog
from audiosim.store.home import DataHome

ROOT = Path(__file__).resolve().parents[3]

from index_support import CFG, SR, answers, clips_of, make_home, models, songs  # noqa: E402,F401 (fixtures)


def test_build_writes_shards_and_manifest(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 4)
    res = IB.update(home, models[0], CFG)
    assert res.action == "update" and res.added_tracks == 4 and res.shard == "shard-0001" and res.calibrated
    d = DataHome(home).index_dir
    for suffix in M.SHARD_SUFFIXES:
        assert (d / f"shard-0001{suffix}").is_file()
    man = json.loads((d / "manifest.json").read_text())
    assert man["format"] == 1 and man["generation"] == 1
    assert man["metric"] == "angular" and man["dim"] == 96 and man["n_trees"] == CFG.n_trees
    assert man["model"]["digest"] == I.model_digest(I.resolve_model(models[0]))
    assert man["feature_config"] == FeatureConfig().to_dict() and man["index_config"]["search_k"] == 100_000
    (shard,) = man["shards"]
    assert shard["name"] == "shard-0001" and len(shard["tracks"]) == 4
    assert [len(t) for t in shard["tracks"]] == [3] * 4  # id, content hash, seconds
    assert man["tombstones"] == []
    cal = man["calibration"]
    assert cal["method"] == "leave-one-track-out" and cal["max_false_match"] == 0.01
    assert [b["seconds"] for b in cal["bins"]] == [1.0, 3.0] and all(b["clips"] == 24 for b in cal["bins"])
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


def test_new_tracks_add_a_shard_and_compaction_keeps_answers(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG, calibrate=False)
    ingest_many(songs[3:6], home)
    res = IB.update(home, models[0], CFG, calibrate=False)
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
    IB.update(home, models[0], CFG, calibrate=False)
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
        res = IB.update(home, models[0], CFG, calibrate=False)
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


def test_other_model_or_features_are_refused(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG, calibrate=False)
    built = M.Manifest.load(DataHome(home).index_dir).model_digest
    other = I.model_digest(I.resolve_model(models[1]))
    with pytest.raises(ConfigMismatchError) as e:
        I.Index.open(home, model=I.resolve_model(models[1]))
    assert built in str(e.value) and other in str(e.value)
    with pytest.raises(ConfigMismatchError):
        Matcher(home, models[1])
    with pytest.raises(ConfigMismatchError) as e:
        I.Index.open(home, features=FeatureConfig(n_mels=32))
    assert FeatureConfig(n_mels=32).digest() in str(e.value) and FeatureConfig().digest() in str(e.value)
    with pytest.raises(ConfigMismatchError):
        IB.update(home, models[1], CFG)
    with pytest.raises(ConfigMismatchError, match="index_hop_seconds"):
        IB.update(home, models[0], IndexConfig(index_hop_seconds=0.25))
    res = IB.update(home, models[1], CFG, rebuild=True, calibrate=False)
    assert res.action == "rebuild" and res.shards == 1 and res.shard == "shard-0002"
    assert M.Manifest.load(DataHome(home).index_dir).model_digest == other
    I.Index.open(home, model=I.resolve_model(models[1])).close()


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


def test_hub_scores_flag_the_item_near_everything() -> None:
    rng = np.random.default_rng(0)
    dim, n = 16, 400
    mu = np.zeros(dim, np.float32)
    mu[0] = 1.0

    def cone(m: int) -> np.ndarray:  # embeddings fill a cone around mu, as real ones do
        v = mu + 0.35 * rng.standard_normal((m, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    x = cone(n)
    x[0] = mu  # the centre of the cone: close to everything
    tracks = np.arange(n) // 10
    ann = AnnoyIndex(dim, "angular")
    for i, v in enumerate(x):
        ann.add_item(i, v)
    ann.build(10)
    q = cone(2000)
    hub = IB.hub_scores(ann, tracks, q, np.full(2000, -1), k=5, search_k=10_000)
    assert hub.argmax() == 0 and hub[0] > 5 and np.median(hub) < 1.5
    # A query never counts its own track's items.
    own = IB.hub_scores(ann, tracks, x[:10], tracks[:10], k=5, search_k=10_000)
    assert own[:10].sum() == 0


# --------------------------------------------------------------------------
# Crashes and concurrency (real subprocesses)
# --------------------------------------------------------------------------

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

BUILDER = textwrap.dedent(
    """
    import sys, time
    from audiosim.index import reader as I
    from audiosim.index import writer as IB
    from audiosim.config import IndexConfig
    home, model, stage = sys.argv[1], sys.argv[2], sys.argv[3]
    def progress(s, info):
        if s == stage:
            print("READY", flush=True)
            time.sleep(600)
    IB.update(home, model, IndexConfig(search_k=100_000), calibrate=False, progress=progress)
    """
)


@pytest.mark.parametrize("stage", ["built", "shard-files"])
def test_kill_mid_build_leaves_the_old_index_usable(tmp_path: Path, songs, models, stage: str) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG, calibrate=False)
    clips = clips_of(songs[:3], starts=(2.0, 9.0))
    before = answers(home, models[0], clips)
    ingest_many(songs[3:5], home)
    proc = subprocess.Popen([sys.executable, "-c", BUILDER, str(home), str(models[0]), stage],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "READY"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    d = DataHome(home).index_dir
    leftovers = {p.name for p in d.iterdir()}
    assert M.Manifest.load(d).generation == 1
    if stage == "shard-files":
        assert "shard-0002.ann" in leftovers  # renamed into place, but never published
    else:
        assert any(n.endswith(".tmp") for n in leftovers)  # the half-built forest
    assert answers(home, models[0], clips) == before
    res = IB.update(home, models[0], CFG, calibrate=False, lock_timeout=30)  # the lock died with the writer
    assert res.added_tracks == 2
    if stage == "shard-files":
        assert res.shard == "shard-0003", "a name a dead writer put in place is not reused"
    after = {p.name for p in d.iterdir()}
    assert not any(n.endswith(".tmp") for n in after), "a dead writer's temporary files are removed"
    if stage == "shard-files":
        assert not any(n.startswith("shard-0002") for n in after), "unpublished shard files are removed"
    assert len(I.Index.open(home).live_tracks()) == 5


READER = textwrap.dedent(
    """
    import sys, time, json
    import numpy as np, soundfile as sf
    from audiosim.match.matcher import Matcher
    home, model, clip, stop = sys.argv[1:5]
    x, sr = sf.read(clip, dtype="float32")
    n = errors = reopened = 0
    seen = set()
    t_end = time.time() + 240
    m = Matcher(home, model, threshold=0.0)
    fresh = 0
    while time.time() < t_end:
        try:
            r = m.match(x, sr)
            assert r.track_id is not None
            if m.refresh():
                reopened += 1
            with Matcher(home, model, threshold=0.0) as m2:  # a reader that opens anew each time
                assert m2.match(x, sr).track_id is not None
                seen.add(m2.index.manifest.generation)
                fresh += 1
            n += 1
        except Exception as e:
            errors += 1
            print("ERROR", type(e).__name__, e, file=sys.stderr, flush=True)
        if n == 1:
            print("READY", flush=True)
        import os
        if os.path.exists(stop):
            break
    print(json.dumps({"n": n, "errors": errors, "reopened": reopened, "generations": sorted(seen)}), flush=True)
    """
)


def test_queries_keep_working_during_rebuilds(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG, calibrate=False)
    clip = tmp_path / "clip.wav"
    x, _ = sf.read(songs[0], dtype="float32")
    sf.write(clip, x[3 * SR : 6 * SR], SR)
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, str(home), str(models[0]), str(clip), str(stop)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        for _ in range(2)
    ]
    try:
        for r in readers:
            assert r.stdout.readline().strip() == "READY"
        for batch in (songs[3:5], songs[5:7]):
            ingest_many(batch, home)
            IB.update(home, models[0], CFG, calibrate=False)
            time.sleep(0.5)
            IB.compact(home)
            time.sleep(0.5)
        stop.touch()
        outs = [r.communicate(timeout=120) for r in readers]
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
    for out, err in outs:
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["errors"] == 0, err
        assert stats["n"] >= 2 and stats["reopened"] >= 1
    assert M.Manifest.load(DataHome(home).index_dir).generation == 5


def test_index_flow_updates_compacts_and_reports(prefect_harness, tmp_path: Path, songs, models) -> None:
    from prefect.artifacts import Artifact

    from flows.index import index_flow

    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG, calibrate=False)
    ingest_many(songs[3:5], home)
    results = index_flow(home=home, model=models[0], compact=True, calibrate=True)
    assert [r.action for r in results] == ["update", "compact"]
    assert results[0].added_tracks == 2 and results[0].calibrated
    man = M.Manifest.load(DataHome(home).index_dir)
    assert len(man.shards) == 1 and man.calibration is not None
    summary = Artifact.get("index-summary")
    assert summary is not None and "compact" in str(summary.data)
    assert Artifact.get("index-thresholds") is not None


def test_false_match_rate_setting_and_absent_calibration(tmp_path: Path, songs, models) -> None:
    import dataclasses

    from audiosim.index.thresholds import Calibration
    from audiosim.match.calibrate import calibrate

    home = make_home(tmp_path, songs, 4)
    IB.update(home, models[0], CFG)
    d = DataHome(home).index_dir
    before = M.Manifest.load(d)
    res = IB.update(home, models[0], dataclasses.replace(CFG, max_false_match=0.1))
    assert res.action == "update" and res.added_tracks == 0  # a settings change is published on its own
    after = M.Manifest.load(d)
    assert after.config.max_false_match == 0.1 and after.calibration["max_false_match"] == 0.1
    cal = Calibration.from_dict(after.calibration)
    assert cal.threshold(1) <= Calibration.from_dict(before.calibration).threshold(1)
    with Matcher(home, models[0]) as m:
        assert m.threshold(1) == pytest.approx(cal.threshold(1, 0.1))
        assert m.threshold(1, max_false_match=0.0) >= m.threshold(1)
    cal2 = calibrate(home, songs[6:8], model=models[0], seconds=(1.0, 2.0), clips=20, max_false_match=0.05)
    man = M.Manifest.load(d)
    assert man.calibration["method"] == "absent-music" and man.config.max_false_match == 0.05
    assert [b["seconds"] for b in man.calibration["bins"]] == [1.0, 2.0] and cal2.tracks == 2


# --------------------------------------------------------------------------
# Embeddings computed ahead (the Dask fan-out's unit of work) and pruning
# --------------------------------------------------------------------------


def _shard_contents(home: Path) -> tuple[np.ndarray, np.ndarray]:
    with I.Index.open(home) as idx:
        (s,) = idx.shards
        ids = np.load(idx.directory / f"{s.info.name}.ids.npy")
        return ids, np.stack([s.vector(i) for i in range(s.info.items)])


def test_embeddings_computed_ahead_give_the_same_index(tmp_path: Path, songs, models) -> None:
    one = make_home(tmp_path / "one", songs, 4)
    two = make_home(tmp_path / "two", songs, 4)
    IB.update(one, models[0], CFG, calibrate=False)

    job = IB.plan_embedding(two, models[0], CFG)
    assert len(job.tracks) == 4 and job.model_path == str(models[0].resolve())
    done = IB.embed_tracks(two, job, job.tracks[:3]) + IB.embed_tracks(two, job, job.tracks[2:])
    assert [n > 0 for _, n in done] == [True, True, True, False, True]  # the 3rd was there already
    files = sorted(Path(job.directory).glob("*.npz"))
    assert len(files) == 4 and Path(job.directory).is_relative_to(DataHome(two).cache_dir)
    assert IB.plan_embedding(two, models[0], CFG).tracks == ()  # nothing left to embed

    def no_embedding(*a, **k):
        raise AssertionError("the update embedded a track that was embedded ahead")

    real = I.embed_logmel
    I.embed_logmel = no_embedding
    try:
        res = IB.update(two, models[0], CFG, calibrate=False)
    finally:
        I.embed_logmel = real
    assert res.added_tracks == 4
    assert not Path(job.directory).exists()  # consumed files are removed after publishing
    ids1, v1 = _shard_contents(one)
    ids2, v2 = _shard_contents(two)
    assert np.array_equal(ids1, ids2)
    assert np.allclose(v1, v2, atol=1e-5)
    clips = clips_of(songs[:4], starts=(2.1, 9.4))
    assert answers(one, models[0], clips) == answers(two, models[0], clips)


def test_a_broken_embedding_file_is_recomputed(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 2)
    job = IB.plan_embedding(home, models[0], CFG)
    IB.embed_tracks(home, job)
    first = Path(job.directory) / f"{job.tracks[0][1]}.npz"
    first.write_bytes(b"not an npz")
    assert IB.load_embedding(first, 96) is None
    assert IB.update(home, models[0], CFG, calibrate=False).added_tracks == 2
    with I.Index.open(home) as idx:
        assert len(idx.live_tracks()) == 2 and idx.n_items > 40


def test_pruned_tracks_are_tombstoned_and_never_match(tmp_path: Path, songs, models) -> None:
    import shutil

    from audiosim.ingest.ingest import prune_missing

    music = tmp_path / "music"
    music.mkdir()
    copies = [Path(shutil.copy(p, music / p.name)) for p in songs[:4]]
    home = tmp_path / "home"
    ingest_many(copies, home)
    IB.update(home, models[0], CFG, calibrate=False)
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
    later = IB.update(home, models[0], CFG, calibrate=False)
    assert later.action == "nothing" and later.tombstoned_tracks == 0


def test_small_additions_reuse_the_stored_calibration(tmp_path: Path, songs, models) -> None:
    import dataclasses

    assert IB.needs_calibration(None, 0, CFG)
    assert not IB.needs_calibration({"index_tracks": 10}, 0, CFG)
    home = make_home(tmp_path, songs, 4)
    cfg = dataclasses.replace(CFG, recalibrate_share=0.5)
    first = IB.update(home, models[0], cfg)
    assert first.calibrated
    cal = M.Manifest.load(DataHome(home).index_dir).calibration
    assert cal["index_tracks"] == 4
    ingest_many(songs[4:6], home)  # 2 new tracks: not more than half of 4
    second = IB.update(home, models[0], cfg)
    assert second.added_tracks == 2 and not second.calibrated
    kept = M.Manifest.load(DataHome(home).index_dir).calibration
    assert kept["added_since"] == 2 and kept["bins"] == cal["bins"]
    ingest_many(songs[6:7], home)  # 3 since the calibration: more than half of 4
    third = IB.update(home, models[0], cfg)
    assert third.calibrated
    fresh = M.Manifest.load(DataHome(home).index_dir).calibration
    assert fresh["index_tracks"] == 7 and "added_since" not in fresh


def test_a_calibration_for_another_score_is_redone(tmp_path: Path, songs, models) -> None:
    from audiosim.index.thresholds import STATISTIC

    assert IB.needs_calibration({"index_tracks": 10, "statistic": "vote-score"}, 0, CFG)
    home = make_home(tmp_path, songs, 4)
    IB.update(home, models[0], CFG)
    d = DataHome(home).index_dir
    man = M.Manifest.load(d)
    man.calibration = dict(man.calibration, statistic="vote-score")  # as written before verification
    man.save(d)
    with pytest.warns(UserWarning, match="calibrated for score 'vote-score'"):
        m = Matcher(home, models[0])
    with m:
        assert m.calibration is None
        assert not m.match(clips_of(songs[:1])[0], SR).matched, "stale thresholds are not applied"
    res = IB.update(home, models[0], CFG)
    assert res.calibrated and res.added_tracks == 0
    assert M.Manifest.load(d).calibration["statistic"] == STATISTIC
