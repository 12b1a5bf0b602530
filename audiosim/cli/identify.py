"""``audiosim identify``: name the catalogue track each clip comes from.

Also what ``audiosim monitor`` (:mod:`audiosim.cli.monitor`) shares with it:
the matching options and opening the :class:`~audiosim.match.matcher.Matcher`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from audiosim.cli.options import (
    EXIT_FAILURES,
    EXIT_OK,
    UsageError,
    add_format_option,
    check_at_least_one,
    check_max_false_match,
    hint_home,
    home_option,
)
from audiosim.cli.output import write_rows
from audiosim.store.home import DataHome

if TYPE_CHECKING:
    from audiosim.match.matcher import Match, Matcher

MATCH_COLUMNS = [
    "clip", "status", "reason", "track_id", "path", "title", "offset", "clip_start", "score", "threshold",
    "peaks", "peak_threshold", "matched", "candidate_track_id", "candidate_path", "candidate_title",
    "candidate_offset", "seconds", "detail",
]
"""The columns of identify's CSV and JSON rows, in order: the answer (empty unless
``status`` is ``matched``), then the best candidate, matched or not."""

TABLE_COLUMNS = ["clip", "status", "reason", "track_id", "title", "offset", "clip_start", "score", "threshold",
                 "candidate_title", "seconds"]
"""The columns of identify's table (the file paths are in CSV and JSON)."""

ROUNDING = {"offset": 2, "clip_start": 2, "candidate_offset": 2, "score": 3, "threshold": 3, "peaks": 3,
            "peak_threshold": 3, "seconds": 3}
"""Decimals kept of the numbers in a row."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim identify`` and its options."""
    p = sub.add_parser(
        "identify",
        parents=[home_option()],
        help="name the catalogue track each clip comes from",
        description="Identify audio clips against the index: one row per clip with its status "
        "(matched, no-match, or error when the clip cannot be heard) and the reason (too-short, "
        "silence, unreadable, below-threshold...), the track and where the matched passage starts "
        "in it (offset, s; clip_start: where it starts in the clip, 0 unless the clip opens with "
        "something else), the score and the threshold it had to beat (calibrated per clip length "
        "so that at most 1% of clips of absent music match; a score a little under it is checked "
        "on the spectrum, and peaks gives the share of the clip's spectral peaks on the candidate's, "
        "against peak_threshold), the best candidate (named even for "
        "a no-match, in the candidate_* fields) and the seconds taken. The index and model are "
        "loaded once. A summary line on stderr gives the number of clips and the median and 95th "
        "percentile time per lookup (decoding excluded); --stats prints more.",
        epilog="Exit code: 0 if every clip matched, 1 if some clip matched nothing or could not "
        "be read, 2 on usage errors (no index, model mismatch, bad options).",
    )
    p.add_argument("clips", nargs="+", type=Path, metavar="CLIP", help="audio file to identify")
    add_match_options(p, default_threads=1)
    p.add_argument("--stats", action="store_true",
                   help="print timing percentiles (lookup, decode, total) on stderr after the rows")


def run(args: argparse.Namespace) -> int:
    """Identify every clip and print one row each; 1 if some clip did not match or could not be read."""
    answers = []
    with open_matcher(args) as m:
        for clip in args.clips:
            r = m.answer(clip)
            if r.status == "error":
                print(f"audiosim identify: {clip}: {r.reason}" + (f" ({r.detail})" if r.detail else ""),
                      file=sys.stderr)
            answers.append(r)
    write_match_rows([match_row(r) for r in answers], TABLE_COLUMNS if args.format == "table" else MATCH_COLUMNS,
                     args.format)
    print(summary_line(answers, m.threads), file=sys.stderr)
    if args.stats:
        print(timing_table(answers), file=sys.stderr)
    return EXIT_OK if all(r.matched for r in answers) else EXIT_FAILURES


