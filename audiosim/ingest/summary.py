"""What an ingest run did, for people: a Markdown summary and a table of the files that changed.

The ingest flow publishes both as Prefect artifacts (``ingest-summary`` and
``ingest-results``); they are built here so that the flow only publishes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from audiosim.ingest.ingest import IngestResult, PruneResult, count_statuses

MAX_TABLE_ROWS = 5000
"""Rows of the results table (skipped files are not listed, only counted)."""


def summary_markdown(
    results: Sequence[IngestResult], home: str | Path, wall_seconds: float, pruned: PruneResult | None = None
) -> str:
    """Markdown summary of an ingest: counts, audio hours, failures by reason, what was pruned."""
    counts = count_statuses(results)
    hours = sum(r.duration or 0.0 for r in results if r.status != "failed") / 3600
    lines = [
        "# Ingest summary",
        "",
        f"Data home: `{home}`",
        "",
        "| files | added | updated | skipped | failed | audio hours | wall seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(results)} | {counts['added']} | {counts['updated']} | {counts['skipped']} "
        f"| {counts['failed']} | {hours:.2f} | {wall_seconds:.1f} |",
    ]
    reasons = Counter(r.reason for r in results if r.status == "failed")
    if reasons:
        lines += ["", "## Failures by reason", "", "| reason | files |", "|---|---:|"]
        lines += [f"| {reason} | {n} |" for reason, n in reasons.most_common()]
        lines += ["", "Run `audiosim catalog --failed` for the files and details."]
    if pruned is not None:
        lines += ["", "## Pruned (files deleted)", "", pruned.describe().replace("\n", "  \n")]
        lines += [f"- `{path}` (track {tid})" for tid, path in pruned.pruned[:MAX_TABLE_ROWS]]
    return "\n".join(lines) + "\n"


def results_table(results: Sequence[IngestResult]) -> tuple[list[dict[str, Any]], str]:
    """The files added, updated or failed (failed first), at most :data:`MAX_TABLE_ROWS`.

    Returns
    -------
    (list of dict, str)
        The rows (the fields of :class:`IngestResult`, seconds rounded to
        milliseconds) and a description saying whether rows were left out.
    """
    order = {"failed": 0, "updated": 1, "added": 2}
    rows = sorted((r for r in results if r.status != "skipped"), key=lambda r: (order[r.status], r.path))
    table = [
        {k: v for k, v in r.to_dict().items() if k != "seconds"} | {"seconds": round(r.seconds, 3)}
        for r in rows[:MAX_TABLE_ROWS]
    ]
    more = f" (first {MAX_TABLE_ROWS} of {len(rows)})" if len(rows) > MAX_TABLE_ROWS else ""
    return table, f"Files added, updated or failed{more}; skipped files are only counted in ingest-summary."
