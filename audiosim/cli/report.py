"""``audiosim report``: an HTML + CSV report on a playlist.

In this process by default, or as the Prefect flow
:func:`flows.report.report_flow` with ``--flow`` (which publishes the
summary as artifacts). ``--format table`` prints the summary for people;
``csv`` and ``json`` print the report's track table for programs
(:func:`track_rows`: one row per playlist entry, its status and reason, and
the paths of what was written) through the one writer,
:func:`audiosim.cli.output.write_rows`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from audiosim.cli.options import (
    EXIT_OK,
    UsageError,
    add_format_option,
    home_option,
    model_option,
    need_catalogue,
)
from audiosim.cli.output import write_rows
from audiosim.progress import Progress
from audiosim.store.home import DataHome

if TYPE_CHECKING:
    import pandas as pd

ROW_COLUMNS = ("position", "entry", "id", "title", "artist", "path", "status", "reason",
               "mean_similarity", "closest", "outlier", "outlier_why", "report", "folder")
"""The columns of ``--format csv|json``: one row per playlist entry (see :func:`track_rows`)."""
ANALYSED = "analysed"
"""The ``status`` of an entry that is in the report's analysis; the others keep the playlist's
status (``missing``, ``failed``, ``duplicate``, ``uncatalogued``, ``outside``) or are
``not-analysed`` (a catalogue track whose song analysis failed)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim report`` and its options."""
    p = sub.add_parser(
        "report",
        parents=[home_option(), model_option()],
        help="write an HTML + CSV report on a playlist",
        description="Analyse a playlist against the catalogue: cohesion, most and least similar pairs, "
        "outliers and why, a similarity heatmap, a map of the catalogue, the mood mix, the tempo and "
        "energy arc, a smoother order and suggested additions. Writes one self-contained report.html "
        "and the tables as CSV to <home>/reports/<playlist name>/ (or --out).",
        epilog="Entries are catalogue tracks (by id or path). A playlist file that is not in the catalogue is "
        "listed as such in the report, unless --ingest is given: then files under the allowed folders (--allow, "
        "default: the playlist's own folder) are ingested first. Paths outside those folders (../../etc/passwd) "
        "are listed and never opened. Entries that cannot be used are listed in the report with the reason. "
        "--format csv|json prints, instead of the summary, one row per playlist entry: position, entry, id, "
        "title, artist, path, status (analysed, not-analysed, missing, failed, duplicate, uncatalogued, "
        "outside), reason, mean_similarity, closest, outlier, outlier_why, and the paths of the report "
        "(report.html) and of its folder (the CSV tables, summary.md).",
    )
    p.add_argument("playlist", type=Path, metavar="PLAYLIST",
                   help="M3U/M3U8, text (.txt/.lst) or CSV list of audio paths or catalogue ids, or a folder")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder")
    p.add_argument("--ingest", action="store_true",
                   help="ingest the playlist's files that are not in the catalogue yet (only under the allowed folders)")
    p.add_argument("--allow", type=Path, action="append", default=None, metavar="DIR",
                   help="a folder whose files --ingest may ingest (repeatable; default: the playlist's folder)")
    p.add_argument("--additions", type=int, default=10, metavar="N", help="suggested additions (default: 10)")
    p.add_argument("--flow", action="store_true",
                   help="run as the Prefect flow `playlist-report` (publishes the summary as artifacts)")
    add_format_option(p)


def run(args: argparse.Namespace) -> int:
    """Write the report and print its summary and path."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.cli.song_model import load_song_model
    from audiosim.report.analysis import build_report
    from audiosim.report.write import summary_markdown, write_report
    from flows.report import report_flow
    if args.additions < 0:
        raise UsageError(f"--additions must be 0 or more, not {args.additions}")
    if not args.playlist.exists():
        raise UsageError(f"{args.playlist}: no such playlist file or folder")
    if args.allow and not args.ingest:
        raise UsageError("--allow names the folders --ingest may ingest from: give --ingest too")
    for folder in args.allow or ():
        if not folder.is_dir():
            raise UsageError(f"--allow {folder}: no such folder")
    home = DataHome.resolve(args.home)
    if not args.ingest:
        need_catalogue(args)
    allow = None if args.allow is None else [str(f) for f in args.allow]
    try:
        if args.flow:
            load_song_model(args)  # fails early and clearly when there is no model
            html = Path(report_flow(
                str(args.playlist), home=str(home.root), out=None if args.out is None else str(args.out),
                ingest=args.ingest, allow=allow, n_additions=args.additions,
                model=None if args.model is None else str(args.model)))
            if args.format == "table":
                print(html)
            else:
                write_rows(rows_from_folder(html), args.format, columns=ROW_COLUMNS)
            return EXIT_OK
        model = load_song_model(args)
        report = build_report(args.playlist, home, model=model, ingest=args.ingest, allow=allow,
                              n_additions=args.additions, progress=Progress(),
                              log=lambda m: print(m, file=sys.stderr))
    except (ValueError, FileNotFoundError, LookupError) as e:
        raise UsageError(str(e)) from None
    html = write_report(report, args.out)
    if args.format != "table":
        write_rows(track_rows(report.entries, report.tracks, html, report.descriptor_errors), args.format,
                   columns=ROW_COLUMNS)
        return EXIT_OK
    c = report.cohesion
    print(summary_markdown(report).split("\n## ")[0].strip())
    print(f"\nreport: {html}")
    n_out = int(report.tracks["outlier"].sum())
    print(f"{len(report.tracks)} songs analysed, {len(report.missing)} not analysed, {n_out} outlier(s); "
          f"cohesion {c['cohesion']:.2f}")
    return EXIT_OK