def match_row(r: Match) -> dict:
    """One clip's row: the answer's fields, numbers rounded to what is meaningful.

    A clip that could not be heard has no score, threshold or passage: those cells are blank.
    """
    d = r.to_dict()
    if r.status == "error":
        d.update(score=None, threshold=None, peak_threshold=None, clip_start=None)
    for key, digits in ROUNDING.items():
        if d[key] is not None:
            d[key] = round(d[key], digits)
    return d


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of durations in seconds, in milliseconds (nan for none)."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    import numpy as np
    return float(np.percentile(np.asarray(seconds) * 1000.0, q)) if len(seconds) else float("nan")


def summary_line(answers: Sequence[Match], threads: int | None) -> str:
    """``identify: N clips: A matched, B no-match, C error; lookup median M ms, p95 P ms (1 torch thread)``.

    Times are of the lookups of the clips that could be heard, decoding excluded.
    """
    counts = {s: sum(r.status == s for r in answers) for s in ("matched", "no-match", "error")}
    heard = [r.lookup_seconds for r in answers if r.status != "error"]
    line = f"identify: {len(answers)} clip{'s' if len(answers) != 1 else ''}: " + ", ".join(
        f"{n} {s}" for s, n in counts.items())
    if heard:
        line += f"; lookup median {percentile_ms(heard, 50):.0f} ms, p95 {percentile_ms(heard, 95):.0f} ms"
    if threads is not None:
        line += f" ({threads} torch thread{'s' if threads != 1 else ''})"
    return line


def timing_table(answers: Sequence[Match]) -> str:
    """Percentiles (ms) of the lookup, decode and total time per clip, as an aligned table."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    import numpy as np
    import pandas as pd
    heard = [r for r in answers if r.status != "error"]
    parts = {"lookup": [r.lookup_seconds for r in heard], "decode": [r.decode_seconds for r in heard],
             "total": [r.seconds for r in answers]}
    rows = []
    for name, values in parts.items():
        row: dict[str, object] = {"time (ms)": name, "clips": len(values)}
        for label, q in (("min", 0), ("median", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("max", 100)):
            row[label] = round(percentile_ms(values, q), 1)
        row["mean"] = round(float(np.mean(values)) * 1000.0, 1) if values else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).to_string(index=False)


def add_match_options(p: argparse.ArgumentParser, default_threads: int | None) -> None:
    """``--model``, ``--format``, ``--threads`` and the threshold options of identify and monitor.

    ``default_threads`` is 1 or None (torch's default, one thread per core).
    """
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="encoder checkpoint (default: the one the index was built with)")
    add_format_option(p)
    why = ("1: a clip is a small batch, which more threads slow down, all the more on a busy machine"
           if default_threads == 1 else "torch's, one per core: a recording is one large batch")
    p.add_argument("--threads", type=int, default=default_threads, metavar="N",
                   help=f"torch threads for the lookups (default: {why})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--threshold", type=float, default=None, metavar="X",
                   help="fixed score threshold instead of the calibrated ones")
    g.add_argument("--max-false-match", type=float, default=None, metavar="RATE",
                   help="share of absent-music clips allowed to match (default: the index's, 0.01)")


def open_matcher(args: argparse.Namespace) -> Matcher:
    """The matcher of ``--home``, ``--model``, ``--threads``, ``--threshold`` and ``--max-false-match``.

    Raises
    ------
    UsageError
        For a missing model file, a bad rate, or no index (suggesting ``audiosim index``).
    """
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.match.matcher import Matcher
    if args.model is not None and not args.model.is_file():
        raise UsageError(f"{args.model}: no such model checkpoint")
    check_max_false_match(args.max_false_match)
    if args.threads is not None:
        check_at_least_one("--threads", args.threads)
    home = DataHome.resolve(args.home)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the warning below says it for the command line
            m = Matcher(home, args.model, threshold=args.threshold, max_false_match=args.max_false_match,
                        threads=args.threads)
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
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    import pandas as pd
    df = pd.DataFrame(rows, columns=columns)
    for column in ("track_id", "candidate_track_id"):
        if column in df:
            df[column] = df[column].astype("Int64")
    write_rows(df, fmt, plain_cells=True)
