"""Tests of audiosim.cli.identify without an index: rows that say what happened, and latency figures."""

from __future__ import annotations

import math

from audiosim.cli.identify import (
    MATCH_COLUMNS,
    match_row,
    percentile_ms,
    summary_line,
    timing_table,
)
from audiosim.match.matcher import Match
from audiosim.signal.audio import AudioError


def _answers() -> list[Match]:
    return [
        Match("a.wav", "matched", track_id=3, offset=1.23456, score=30.12345, threshold=19.6, candidate_track_id=3,
              seconds=0.035, decode_seconds=0.005),
        Match("b.wav", "no-match", "below-threshold", score=10.0, threshold=19.6, candidate_track_id=5,
              seconds=0.050, decode_seconds=0.010),
        Match.failed(AudioError("c.wav", "too-short", "0.30 s"), 0.002),
    ]


def test_every_row_has_the_columns_in_order_and_rounded_numbers() -> None:
    rows = [match_row(r) for r in _answers()]
    assert all(set(MATCH_COLUMNS) <= set(r) for r in rows)
    assert rows[0]["offset"] == 1.23 and rows[0]["score"] == 30.123 and rows[0]["matched"] is True
    assert rows[1]["track_id"] is None and rows[1]["candidate_track_id"] == 5
    assert (rows[2]["status"], rows[2]["reason"], rows[2]["score"], rows[2]["threshold"]) == (
        "error", "too-short", None, None)


def test_the_summary_line_counts_the_clips_and_gives_lookup_percentiles_without_decoding() -> None:
    line = summary_line(_answers(), 1)
    assert line == "identify: 3 clips: 1 matched, 1 no-match, 1 error; lookup median 35 ms, p95 40 ms (1 torch thread)"
    assert summary_line(_answers()[2:], None) == "identify: 1 clip: 0 matched, 0 no-match, 1 error"


def test_the_timing_table_has_percentiles_of_lookup_decode_and_total() -> None:
    table = timing_table(_answers())
    header, *rows = table.splitlines()
    assert header.split() == ["time", "(ms)", "clips", "min", "median", "p90", "p95", "p99", "max", "mean"]
    assert [r.split()[0] for r in rows] == ["lookup", "decode", "total"]
    assert math.isnan(percentile_ms([], 50)) and percentile_ms([0.01, 0.03], 50) == 20.0
