"""The one writer of listings: aligned table, CSV and JSON, with durations for people."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from audiosim.cli.output import write_rows
from audiosim.format import duration


def _written(*args, **kwargs) -> str:
    out = io.StringIO()
    write_rows(*args, out=out, **kwargs)
    return out.getvalue()


ROWS = [{"title": "Élan", "seconds": 75.4, "score": 0.5}, {"title": "B", "seconds": 3725.0, "score": 0.912}]


def test_json_is_a_list_of_records_in_utf8_indented() -> None:
    text = _written(ROWS, "json", columns=["title", "seconds", "score"])
    assert json.loads(text) == ROWS
    assert "Élan" in text and text.startswith("[\n  {") and text.endswith("]\n")


def test_json_writes_timestamps_in_iso_8601_and_the_index_as_a_field() -> None:
    df = pd.DataFrame({"added_at": pd.to_datetime(["2024-05-01T12:00:00Z"])}, index=pd.Index([7], name="id"))
    assert json.loads(_written(df, "json", index=True)) == [{"id": 7, "added_at": "2024-05-01T12:00:00.000Z"}]


def test_csv_has_a_header_and_the_index_only_when_asked() -> None:
    df = pd.DataFrame({"a": [1, 2]}, index=pd.Index([5, 6], name="id"))
    assert _written(df, "csv") == "a\n1\n2\n"
    assert _written(df, "csv", index=True) == "id,a\n5,1\n6,2\n"


def test_rows_may_leave_out_columns_which_are_then_missing() -> None:
    text = _written([{"clip": "x.wav", "matched": False}], "csv", columns=["clip", "track_id", "matched"])
    assert text == "clip,track_id,matched\nx.wav,,False\n"


def test_the_table_shows_missing_values_blank_and_formats_only_its_own_cells() -> None:
    df = pd.DataFrame({"title": ["A", None], "duration": [75.4, float("nan")]})
    table = _written(df, "table", table_formats={"duration": duration})
    assert table.splitlines() == ["title duration", "    A     1:15", " " * 14]
    assert json.loads(_written(df, "json"))[0]["duration"] == 75.4  # csv and json keep the values


def test_the_table_formats_numeric_columns_as_a_whole_unless_cells_are_plain() -> None:
    df = pd.DataFrame(ROWS)
    assert "0.500" in _written(df, "table")
    plain = _written(df, "table", plain_cells=True)
    assert " 0.5\n" in plain and "0.500" not in plain


def test_the_table_shows_every_row_and_every_cell_in_full() -> None:
    df = pd.DataFrame({"path": ["/music/" + "x" * 100] * 200})
    with pd.option_context("display.max_rows", 10, "display.max_colwidth", 20):
        lines = _written(df, "table").splitlines()
    assert len(lines) == 201 and lines[1].endswith("x" * 100)


def test_durations_read_as_minutes_and_seconds_or_hours() -> None:
    assert [duration(s) for s in (75.4, 3725, float("nan"), None)] == ["1:15", "1:02:05", "", ""]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown output format 'xml'"):
        _written(ROWS, "xml")


def test_csv_and_json_write_timestamps_in_the_same_iso_8601_form() -> None:
    df = pd.DataFrame({"added_at": pd.to_datetime(["2024-05-01T12:00:00.123456Z", None], utc=True)},
                      index=pd.Index([7, 8], name="id"))
    records = json.loads(_written(df, "json", index=True))
    assert records == [{"id": 7, "added_at": "2024-05-01T12:00:00.123Z"}, {"id": 8, "added_at": None}]
    assert _written(df, "csv", index=True) == "id,added_at\n7,2024-05-01T12:00:00.123Z\n8,\n"


def test_the_table_writes_its_index_as_the_first_column_under_one_header_line() -> None:
    df = pd.DataFrame({"title": ["A", "Bee"]}, index=pd.Index([5, 16], name="id"))
    assert _written(df, "table", index=True).splitlines() == [" id title", "  5     A", " 16   Bee"]
