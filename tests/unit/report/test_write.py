"""Writing a report: HTML, CSV tables and the Markdown summary, with untrusted text neutralised."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_support import FORMULA_TAG, SCRIPT_TITLE, synthetic_report

from audiosim.format import CSV_FORMULA_START
from audiosim.report.write import (
    CSV_TABLES,
    csv_text,
    markdown_table,
    summary_markdown,
    write_report,
)

PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _cells(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return [cell for row in csv.reader(f) for cell in row]


def _assert_no_formula_cells(path: Path) -> None:
    for cell in _cells(path):
        assert not cell.startswith(CSV_FORMULA_START) or PLAIN_NUMBER.fullmatch(cell), (path.name, cell)


def test_csv_text_neutralises_formulas_and_keeps_numbers():
    df = pd.DataFrame({"title": [FORMULA_TAG, "+1 more", "@me", "\tTab", "-3.5", "calm", None],
                       "loudness_db": [-11.0, -2.5, 0.0, 1.0, 2.0, 3.0, np.nan],
                       "outlier": [True, False, False, False, False, False, False]})
    rows = list(csv.reader(csv_text(df).splitlines()))
    assert rows[0] == ["title", "loudness_db", "outlier"]
    assert [r[0] for r in rows[1:]] == ["'" + FORMULA_TAG, "'+1 more", "'@me", "'\tTab", "-3.5", "calm", ""]
    assert [r[1] for r in rows[1:]] == ["-11.0", "-2.5", "0.0", "1.0", "2.0", "3.0", ""]
    assert df.loc[0, "title"] == FORMULA_TAG  # the report's own table is left as it is


def test_csv_text_neutralises_row_and_column_labels():
    sim = pd.DataFrame([[1.0, -0.5], [-0.5, 1.0]], index=["1. a", "=cmd"], columns=["1. a", "=cmd"])
    rows = list(csv.reader(csv_text(sim, index=True).splitlines()))
    assert rows[0] == ["", "1. a", "'=cmd"] and rows[2] == ["'=cmd", "-0.5", "1.0"]


def test_csv_numbers_are_rounded_to_what_they_can_tell_apart():
    df = pd.DataFrame({"similarity": [1.0000000000000002, 0.123456], "closest_similarity": [0.98765, np.nan],
                       "duration": [181.23456, 59.96], "tempo_bpm": [119.6, np.nan], "loudness_db": [-12.345, -3.0],
                       "position": [1.0, np.nan], "valence": [0.123456, -0.5], "other": [0.333333333, 2.0]})
    rows = list(csv.reader(csv_text(df).splitlines()))
    assert rows[1] == ["1.0", "0.988", "181.2", "120", "-12.3", "1", "0.123", "0.333"]
    assert rows[2] == ["0.123", "", "60.0", "", "-3.0", "", "-0.5", "2.0"]
    assert df.loc[0, "similarity"] == 1.0000000000000002  # the report's own table is left as it is


def test_similarity_matrix_csv_keeps_three_decimals():
    sim = pd.DataFrame([[1.0000000000000002, 0.876543], [0.876543, 0.9999999999999998]], index=["1. a", "2. b"],
                       columns=["1. a", "2. b"])
    assert csv_text(sim, index=True).splitlines()[1:] == ["1. a,1.0,0.877", "2. b,0.877,1.0"]


def test_markdown_table_escapes_text_but_not_numbers():
    df = pd.DataFrame({"title": [SCRIPT_TITLE, "a | b"], "n": [-3, 4], "x": [-0.1234, np.nan]})
    md = markdown_table(df)
    assert md.splitlines() == ["| title | n | x |", "|---|---:|---:|",
                               "| &lt;script&gt;alert(1)&lt;/script&gt; | -3 | -0.123 |", "| a \\| b | 4 |  |"]


def test_summary_renders_hostile_titles_literally():
    r = synthetic_report([SCRIPT_TITLE, FORMULA_TAG, "*bold*", "[link](http://x)", "five", "six"])
    r.home = "/data/`tick`"
    md = summary_markdown(r)
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "\\*bold\\*" in md and "\\[link\\](http://x)" in md
    assert "| =HYPERLINK" not in md and "| \\=HYPERLINK" in md
    assert "data home `` /data/`tick` ``" in md


def test_write_report_writes_every_table_and_the_summary(tmp_path):
    r = synthetic_report([SCRIPT_TITLE, FORMULA_TAG, "three", "four", "five", "six"])
    html = write_report(r, tmp_path / "out", figures={})
    assert html == tmp_path / "out" / "report.html" and html.is_file()
    for name in (*CSV_TABLES, "summary.md"):
        assert (tmp_path / "out" / name).is_file(), name
    for name in CSV_TABLES:
        _assert_no_formula_cells(tmp_path / "out" / name)
    assert (tmp_path / "out" / "summary.md").read_text() == summary_markdown(r)
    tracks = pd.read_csv(tmp_path / "out" / "tracks.csv")
    assert tracks["position"].tolist() == [1, 2, 3, 4, 5, 6] and tracks["loudness_db"].lt(0).all()
    assert tracks.loc[1, "title"] == "'" + FORMULA_TAG and tracks.loc[0, "title"] == SCRIPT_TITLE
    for name in CSV_TABLES:  # no float noise such as 1.0000000000000002 anywhere
        assert not re.search(r"\.\d{5,}", (tmp_path / "out" / name).read_text()), name


@pytest.mark.slow
def test_report_end_to_end(lib, mix_report, tmp_path):
    r = mix_report
    html = write_report(r, tmp_path / "out")
    text = html.read_text()
    for section in ("Cohesion", "Similarity", "Outliers", "Map of the catalogue", "Moods", "Tempo and energy arc",
                    "Suggested order", "Suggested additions", "Not analysed (1)"):
        assert section.lower() in text.lower(), section
    assert text.count("data:image/png;base64,") == 4 and "http://" not in text and "https://" not in text
    for name in ("tracks.csv", "pairs.csv", "similarity.csv", "suggested_order.csv", "suggested_additions.csv",
                 "entries.csv", "summary.md"):
        assert (tmp_path / "out" / name).is_file(), name
    assert pd.read_csv(tmp_path / "out" / "tracks.csv")["position"].tolist() == [1, 2, 3, 4, 5, 7]
    assert "Cohesion" in summary_markdown(r)
    default = write_report(r)
    assert default == Path(lib.home) / "reports" / "mix" / "report.html"


@pytest.mark.slow
def test_hostile_tags_are_neutralised_in_summary_csv_and_html(hostile_report, tmp_path):
    """A title ``<script>...`` and ``=HYPERLINK(...)`` tags, read from the files' tags, stay inert everywhere."""
    html = write_report(hostile_report, tmp_path / "out", figures={}).read_text()
    assert SCRIPT_TITLE in set(hostile_report.tracks["title"]) and FORMULA_TAG in set(hostile_report.tracks["title"])
    assert "<script" not in html and "<a " not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "<script" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    for name in CSV_TABLES:
        _assert_no_formula_cells(tmp_path / "out" / name)
    cells = _cells(tmp_path / "out" / "tracks.csv")
    assert "'" + FORMULA_TAG in cells and "'@SUM(A1:A9)" in cells
