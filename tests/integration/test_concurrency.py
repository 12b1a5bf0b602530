"""Overlapping runs must not corrupt anything: real concurrent processes.

Each worker process imports everything first, says it is ready, and waits
for a common "go" file, so the runs really start together. They run the
Prefect flows (``flows.ingest.ingest_flow``, ``flows.index.index_flow``)
against the session's Prefect test server.

- Two ingests of the same folder at once (decoding slowed down so that they
  work on the same files at the same moment): every file ends up catalogued
  exactly once, ok, with its features; no file is reported failed.
- An ingest while the index is being compacted and updated over and over by
  two other processes: afterwards the catalogue is consistent, the manifest
  loads, every shard it lists is complete, and every ok track is indexed
  exactly once (changed content replaced, not duplicated).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = r'''
import json, sys, time
from pathlib import Path

role, home, workdir, args = sys.argv[1], sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
import flows.index, flows.ingest  # import before the start line
if args.get("slow"):  # widen the window between reading the catalogue and writing it
    import audiosim.ingest.ingest as lib
    compute = lib.compute_features
    def slow_compute(*a, **k):
        out = compute(*a, **k)
        time.sleep(args["slow"])
        return out
    lib.compute_features = slow_compute
(workdir / f"ready-{role}").touch()
while not (workdir / "go").exists():
    time.sleep(0.02)
t0, info = time.time(), {}
if role.startswith("ingest"):
    res = flows.ingest.ingest_flow(args["paths"], home=home, workers=args.get("workers", 1))
    info["results"] = {Path(r.path).name: [r.status, r.reason, r.detail] for r in res}
    (workdir / f"done-{role}").touch()
else:  # index writers: loop until the ingests are over (at least once)
    actions = []
    while True:
        finished = (workdir / "ingests-over").exists()
        res = flows.index.index_flow(home=home, model=args["model"], compact=(role.startswith("compact")),
                                     calibrate=False)
        actions.append([r.action for r in res])
        if finished:
            break
        time.sleep(0.5)
    info["actions"] = actions
json.dump(dict(info, start=t0, end=time.time()), open(workdir / f"out-{role}.json", "w"))
'''


def _env(api_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PREFECT_API_URL=api_url, PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               PREFECT_LOGGING_LEVEL="WARNING", OMP_NUM_THREADS="1")
    env.pop("AUDIOSIM_HOME", None)
    return env


def run_together(roles: dict[str, dict], home: Path, workdir: Path, api_url: str, timeout: float = 800) -> dict:
    """Start one process per role, release them at once, wait; returns each role's output."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "driver.py"
    script.write_text(DRIVER)
    procs = {}
    for role, args in roles.items():
        log = open(workdir / f"{role}.log", "wb")
        procs[role] = (subprocess.Popen([sys.executable, str(script), role, str(home), str(workdir), json.dumps(args)],
                                        cwd=ROOT, env=_env(api_url), stdout=log, stderr=subprocess.STDOUT), log)
    deadline = time.monotonic() + timeout
    try:
        while not all((workdir / f"ready-{r}").exists() for r in roles):
            dead = [r for r, (p, _) in procs.items() if p.poll() is not None]
            assert not dead, f"{dead} exited before the start:\n" + _logs(workdir, dead)
            assert time.monotonic() < deadline, "workers not ready in time:\n" + _logs(workdir, roles)
            time.sleep(0.1)
        (workdir / "go").touch()
        ingests = [p for r, (p, _) in procs.items() if r.startswith("ingest")]
        for p in ingests:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        (workdir / "ingests-over").touch()  # the index writers stop after their current round
        for role, (p, _) in procs.items():
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        bad = [r for r, (p, _) in procs.items() if p.returncode != 0]
        assert not bad, f"{bad} failed:\n" + _logs(workdir, bad)
    finally:
        for p, log in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    return {r: json.loads((workdir / f"out-{r}.json").read_text()) for r in roles}


def _logs(workdir: Path, roles) -> str:
    out = []
    for r in roles:
        text = (workdir / f"{r}.log").read_text(errors="replace") if (workdir / f"{r}.log").exists() else ""
        out.append(f"--- {r}\n" + "\n".join(text.splitlines()[-40:]))
    return "\n".join(out)


def _random_model(path: Path) -> Path:
    import torch

    from audiosim.fingerprint.model import Encoder, save_encoder

    torch.manual_seed(0)
    save_encoder(Encoder(), path, {"note": "untrained, for tests"})
    return path


def check_catalogue(home, files: list[Path]) -> dict[str, object]:
    """Every file has one ok row whose hash is the file's and whose features exist."""
    from audiosim.signal.audio import content_hash
    from audiosim.store.catalog import Catalog
    from audiosim.store.content import FeatureStore

    with Catalog(home.catalog_path, create=False) as cat:
        rows = list(cat.iter_tracks())
    by_path = Counter(r.path for r in rows)
    assert max(by_path.values()) == 1
    assert sorted(by_path) == sorted(str(f.resolve()) for f in files)
    failed = [(r.path, r.reason, r.detail) for r in rows if not r.ok]
    assert not failed, f"files recorded as failed: {failed}"
    store = FeatureStore(home.features_dir)
    for r in rows:
        assert r.content_hash == content_hash(r.path), r.path
        assert store.has(r.content_hash), r.path
        assert store.get(r.content_hash).shape[0] == store.config.n_mels
    return {r.path: r for r in rows}


