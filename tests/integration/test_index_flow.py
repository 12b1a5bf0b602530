"""The index flow (Prefect): update, compact, calibrate, report as artifacts."""

from __future__ import annotations

from pathlib import Path

from index_support import CFG, make_home, models, songs  # noqa: E402,F401 (fixtures)

from audiosim.index import manifest as M
from audiosim.index import writer as IB
from audiosim.ingest.ingest import ingest_many
from audiosim.store.home import DataHome


def test_index_flow_updates_compacts_and_reports(prefect_harness, tmp_path: Path, songs, models) -> None:
    from prefect.artifacts import Artifact

    from flows.index import index_flow

    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG)
    ingest_many(songs[3:5], home)
    results = index_flow(home=home, model=models[0], compact=True, calibrate=True)
    assert [r.action for r in results] == ["update", "compact"]
    assert results[0].added_tracks == 2 and results[0].calibrated
    man = M.Manifest.load(DataHome(home).index_dir)
    assert len(man.shards) == 1 and man.calibration is not None
    summary = Artifact.get("index-summary")
    assert summary is not None and "compact" in str(summary.data)
    assert Artifact.get("index-thresholds") is not None



def test_index_flow_calibrates_on_absent_music_when_given(prefect_harness, tmp_path: Path, songs, models) -> None:
    from flows.index import run_index

    home = make_home(tmp_path, songs, 4)
    results = run_index(home=home, model=models[0], config=CFG, absent=[str(p) for p in songs[6:8]])
    assert [r.action for r in results] == ["update"] and not results[0].calibrated  # no leave-one-out
    man = M.Manifest.load(DataHome(home).index_dir)
    assert man.calibration is not None and man.calibration.is_current()
    assert man.calibration.method == "absent-music" and man.calibration.tracks == 2
    assert man.calibration.generation == man.generation and man.generation == results[0].generation + 1
