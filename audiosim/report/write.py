"""Writing a playlist report: the HTML page, the tables as CSV and the summary as Markdown.

:func:`write_report` writes ``<home>/reports/<name>/report.html`` (one
self-contained file, figures embedded as PNG), the tables as CSV beside it
and ``summary.md``; :func:`summary_markdown` gives that summary (the CLI
prints its head, the Prefect flow ``flows/report.py`` publishes it as an
artifact).

Titles, tags, paths and playlist entries come from files nobody checked, so
every text cell goes through :func:`audiosim.format.csv_cell` (no
spreadsheet formulas) and every text in Markdown through
:func:`audiosim.format.markdown_text` or :func:`audiosim.format.markdown_code`
(rendered literally, no HTML).
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from audiosim.format import csv_cell, markdown_code, markdown_text
from audiosim.report.analysis import PlaylistReport, cohesion_sentence
from audiosim.report.figures import draw_all
from audiosim.report.html import render_html
from audiosim.store.atomic import atomic_write_text
from audiosim.store.home import DataHome

CSV_TABLES = {
    "tracks.csv": "tracks",
    "pairs.csv": "pairs",
    "similarity.csv": "similarity",
    "suggested_order.csv": "order",
    "suggested_additions.csv": "additions",
    "entries.csv": "entries",
    "catalogue_map.csv": "catalogue_map",
}
"""CSV file name -> the :class:`~audiosim.report.analysis.PlaylistReport` table it holds."""
CSV_WITH_INDEX = frozenset({"similarity.csv"})
"""The tables whose row labels are data (the similarity matrix's song labels)."""


CSV_DECIMALS: dict[str, int] = {
    "position": 0, "was": 0, "id": 0, "rank": 0,
    "duration": 1, "loudness_db": 1, "dynamic_range_db": 1,
    "tempo_bpm": 0, "centroid_hz": 0, "rolloff_hz": 0, "onset_rate": 2,
    "pulse_clarity": 3, "key_strength": 3, "mode_clarity": 3, "valence": 3, "arousal": 3,
    "x": 4, "y": 4,
}
"""Decimals a CSV keeps of each numeric column, what its measurement can tell apart:
seconds and decibels to 0.1, tempo to 1 BPM, frequencies to 1 Hz, scores to 0.001.
Columns with 0 decimals are written as whole numbers."""
CSV_SIMILARITY_DECIMALS = 3
"""Decimals of every similarity (a column whose name says ``similarity``, the similarity matrix)."""
CSV_DEFAULT_DECIMALS = 3
"""Decimals of any other float column (the similarity matrix's columns are song labels)."""


def csv_decimals(column: object) -> int:
    """Decimals :func:`csv_text` keeps of a float column named ``column``."""
    name = str(column)
    if name in CSV_DECIMALS:
        return CSV_DECIMALS[name]
    return CSV_SIMILARITY_DECIMALS if "similarity" in name else CSV_DEFAULT_DECIMALS


def csv_text(df: pd.DataFrame, index: bool = False) -> str:
    """A table as CSV text: floats rounded, every text cell and label neutralised.

    Float columns keep :func:`csv_decimals` decimals (so a similarity of
    ``1.0000000000000002`` is written ``1.0``; columns kept to 0 decimals are
    written as whole numbers, missing values empty); text cells and labels go
    through :func:`~audiosim.format.csv_cell`; booleans are written as they are.
    """
    safe = df.copy()  # a new frame: the report's table is left as it is
    for i, (column, dtype) in enumerate(zip(df.columns, df.dtypes)):
        if pd.api.types.is_float_dtype(dtype):
            digits = csv_decimals(column)
            rounded = safe.iloc[:, i].round(digits)
            whole = digits == 0 and not np.isinf(rounded.to_numpy()).any()
            safe.isetitem(i, rounded.astype("Int64") if whole else rounded)
        elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            safe.isetitem(i, safe.iloc[:, i].map(csv_cell))
    safe = safe.rename(columns=csv_cell)
    if index:
        safe = safe.rename(index=csv_cell)
    return safe.to_csv(index=index)


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (no index), text rendered literally.

    Numbers are written as numbers (floats to three significant digits,
    missing ones empty); every other cell and every header goes through
    :func:`~audiosim.format.markdown_text`, which also escapes ``|``.
    """

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.3g}"
        if isinstance(v, numbers.Number):
            return str(v)
        return markdown_text(v)

    head = "| " + " | ".join(markdown_text(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def summary_markdown(report: PlaylistReport, max_rows: int = 10) -> str:
    """The report's summary as Markdown (for Prefect artifacts and terminals)."""
    r = report
    t = r.tracks
    lines = [f"# Playlist report: {markdown_text(r.name)}", "",
             f"{len(t)} of {len(r.entries)} entries analysed; data home {markdown_code(r.home)}; "
             f"model {markdown_code(r.model_digest)}.", "",
             f"**Cohesion {r.cohesion['cohesion']:.2f}.** {cohesion_sentence(r.cohesion)}", ""]
    if len(r.missing):
        lines += [f"## Not analysed ({len(r.missing)})", "",
                  markdown_table(r.missing[["position", "entry", "status", "detail"]]), ""]
    out = t[t["outlier"]]
    lines += [f"## Outliers ({len(out)})", ""]
    lines += ([f"- **{p}. {markdown_text(ti)}**: {markdown_text(w)}"
               for p, ti, w in zip(out["position"], out["title"], out["outlier_why"])]
              if len(out) else ["None: every song fits the playlist better than most catalogue songs do."])
    if "mood" in t:
        mix = t["mood"].value_counts()
        lines += ["", "## Mood mix", "", ", ".join(f"{markdown_text(m)}: {k}" for m, k in mix.items())]
    s = r.order_stats
    lines += ["", "## Suggested order", "",
              f"Mean similarity between consecutive songs {s['current']['mean_similarity']:.2f} → "
              f"{s['suggested']['mean_similarity']:.2f}; weakest transition {s['current']['lowest_similarity']:.2f} → "
              f"{s['suggested']['lowest_similarity']:.2f}.", "",
              markdown_table(r.order[["position", "was", "title", "similarity_to_previous", "mood"]].head(max_rows * 3))]
    if len(r.additions):
        lines += ["", "## Suggested additions", "",
                  markdown_table(r.additions[["rank", "id", "title", "similarity", "closest", "mood"]].head(max_rows))]
    return "\n".join(lines) + "\n"


def write_report(report: PlaylistReport, out_dir: str | Path | None = None,
                 figures: Mapping[str, bytes] | None = None) -> Path:
    """Write ``report.html``, the CSV tables and ``summary.md``; returns the HTML path.

    Parameters
    ----------
    report : PlaylistReport
    out_dir : str or Path, optional
        Default ``<home>/reports/<name>/``.
    figures : mapping of str to bytes, optional
        The PNG figures to embed, by name; default: all of them, drawn with
        :func:`audiosim.report.figures.draw_all`.
    """
    out = Path(out_dir) if out_dir is not None else DataHome.resolve(report.home).reports_dir / report.name
    out.mkdir(parents=True, exist_ok=True)
    for name, attribute in CSV_TABLES.items():
        atomic_write_text(out / name, csv_text(getattr(report, attribute), index=name in CSV_WITH_INDEX))
    atomic_write_text(out / "summary.md", summary_markdown(report))
    html = out / "report.html"
    atomic_write_text(html, render_html(report, draw_all(report) if figures is None else figures))
    return html


__all__ = ["write_report", "summary_markdown", "markdown_table", "csv_text", "csv_decimals", "CSV_TABLES", "CSV_DECIMALS"]
