"""``audiosim ingest``: progress through the one helper (a bar in a terminal, a stage line otherwise)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import flows.ingest
from audiosim.cli import main as cli
from audiosim.ingest.ingest import IngestResult


@pytest.fixture()
def fake_ingest(monkeypatch: pytest.MonkeyPatch):
    """``run_ingest`` replaced by one that reports a result per file, the second one failed (no Prefect, no audio)."""
    def run_ingest(paths, home=None, workers=1, task_runner=None, progress=None, **kwargs):
        files = sorted(p for p in Path(paths[0]).iterdir())
        results = [IngestResult(path=str(p), status="failed" if i == 1 else "added", track_id=i + 1,
                                reason="decode" if i == 1 else None) for i, p in enumerate(files)]
        for r in results:
            progress(r)
        return results

    monkeypatch.setattr(flows.ingest, "run_ingest", run_ingest)


@pytest.fixture()
def music(tmp_path: Path) -> Path:
    folder = tmp_path / "music"
    folder.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        (folder / name).write_bytes(b"RIFF")
    return folder


def test_ingest_without_a_terminal_ends_with_a_stage_line_counting_files_and_failures(
        fake_ingest, music: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["ingest", str(music), "--home", str(tmp_path / "home")]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert any(line.startswith("ingest: 3 files in ") and line.endswith(" (failed 1)") for line in lines), err
    assert "2 added, 0 updated, 0 skipped, 1 failed" in out


def test_ingest_in_a_terminal_draws_a_bar_with_the_failed_count(
        fake_ingest, music: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    assert cli.main(["ingest", str(music), "--home", str(tmp_path / "home")]) == 1
    text = term.getvalue()
    assert "ingest" in text and "3/3" in text and "failed=1" in text


def test_quiet_ingest_shows_no_progress(fake_ingest, music: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["ingest", str(music), "--home", str(tmp_path / "home"), "--quiet"]) == 1
    assert "ingest:" not in capsys.readouterr().err