def track_rows(entries: pd.DataFrame, tracks: pd.DataFrame, html: Path,
               reasons: dict[int, str] | None = None) -> list[dict]:
    """One row per playlist entry (:data:`ROW_COLUMNS`), in playlist order.

    Parameters
    ----------
    entries : DataFrame
        The report's entries (``position``, ``entry``, ``id``, ``path``,
        ``status``, ``detail``).
    tracks : DataFrame
        The report's analysed tracks, by ``position``.
    html : Path
        The written ``report.html`` (its folder holds the CSV tables).
    reasons : dict of int to str, optional
        Why a catalogue track could not be analysed, by track id.

    Returns
    -------
    list of dict
        An analysed entry has status ``analysed`` and its analysis (title,
        artist, mean similarity, closest song, outlier and why); an entry
        the playlist could not use keeps its status with its reason; a
        usable entry that is not in the analysis is ``not-analysed``.
    """
    reasons = reasons or {}
    by_position = {int(t["position"]): t for t in tracks.to_dict("records")}
    rows = []
    for e in entries.to_dict("records"):
        tid = None if _missing(e.get("id")) else int(e["id"])
        row = dict(position=int(e["position"]), entry=e["entry"], id=tid, path=_or_none(e.get("path")),
                   status=e["status"], reason=_or_none(e.get("detail")) or None,
                   report=str(html), folder=str(Path(html).parent))
        analysed = by_position.get(int(e["position"]))
        if analysed is not None:
            row.update(status=ANALYSED, reason=None,
                       **{k: _or_none(analysed.get(k)) for k in
                          ("title", "artist", "path", "mean_similarity", "closest", "outlier", "outlier_why")})
            if row["outlier"] is not None:
                row["outlier"] = bool(row["outlier"])
        elif e["status"] in ("ok", "ingested"):
            row.update(status="not-analysed",
                       reason=reasons.get(tid, "the song analysis of this track failed") if tid is not None else None)
        rows.append(row)
    return rows


def rows_from_folder(html: Path) -> list[dict]:
    """:func:`track_rows` from the tables a report wrote beside ``html`` (``entries.csv``, ``tracks.csv``)."""
    import pandas as pd  # imported when rows are written: --help does not wait for pandas

    folder = Path(html).parent
    return track_rows(pd.read_csv(folder / "entries.csv"), pd.read_csv(folder / "tracks.csv"), Path(html))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _or_none(value: object) -> object:
    """``value``, or None when it is missing (NaN); numpy scalars as Python values."""
    if _missing(value):
        return None
    return value.item() if hasattr(value, "item") else value
