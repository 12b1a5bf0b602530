"""``audiosim monitor``: a timeline of the catalogue tracks heard in a long recording."""

from __future__ import annotations

import argparse
from pathlib import Path

from audiosim.cli.identify import add_match_options, open_matcher, write_match_rows
from audiosim.cli.options import EXIT_FAILURES, EXIT_OK, UsageError, home_option
from audiosim.match.monitor import timeline
from audiosim.signal.audio import AudioError

TIMELINE_COLUMNS = ["start", "end", "track_id", "title", "offset", "score", "windows", "path"]
"""The columns of monitor's rows, in order."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim monitor`` and its options."""
    p = sub.add_parser(
        "monitor",
        parents=[home_option()],
        help="timeline of the catalogue tracks heard in a long recording",
        description="Slide a window over a recording, identify each window and merge consecutive "
        "windows that agree on a track (at a consistent position) into timeline rows: start and "
        "end in the recording (s), the track, and the offset in the track at the start.",
        epilog="Exit code: 0 if some track was found, 1 if none, 2 on usage errors.",
    )
    p.add_argument("recording", type=Path, metavar="RECORDING", help="audio file (any length)")
    p.add_argument("--window", type=float, default=5.0, metavar="S", help="window length in seconds (default 5)")
    p.add_argument("--hop", type=float, default=2.5, metavar="S", help="window hop in seconds (default 2.5)")
    add_match_options(p)


def run(args: argparse.Namespace) -> int:
    """Print the recording's timeline; 1 if no track was heard."""
    if not 0 < args.hop <= args.window:
        raise UsageError("need 0 < --hop <= --window")
    with open_matcher(args) as m:
        try:
            rows = timeline(m, args.recording, window=args.window, hop=args.hop)
        except AudioError as e:
            raise UsageError(str(e)) from e
    write_match_rows([r.to_dict() for r in rows], TIMELINE_COLUMNS, args.format)
    return EXIT_OK if rows else EXIT_FAILURES
