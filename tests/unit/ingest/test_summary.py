"""The summary and results table an ingest run publishes."""

from __future__ import annotations

from audiosim.ingest import summary
from audiosim.ingest.ingest import IngestResult, PruneResult


def _results() -> list[IngestResult]:
    return [
        IngestResult("/m/a.wav", "added", 1, duration=1800.0, seconds=0.12345),
        IngestResult("/m/b.wav", "skipped", 2, duration=1800.0),
        IngestResult("/m/c.wav", "failed", 3, "silence", "all samples are zero"),
        IngestResult("/m/d.wav", "updated", 4, "moved", "moved from /old/d.wav", 60.0),
    ]


def test_summary_counts_statuses_hours_and_failures_by_reason():
    md = summary.summary_markdown(_results(), "/home", 2.0)
    assert "| 4 | 1 | 1 | 1 | 1 | 1.02 | 2.0 |" in md
    assert "| silence | 1 |" in md and "audiosim catalog --failed" in md
    assert "Pruned" not in md


def test_summary_lists_what_was_pruned():
    pruned = PruneResult(pruned=((7, "/m/gone.wav"),), roots=("/m",))
    md = summary.summary_markdown([], "/home", 0.0, pruned)
    assert "## Pruned (files deleted)" in md and "- `/m/gone.wav` (track 7)" in md


def test_results_table_lists_changes_failed_first_without_skipped(monkeypatch):
    table, description = summary.results_table(_results())
    assert [r["path"] for r in table] == ["/m/c.wav", "/m/d.wav", "/m/a.wav"]
    assert table[2]["seconds"] == 0.123 and "first" not in description
    monkeypatch.setattr(summary, "MAX_TABLE_ROWS", 2)
    table, description = summary.results_table(_results())
    assert len(table) == 2 and "(first 2 of 3)" in description
