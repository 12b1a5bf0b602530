"""``audiosim index`` as a command: its checks, and calibrating on absent music inside the flow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from index_support import CFG, make_home, models, songs  # noqa: F401 (fixtures)

from audiosim.cli.main import main
from audiosim.index import writer as IB
from audiosim.index.manifest import Manifest
from audiosim.store.home import DataHome


@pytest.fixture
def catalogue(tmp_path: Path, songs) -> Path:  # noqa: F811
    return make_home(tmp_path, songs, 4)


@pytest.mark.parametrize(("options", "message"), [
    (["--speeds", "fast"], "--speeds takes numbers separated by commas, like 0.95,1,1.05, not 'fast'"),
    (["--speeds", "0.3"], "--speeds must be between 0.5 and 2, not '0.3'"),
    (["--max-false-match", "1.5"], "--max-false-match must be in [0, 1), not 1.5"),
    (["--model", "nowhere.pt"], "nowhere.pt: no such model checkpoint"),
    (["--dask", " "], "--workers/--dask: "),
])
def test_bad_options_are_usage_errors_before_any_work(catalogue: Path, options: list[str], message: str,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["index", "--home", str(catalogue), *options]) == 2
    assert capsys.readouterr().err.startswith(f"audiosim index: error: {message}")
    assert not DataHome(catalogue).index_dir.joinpath("manifest.json").exists()


def test_a_home_without_catalogue_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["index", "--home", str(tmp_path)]) == 2
    assert f"no catalogue in {tmp_path} (run `audiosim ingest --home {tmp_path}` first)" in capsys.readouterr().err


@pytest.mark.slow
def test_absent_music_calibrates_the_index_and_the_thresholds_are_printed(
        prefect_harness, catalogue: Path, songs, models, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    IB.update(catalogue, models[0], CFG)  # small calibration settings, kept by the command
    absent = [str(p) for p in songs[6:8]]
    assert main(["index", "--home", str(catalogue), "--model", str(models[0]), "--absent", *absent]) == 0
    out = capsys.readouterr().out
    assert out.startswith("index is up to date (generation 1, 1 shard(s), ")
    assert "thresholds (absent-music, at most 1.0% of absent clips match): 1 s > " in out
    cal = Manifest.load(DataHome(catalogue).index_dir).calibration
    assert cal is not None and cal.method == "absent-music" and cal.tracks == 2


@pytest.mark.slow
def test_unreadable_absent_music_is_a_usage_error(
        prefect_harness, catalogue: Path, models, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    IB.update(catalogue, models[0], CFG)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio")
    assert main(["index", "--home", str(catalogue), "--model", str(models[0]), "--absent", str(junk)]) == 2
    err = capsys.readouterr().err  # after Prefect's log of the failed task, as for any error inside a flow
    assert err.endswith("audiosim index: error: no absent-music file could be decoded\n")


@pytest.mark.slow
def test_without_a_terminal_each_long_step_prints_a_line_with_its_time(
        prefect_harness, catalogue: Path, songs, models, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    from audiosim.ingest.ingest import ingest_many

    IB.update(catalogue, models[0], CFG)  # small calibration settings, kept by the command
    assert all(r.status == "added" for r in ingest_many(songs[4:7], catalogue))
    assert main(["index", "--home", str(catalogue), "--model", str(models[0])]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^embedding: 3 tracks in \d+:\d\d$", err, re.M), err
    assert re.search(r"^calibration: 24 clips in \d+:\d\d$", err, re.M), err


def test_quiet_shows_no_progress(catalogue: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture) -> None:
    import audiosim.cli.index as command

    def fake_run_index(task_runner, progress, **kwargs):  # noqa: ANN001, ANN202
        progress("embed", {"done": 1, "total": 1})
        return []

    monkeypatch.setattr("flows.index.run_index", fake_run_index)
    monkeypatch.setattr(command, "print_thresholds", lambda *args, **kwargs: None)
    monkeypatch.setattr("audiosim.index.manifest.Manifest.load", staticmethod(lambda directory: None))
    assert main(["index", "--home", str(catalogue), "-q"]) == 0
    assert "embedding" not in capsys.readouterr().err
    assert main(["index", "--home", str(catalogue)]) == 0
    assert re.search(r"^embedding: 1 track in 0:00$", capsys.readouterr().err, re.M)
