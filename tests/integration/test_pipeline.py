"""The pipeline flow (ingest -> [retrain] -> index -> [report]) and its retrain decision.

The pipeline runs in this process against the session's Prefect test server,
with an untrained encoder (indexing needs one; match quality is not tested
here) and without threshold calibration, to stay quick.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows import pipeline as P


def _random_model(path: Path, score: float | None = None, seed: int = 0) -> Path:
    import torch

    from audiosim.fingerprint.model import Encoder, save_encoder

    torch.manual_seed(seed)
    card = {"note": "untrained, for tests"}
    if score is not None:
        card["validation"] = {"step": 1, "mixed-1s": score, "mixed-5s": score}
    save_encoder(Encoder(), path, card)
    return path


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert arts, f"no artifact {key}"
    return max(arts, key=lambda a: a.created).data


@pytest.fixture
def music(tmp_path: Path) -> list[Path]:
    from audiosim.demo.songbook import write_songbook

    return sorted(write_songbook(tmp_path / "music", n=3, seconds=6))


@pytest.mark.timeout(1200)
def test_only_new_or_changed_files_do_work(prefect_harness: str, tmp_path: Path, music: list[Path], home) -> None:
    from audiosim.demo.songbook import write_songbook
    from audiosim.index.manifest import Manifest

    model = str(_random_model(tmp_path / "model.pt"))
    folder = [str(music[0].parent)]
    run = lambda: P.pipeline_flow(folder, home=str(home.root), model=model, calibrate=False)  # noqa: E731

    first = run()
    assert first["ingest"] == {"added": 3, "updated": 0, "skipped": 0, "failed": 0}
    assert [(s["action"], s["added_tracks"]) for s in first["index"]] == [("update", 3)]
    assert first["train"] is None and first["report"] is None
    assert "3 added" in _artifact("pipeline-summary")

    again = run()  # nothing changed: nothing is decoded, nothing embedded or published
    assert again["ingest"] == {"added": 0, "updated": 0, "skipped": 3, "failed": 0}
    assert [s["action"] for s in again["index"]] == ["nothing"]
    assert again["index"][0]["generation"] == first["index"][0]["generation"]

    changed = write_songbook(tmp_path / "other", n=2, seconds=6, seed=5)
    shutil.copyfile(changed[0], music[1])  # new content for an existing file
    shutil.copyfile(changed[1], music[0].parent / "04-new.wav")
    third = run()
    assert third["ingest"] == {"added": 1, "updated": 1, "skipped": 2, "failed": 0}
    step = third["index"][0]
    assert (step["action"], step["added_tracks"], step["tombstoned_tracks"], step["shards"]) == ("update", 2, 1, 2)
    assert len(Manifest.load(home.index_dir).live_tracks()) == 4


def test_report_stage_runs_only_with_a_playlist(prefect_harness: str, tmp_path: Path, music: list[Path], home,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(P, "report_flow", lambda playlist, home: calls.append((playlist, home)) or "report.html")
    monkeypatch.setattr(P, "run_index", lambda task_runner, **kw: calls.append(("index", kw["home"])) or [])
    folder = [str(music[0].parent)]
    out = P.pipeline_flow(folder, home=str(home.root))
    assert out["report"] is None and calls == [("index", str(home.root))]
    out = P.pipeline_flow(folder, home=str(home.root), index=False, playlist="road-trip.m3u")
    assert out["report"] == "report.html"
    assert calls[-1] == ("road-trip.m3u", str(home.root))


@pytest.mark.timeout(1200)
def test_pipeline_with_a_playlist_writes_the_report(prefect_harness: str, tmp_path: Path, home) -> None:
    from audiosim.demo.songbook import write_songbook
    from audiosim.similarity.model import DEFAULT_SIMILARITY_MODEL

    if not DEFAULT_SIMILARITY_MODEL.is_file():
        pytest.skip(f"the report needs the song-similarity model {DEFAULT_SIMILARITY_MODEL}")
    songs = write_songbook(tmp_path / "music", n=4, seconds=8)
    playlist = tmp_path / "mix.m3u"
    playlist.write_text("\n".join(str(p) for p in songs[:3]) + "\n")
    out = P.pipeline_flow([str(songs[0].parent)], home=str(home.root), index=False, playlist=str(playlist))
    assert out["ingest"]["added"] == 4
    assert Path(out["report"]).is_file()


# --------------------------------------------------------------------------
# Retrain: promote only a better model
# --------------------------------------------------------------------------


def test_promote_replaces_model_and_card_atomically(tmp_path: Path) -> None:
    cand = _random_model(tmp_path / "cand.pt", 0.9, seed=1)
    cur = _random_model(tmp_path / "cur.pt", 0.5, seed=2)
    P.promote_model_task.fn(str(cand), str(cur))
    assert cur.read_bytes() == cand.read_bytes()
    assert cur.with_suffix(".json").read_text() == cand.with_suffix(".json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cand.json", "cand.pt", "cur.json", "cur.pt"]


@pytest.mark.parametrize("candidate_score,promoted", [(0.9, True), (0.3, False)])
def test_retrain_promotes_only_a_better_candidate(prefect_harness: str, tmp_path: Path, home, candidate_score: float,
                                                  promoted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow

    current = _random_model(tmp_path / "models" / "fingerprint.pt", 0.5, seed=2)
    before = current.read_bytes()

    @flow(name="train-fingerprint")
    def fake_train(home: str, out: str, noise: list, resume: bool, steps: int | None = None) -> dict:
        _random_model(Path(out), candidate_score, seed=3)
        return {}

    monkeypatch.setattr(P, "train_flow", fake_train)
    decision = P.retrain_flow(home=str(home.root), model=str(current), steps=1)
    assert decision["promoted"] is promoted
    assert decision["candidate_score"] == pytest.approx(candidate_score)
    assert decision["current_score"] == pytest.approx(0.5)
    assert decision["method"].startswith("validation scores recorded")  # no catalogue: no held-out tracks
    candidate = Path(decision["candidate"])
    assert candidate.parent == current.parent / "candidates"
    if promoted:
        assert current.read_bytes() == candidate.read_bytes()
    else:
        assert current.read_bytes() == before
    assert ("promoted" if promoted else "kept") in _artifact("retrain-decision")


def test_cli_gives_the_temporary_prefect_server_ten_minutes_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from audiosim.cli import main as cli

    name = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    monkeypatch.setenv(name, "placeholder")  # so that teardown restores the original state
    monkeypatch.delenv(name)
    cli._prefect_env_defaults()
    assert os.environ[name] == "600"
    monkeypatch.setenv(name, "45")
    cli._prefect_env_defaults()
    assert os.environ[name] == "45"  # the user's setting wins


@pytest.mark.timeout(1200)
def test_workers_share_one_local_cluster_for_ingest_and_index(prefect_harness: str, tmp_path: Path,
                                                              music: list[Path], home,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``workers=2`` ingest and index run on the same local Dask cluster (started once)."""
    from distributed.deploy.spec import SpecCluster

    started: list[str] = []
    init = SpecCluster.__init__

    def counting_init(self, *a, **kw):  # every local cluster, however it is imported
        started.append(type(self).__name__)
        init(self, *a, **kw)

    monkeypatch.setattr(SpecCluster, "__init__", counting_init)
    model = str(_random_model(tmp_path / "model.pt"))
    out = P.pipeline_flow([str(music[0].parent)], home=str(home.root), model=model, calibrate=False, workers=2)
    assert out["ingest"] == {"added": 3, "updated": 0, "skipped": 0, "failed": 0}
    assert [(s["action"], s["added_tracks"]) for s in out["index"]] == [("update", 3)]
    assert len(started) == 1, started
    assert "local Dask cluster of 2 worker processes" in out["runner"]
