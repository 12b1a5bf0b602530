"""``audiosim identify``: name the catalogue track each clip comes from.

Also what ``audiosim monitor`` (:mod:`audiosim.cli.monitor`) shares with it:
the matching options and opening the :class:`~audiosim.match.matcher.Matcher`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pandas as pd

from audiosim.cli.options import (
    EXIT_FAILURES,
    EXIT_OK,
    UsageError,
    add_format_option,
    check_max_false_match,
    hint_home,
    home_option,
)
from audiosim.cli.output import write_rows
from audiosim.match.matcher import Matcher
from audiosim.signal.audio import AudioError
from audiosim.store.home import DataHome

MATCH_COLUMNS = ["clip", "track_id", "path", "title", "offset", "score", "threshold", "matched", "seconds"]
"""The columns of identify's rows, in order."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim identify`` and its options."""
    p = sub.add_parser(
        "identify",
        parents=[home_option()],
        help="name the catalogue track each clip comes from",
        description="Identify audio clips against the index: one row per clip with the track, "
        "where the clip starts in it (offset, s), the score and the threshold it had to beat "
        "(calibrated per clip length so that at most 1% of clips of absent music match), "
        "whether it matched, and the seconds taken. The index and model are loaded once.",
        epilog="Exit code: 0 if every clip matched, 1 if some clip matched nothing or could not "
        "be read, 2 on usage errors (no index, model mismatch, bad options).",
    )
    p.add_argument("clips", nargs="+", type=Path, metavar="CLIP", help="audio file to identify")
    add_match_options(p)


def run(args: argparse.Namespace) -> int:
    """Identify every clip and print one row each; 1 if some clip did not match or could not be read."""
    rows, unmatched = [], 0
    with open_matcher(args) as m:
        for clip in args.clips:
            try:
                r = m.match(clip)
            except AudioError as e:
                print(f"audiosim identify: {e}", file=sys.stderr)
                rows.append({"clip": str(clip), "matched": False})
                unmatched += 1
                continue
            d = r.to_dict()
            d["offset"], d["score"] = round(d["offset"], 2), round(d["score"], 3)
            d["threshold"], d["seconds"] = round(d["threshold"], 3), round(d["seconds"], 3)
            if not r.matched:
                unmatched += 1
                if args.format == "table":
                    d.update(track_id=None, path=None, title=None, offset=None)
            rows.append(d)
    write_match_rows(rows, MATCH_COLUMNS, args.format)
    return EXIT_FAILURES if unmatched else EXIT_OK


def add_match_options(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--format`` and the threshold options of identify and monitor."""
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="encoder checkpoint (default: the one the index was built with)")
    add_format_option(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--threshold", type=float, default=None, metavar="X",
                   help="fixed score threshold instead of the calibrated ones")
    g.add_argument("--max-false-match", type=float, default=None, metavar="RATE",
                   help="share of absent-music clips allowed to match (default: the index's, 0.01)")


def open_matcher(args: argparse.Namespace) -> Matcher:
    """The matcher of ``--home``, ``--model``, ``--threshold`` and ``--max-false-match``.

    Raises
    ------
    UsageError
        For a missing model file, a bad rate, or no index (suggesting ``audiosim index``).
    """
    if args.model is not None and not args.model.is_file():
        raise UsageError(f"{args.model}: no such model checkpoint")
    check_max_false_match(args.max_false_match)
    home = DataHome.resolve(args.home)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the warning below says it for the command line
            m = Matcher(home, args.model, threshold=args.threshold, max_false_match=args.max_false_match)
    except FileNotFoundError as e:
        if "no index" in str(e):
            raise UsageError(f"no index in {home.root} (run `audiosim index{hint_home(args)}` first)") from e
        raise UsageError(str(e)) from e
    if m.calibration is None and args.threshold is None:
        print("warning: the index has no calibrated thresholds: nothing will match "
              "(run `audiosim index` or pass --threshold)", file=sys.stderr)
    return m


def write_match_rows(rows: list[dict], columns: list[str], fmt: str) -> None:
    """Write identify's or monitor's rows: track ids as integers, cells as given, missing ones blank."""
    df = pd.DataFrame(rows, columns=columns)
    df["track_id"] = df["track_id"].astype("Int64")
    write_rows(df, fmt, plain_cells=True)
