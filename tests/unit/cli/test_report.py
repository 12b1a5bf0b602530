"""``audiosim report --format``: the summary for people, one row per playlist entry for programs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from report_support import synthetic_report

from audiosim.cli import main as cli
from audiosim.cli.report import ANALYSED, ROW_COLUMNS, rows_from_folder, track_rows
from audiosim.report.write import write_report
from audiosim.store.home import DataHome

TITLES = ["Alpha", "Beta", "Gamma", "Delta"]


@pytest.fixture()
def written(tmp_path: Path):
    """A synthetic report (four songs analysed, one entry missing) written without figures."""
    report = synthetic_report(TITLES)
    return report, write_report(report, tmp_path / "out", figures={})


@pytest.mark.slow
def test_rows_have_one_row_per_playlist_entry_with_status_reason_and_written_paths(written) -> None:
    report, html = written
    rows = track_rows(report.entries, report.tracks, html, report.descriptor_errors)
    assert [r["position"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(set(r) <= set(ROW_COLUMNS) for r in rows)
    assert [r["status"] for r in rows] == [ANALYSED] * 4 + ["missing"]
    assert rows[-1]["reason"] == "no such file" and rows[-1]["id"] is None
    assert [r["title"] for r in rows[:4]] == TITLES and rows[0]["outlier"] is True and rows[1]["outlier"] is False
    assert all(r["reason"] is None for r in rows[:4])
    assert all(r["report"] == str(html) and r["folder"] == str(html.parent) for r in rows)
    assert html.is_file() and (html.parent / "entries.csv").is_file()


def test_a_catalogue_track_whose_analysis_failed_is_not_analysed_with_the_reason(written) -> None:
    report, html = written
    tracks = report.tracks[report.tracks["position"] != 4]  # song 4 dropped out of the analysis
    rows = track_rows(report.entries, tracks, html, {4: "could not decode Delta"})
    assert rows[3]["status"] == "not-analysed" and rows[3]["reason"] == "could not decode Delta"


def test_rows_read_back_from_the_written_tables_are_the_same(written) -> None:
    """``--flow`` only returns the report's path: its rows come from the CSV tables beside it."""
    report, html = written
    direct = track_rows(report.entries, report.tracks, html)
    again = rows_from_folder(html)
    keys = ("position", "entry", "id", "title", "status", "reason", "closest", "outlier", "report", "folder")
    assert [{k: r.get(k) for k in keys} for r in again] == [{k: r.get(k) for k in keys} for r in direct]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_cli_report_format_prints_the_track_table_instead_of_the_summary(
        fmt: str, written, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import audiosim.cli.song_model
    import audiosim.report.analysis
    import audiosim.report.write

    report, _ = written
    home = tmp_path / "home"
    monkeypatch.setattr(audiosim.cli.song_model, "load_song_model", lambda args: None)
    monkeypatch.setattr(audiosim.report.analysis, "build_report", lambda *a, **k: report)
    monkeypatch.setattr(audiosim.report.write, "draw_all", lambda r: {})
    playlist = tmp_path / "list.m3u"
    playlist.write_text("/music/1.flac\n")
    catalog = DataHome(home).catalog_path
    catalog.parent.mkdir(parents=True, exist_ok=True)
    catalog.touch()
    out = tmp_path / "report"
    assert cli.main(["report", str(playlist), "--home", str(home), "--out", str(out), "--format", fmt]) == 0
    text = capsys.readouterr().out
    rows = json.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
    assert [r["status"] for r in rows] == [ANALYSED] * 4 + ["missing"]
    assert list(rows[0]) == list(ROW_COLUMNS)
    assert rows[0]["report"] == str(out / "report.html") and (out / "report.html").is_file()
    assert cli.main(["report", str(playlist), "--home", str(home), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in table and "5 songs analysed" not in table
    assert "4 songs analysed, 1 not analysed, 1 outlier(s)" in table


def test_cli_report_help_describes_the_formats(capsys) -> None:
    assert cli.main(["report", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--format {table,csv,json}" in out and "one row per playlist entry" in out
