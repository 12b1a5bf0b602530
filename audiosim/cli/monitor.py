"""``audiosim monitor``: a timeline of the catalogue tracks heard in a long recording."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from audiosim.cli.options import EXIT_FAILURES, EXIT_OK, UsageError, home_option

if TYPE_CHECKING:
    from audiosim.match.monitor import TimelineRow

TIMELINE_COLUMNS = ["start", "end", "track_id", "title", "offset", "offsets", "score", "windows", "path"]
"""The columns of monitor's rows, in order."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim monitor`` and its options."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.cli.identify import add_match_options
    p = sub.add_parser(
        "monitor",
        parents=[home_option()],
        help="timeline of the catalogue tracks heard in a long recording",
        description="Slide a window over a recording, identify each window and merge the windows "
        "into timeline rows: one row per continuous stretch of one track, with its start and end in "
        "the recording (s), the track, and the offset in the track at the start. Looping music that "
        "jumps to another passage stays one row; offsets lists where it was heard from and each "
        "jump (track offset from recording time). Rows never overlap.",
        epilog="Exit code: 0 if some track was found, 1 if none, 2 on usage errors.",
    )
    p.add_argument("recording", type=Path, metavar="RECORDING", help="audio file (any length)")
    p.add_argument("--window", type=float, default=5.0, metavar="S", help="window length in seconds (default 5)")
    p.add_argument("--hop", type=float, default=2.5, metavar="S", help="window hop in seconds (default 2.5)")
    add_match_options(p, default_threads=None)


def run(args: argparse.Namespace) -> int:
    """Print the recording's timeline; 1 if no track was heard."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    import torch

    from audiosim.cli.identify import open_matcher, write_match_rows
    from audiosim.match.monitor import timeline
    from audiosim.signal.audio import AudioError
    if not 0 < args.hop <= args.window:
        raise UsageError("need 0 < --hop <= --window")
    with open_matcher(args) as m:
        if args.threads is not None:  # the recording is embedded by the monitor, not by a lookup
            torch.set_num_threads(args.threads)
        try:
            rows = timeline(m, args.recording, window=args.window, hop=args.hop)
        except AudioError as e:
            raise UsageError(str(e)) from e
    if not rows:
        nothing = f"nothing identified in {args.recording}: no stretch of it matched a catalogue track"
        if args.format == "table":
            print(nothing)
            return EXIT_FAILURES
        print(f"audiosim monitor: {nothing}", file=sys.stderr)
    write_match_rows([timeline_row(r, args.format) for r in rows], TIMELINE_COLUMNS, args.format)
    return EXIT_OK if rows else EXIT_FAILURES


def timeline_row(row: TimelineRow, fmt: str) -> dict:
    """A row to print: ``offsets`` as records in JSON, as ``29.79 from 0.0; 82.34 from 4.12`` in a table or CSV."""
    d = row.to_dict()
    if fmt != "json":
        d["offsets"] = "; ".join(f"{o['offset']:g} from {o['at']:g}" for o in d["offsets"])
    return d
