"""Scale-out: the ingest and index flows on a real local Dask cluster of worker processes.

The same files ingested on a local Dask cluster of 2 worker processes
(``prefect_dask.DaskTaskRunner`` from :mod:`audiosim.runners`, batches of
files per task) and in one thread give the same catalogue and
byte-identical features; the work really ran in the worker processes, which
wrote the features to the data home themselves. An index whose embedding
fanned out over the cluster answers like one built in a single process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from audiosim.runners import RunnerSpec, local_cluster_kwargs, resolve


def test_runner_spec_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    one = RunnerSpec()
    assert isinstance(one.task_runner(), ThreadPoolTaskRunner)
    assert one.in_flight() == 1 and not one.uses_dask

    local = RunnerSpec(workers=3)
    runner = local.task_runner()
    assert isinstance(runner, DaskTaskRunner)
    assert runner.address is None
    assert runner.cluster_kwargs["n_workers"] == 3 and runner.cluster_kwargs["processes"] is True
    assert runner.cluster_kwargs["threads_per_worker"] == 1
    assert local.in_flight() == 3

    remote = RunnerSpec(dask="10.1.2.3:8786", workers=8)
    assert remote.dask == "tcp://10.1.2.3:8786"
    assert remote.task_runner().address == "tcp://10.1.2.3:8786"
    assert remote.in_flight() == 8
    assert "10.1.2.3" in remote.describe()

    with pytest.raises(ValueError):
        RunnerSpec(workers=0)
    with pytest.raises(ValueError):
        RunnerSpec(dask="  ")
    monkeypatch.setenv("AUDIOSIM_DASK_ADDRESS", "tcp://h:1")
    assert resolve().dask == "tcp://h:1"
    assert resolve(dask="tcp://other:2").dask == "tcp://other:2"
    assert local_cluster_kwargs(2)["dashboard_address"] is None


def _catalogue(home) -> dict[str, tuple]:
    from audiosim.store.catalog import Catalog

    with Catalog(home.catalog_path, create=False) as cat:
        return {
            Path(t.path).name: (t.status, t.content_hash, t.reason, t.duration, t.sample_rate, t.channels, t.title)
            for t in cat.iter_tracks()
        }


@pytest.fixture
def folder(tmp_path: Path, bad_files) -> Path:
    from audiosim.demo.songbook import write_songbook

    d = tmp_path / "audio"
    write_songbook(d, n=4, seconds=6)
    keep = {bad_files["not-audio"], bad_files["too-short"]}  # failures must agree too
    for p in set(bad_files.values()) - keep:
        p.unlink()
    return d


@pytest.mark.timeout(1500)
def test_local_dask_cluster_gives_the_same_catalogue(prefect_harness: str, folder: Path, tmp_path: Path) -> None:
    from audiosim.store.content import FeatureStore
    from audiosim.store.home import DataHome
    from flows.ingest import run_ingest

    one, two = DataHome(tmp_path / "one"), DataHome(tmp_path / "two")
    t0 = time.perf_counter()
    serial = run_ingest([folder], home=one.root, workers=1)
    t1 = time.perf_counter()
    spec = RunnerSpec(workers=2)
    parallel = run_ingest([folder], home=two.root, workers=spec.in_flight(), task_runner=spec.task_runner())
    t2 = time.perf_counter()

    assert sorted(r.status for r in serial) == sorted(r.status for r in parallel)
    assert {r.status for r in parallel} == {"added", "failed"}
    cat1, cat2 = _catalogue(one), _catalogue(two)
    assert cat1 == cat2
    assert sorted(n for n, row in cat2.items() if row[0] == "failed") == ["short.wav", "text.wav"]
    s1, s2 = FeatureStore(one.features_dir), FeatureStore(two.features_dir)
    assert sorted(s1.hashes()) == sorted(s2.hashes())
    for h in s1.hashes():
        assert np.array_equal(s1.get(h), s2.get(h))
    print(f"ingest of {len(serial)} files: 1 thread {t1 - t0:.1f} s, local Dask cluster of 2 processes "
          f"{t2 - t1:.1f} s (includes starting the cluster)")


@pytest.mark.timeout(900)
def test_tasks_run_in_the_dask_worker_processes(prefect_harness: str, folder: Path, tmp_path: Path) -> None:
    """The ingest task executes in worker processes (not in the flow's), which write the features."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from audiosim.ingest import ingest as lib
    from audiosim.store.home import DataHome

    home = DataHome(tmp_path / "home")
    lib.prepare(home)

    @task(cache_policy=NO_CACHE, persist_result=False)
    def ingest_and_pid(path: str, root: str) -> tuple[int, str]:
        return os.getpid(), lib.ingest_file(path, root).status

    @flow(task_runner=RunnerSpec(workers=2).task_runner(), persist_result=False)
    def fan_out(paths: list[str], root: str) -> list[tuple[int, str]]:
        return [f.result() for f in ingest_and_pid.map(paths, root)]

    files = sorted(str(p) for p in folder.glob("0*.wav"))
    out = fan_out(files, str(home.root))
    pids = {pid for pid, _ in out}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2
    assert [s for _, s in out] == ["added"] * len(files)


def test_batches_and_one_torch_thread() -> None:
    import torch

    from audiosim.runners import batch_size, batches, one_torch_thread

    assert RunnerSpec().batch_size(1000) == 1  # threads: one file per task
    assert RunnerSpec(workers=2).batch_size(40) == 5  # Dask: about 4 tasks per worker
    assert RunnerSpec(workers=2).batch_size(3) == 1 and batch_size(10**6, 2) == 32
    assert batches(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    before = torch.get_num_threads()
    with one_torch_thread():
        with one_torch_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1  # the outer block still holds it
    assert torch.get_num_threads() == before


@pytest.mark.timeout(1500)
def test_dask_built_index_answers_like_a_single_process_one(prefect_harness: str, tmp_path: Path) -> None:
    """Embedding fans out as batches of tracks on 2 worker processes; the index answers the same."""
    from index_support import CFG, answers, clips_of, make_home

    from audiosim.demo.songbook import write_songbook
    from audiosim.fingerprint import embed as I
    from flows.index import run_index

    songs = write_songbook(tmp_path / "songs", n=5, seconds=20.0, sample_rate=8000, seed=11)
    model = Path(__file__).resolve().parents[2] / "models" / "fingerprint.pt"
    one = make_home(tmp_path / "one", songs, 5)
    two = make_home(tmp_path / "two", songs, 5)
    [r1] = run_index(home=one, model=model, config=CFG, calibrate=False)
    spec = RunnerSpec(workers=2)
    [r2] = run_index(spec.task_runner(), home=two, model=model, config=CFG, calibrate=False,
                     workers=spec.in_flight(), batch_size=2)
    assert r1.added_tracks == r2.added_tracks == 5 and r1.items == r2.items
    assert r2.embed_seconds == 0.0  # every track came embedded from the workers
    assert not (two / "cache" / I.EMBEDDINGS).exists() or not any((two / "cache" / I.EMBEDDINGS).rglob("*.npz"))
    clips = clips_of(songs, starts=(3.3, 11.2))
    assert answers(one, model, clips) == answers(two, model, clips)