def check_index(home, rows: dict) -> None:
    """The manifest loads, its shards are complete, every ok track is live exactly once."""
    from audiosim.index.manifest import Manifest
    from audiosim.index.reader import Index

    manifest = Manifest.load(home.index_dir)
    expected: dict[int, str] = {}
    first_by_hash: dict[str, int] = {}
    for r in sorted(rows.values(), key=lambda r: r.id):
        if r.content_hash not in first_by_hash:  # same content is indexed once (lowest id)
            first_by_hash[r.content_hash] = r.id
            expected[r.id] = r.content_hash
    assert manifest.live_tracks() == expected
    dead = manifest.dead_pairs()
    live_pairs = Counter(pair for s in manifest.shards for pair in s.tracks if pair not in dead)
    assert all(n == 1 for n in live_pairs.values()), live_pairs
    assert set(live_pairs) == set(expected.items())
    listed = {s.name for s in manifest.shards}
    for s in manifest.shards:
        for suffix in (".ann", ".ids.npy", ".hub.npy", ".json"):
            assert (home.index_dir / f"{s.name}{suffix}").is_file(), (s.name, suffix)
        ids = np.load(home.index_dir / f"{s.name}.ids.npy")
        assert len(ids) == s.items
        assert set(np.unique(ids["track"]).tolist()) <= {t for t, _ in s.tracks}
    stray = {p.name.split(".")[0] for p in home.index_dir.glob("shard-*")} - listed
    assert not stray, f"shard files no manifest lists: {sorted(stray)}"
    assert not list(home.index_dir.glob(".*.tmp")), "temporary files left in the index"
    with Index.open(home) as index:
        assert index.live_tracks() == expected


@pytest.fixture
def music(tmp_path: Path) -> list[Path]:
    from audiosim.demo.songbook import write_songbook

    return sorted(write_songbook(tmp_path / "music", n=6, seconds=6))


@pytest.mark.timeout(1500)
def test_two_ingests_at_once(prefect_harness: str, tmp_path: Path, music: list[Path], home) -> None:
    t0 = time.monotonic()
    # Decoding is slowed down (3 s more per file) so that both runs are surely
    # working on the same files at the same time, as with long files.
    both = {"paths": [str(music[0].parent)], "workers": 2, "slow": 3.0}
    out = run_together({"ingest-a": both, "ingest-b": both}, home.root, tmp_path / "run", prefect_harness)
    a, b = out["ingest-a"], out["ingest-b"]
    assert a["start"] < b["end"] and b["start"] < a["end"], "the two ingests did not overlap"
    for name in (p.name for p in music):
        statuses = sorted([a["results"][name][0], b["results"][name][0]])
        assert "failed" not in statuses, (name, a["results"][name], b["results"][name])
        assert "added" in statuses, (name, statuses)  # one of them added it; the other skipped or re-added it
    check_catalogue(home, music)
    # a third run finds nothing to do
    from audiosim.ingest.ingest import ingest_many

    assert {r.status for r in ingest_many(music, home)} == {"skipped"}
    print(f"two concurrent ingests of {len(music)} files: {time.monotonic() - t0:.0f} s")


@pytest.mark.timeout(1500)
def test_ingest_during_index_compaction(prefect_harness: str, tmp_path: Path, music: list[Path], home) -> None:
    from audiosim.demo.songbook import write_songbook
    from audiosim.index import writer as ix
    from audiosim.ingest.ingest import ingest_many

    t0 = time.monotonic()
    model = _random_model(tmp_path / "model.pt")
    # An index of two shards: songs 1-2, then song 3.
    ingest_many(music[:2], home)
    assert ix.update(home, model).shards == 1
    ingest_many(music[2:3], home)
    assert ix.update(home, model).shards == 2
    # Song 1 changes content (its old vectors must stop matching); songs 4-6 are new.
    other = write_songbook(tmp_path / "other", n=1, seconds=6, seed=7)[0]
    shutil.copyfile(other, music[0])

    out = run_together(
        {
            "ingest": {"paths": [str(music[0].parent)], "slow": 2.0},
            "compact": {"model": str(model)},
            "update": {"model": str(model)},
        },
        home.root, tmp_path / "run", prefect_harness,
    )
    results = out["ingest"]["results"]
    assert {n: s for n, (s, _, _) in results.items()} == {
        music[0].name: "updated", music[1].name: "skipped", music[2].name: "skipped",
        music[3].name: "added", music[4].name: "added", music[5].name: "added",
    }, results
    for role in ("compact", "update"):
        assert out[role]["start"] < out["ingest"]["end"] and out["ingest"]["start"] < out[role]["end"]

    rows = check_catalogue(home, music)
    final = ix.update(home, model)  # whatever the race left for later
    check_index(home, rows)
    compacted = ix.compact(home)
    assert compacted.shards == 1
    check_index(home, rows)
    print(f"ingest during compaction: writers did {out['compact']['actions']} and {out['update']['actions']}, "
          f"final update {final.action}; {time.monotonic() - t0:.0f} s")
