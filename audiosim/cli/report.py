"""``audiosim report``: an HTML + CSV report on a playlist.

In this process by default, or as the Prefect flow
:func:`flows.report.report_flow` with ``--flow`` (which publishes the
summary as artifacts).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiosim.cli.options import (
    EXIT_OK,
    UsageError,
    home_option,
    model_option,
    need_catalogue,
)
from audiosim.progress import Progress
from audiosim.store.home import DataHome


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
        "are listed and never opened. Entries that cannot be used are listed in the report with the reason.",
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
            print(html)
            return EXIT_OK
        model = load_song_model(args)
        report = build_report(args.playlist, home, model=model, ingest=args.ingest, allow=allow,
                              n_additions=args.additions, progress=Progress(),
                              log=lambda m: print(m, file=sys.stderr))
    except (ValueError, FileNotFoundError, LookupError) as e:
        raise UsageError(str(e)) from None
    html = write_report(report, args.out)
    c = report.cohesion
    print(summary_markdown(report).split("\n## ")[0].strip())
    print(f"\nreport: {html}")
    n_out = int(report.tracks["outlier"].sum())
    print(f"{len(report.tracks)} songs analysed, {len(report.missing)} not analysed, {n_out} outlier(s); "
          f"cohesion {c['cohesion']:.2f}")
    return EXIT_OK
