"""``audiosim index``: build or update the fingerprint index from the catalogue.

The work, calibration included (against the model's background bank of
other music, else leave-one-track-out, or on ``--absent`` music), runs as
the Prefect flow :func:`flows.index.run_index`; the settings
a user may change are reconciled with the index's own by
:func:`audiosim.index.settings.index_config_for`. This module checks the
input and prints what the update did and the thresholds it left.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from audiosim.cli.options import (
    EXIT_OK,
    UsageError,
    add_runner_options,
    check_max_false_match,
    home_option,
    in_flight,
    need_catalogue,
    runner_spec,
)
from audiosim.progress import Progress

if TYPE_CHECKING:
    from audiosim.index.manifest import Manifest
    from audiosim.index.writer import UpdateResult


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim index`` and its options."""
    p = sub.add_parser(
        "index",
        parents=[home_option()],
        help="build or update the fingerprint index from the catalogue",
        description="Embed the new and changed tracks of the catalogue into a new index shard, "
        "stop removed and changed tracks from matching, recalibrate the no-match thresholds "
        "(at most 1% of clips of absent music match, per clip length: clips of other music that ships "
        "with the model as its background bank stand in for it) and publish the index "
        "atomically: clips being identified meanwhile keep using the previous index.",
        epilog="Exit code: 0 on success, 2 on usage errors, a missing model, or an index built "
        "with another model or settings (rebuild it with --rebuild).",
    )
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="encoder checkpoint (default: the index's own, else models/fingerprint.pt)")
    p.add_argument("--compact", action="store_true", help="then merge all shards into one, dropping removed tracks")
    p.add_argument("--rebuild", action="store_true", help="re-embed every track (to change model or settings)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="keep the current thresholds (with --rebuild: those of the index it replaces, when "
                   "they hold for the new one: same model, feature settings, hop, metric and speeds)")
    p.add_argument("--absent", nargs="+", type=Path, default=None, metavar="FILE",
                   help="calibrate on these files of music known not to be in the catalogue "
                   "(instead of the model's background bank)")
    p.add_argument("--max-false-match", type=float, default=None, metavar="RATE",
                   help="share of absent-music clips allowed to match, stored as the default (e.g. 0.01)")
    p.add_argument("--speeds", default=None, metavar="LIST",
                   help="playback speeds to try clips at, stored as the default and calibrated for, e.g. "
                   "0.95,1,1.05 to find clips played up to about 8%% fast or slow (DJ pitch, radio edits); "
                   "default 1 (about +-3%%). 1 is always tried, first; the others only for clips that do "
                   "not match as given")
    add_runner_options(p, "batches of tracks embedded")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the summary line (no progress: a bar per step in a terminal, "
                   "else a line per step with its time, on stderr)")


def run(args: argparse.Namespace) -> int:
    """Update (and perhaps compact) the index, then print the results and thresholds."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.index.manifest import Manifest
    from audiosim.index.settings import index_config_for, parse_speeds
    from audiosim.runners import prefect_api_for_workers
    from flows.index import run_index
    home = need_catalogue(args)
    if args.model is not None and not args.model.is_file():
        raise UsageError(f"{args.model}: no such model checkpoint")
    check_max_false_match(args.max_false_match)
    try:
        speeds = None if args.speeds is None else parse_speeds(args.speeds)
    except ValueError as e:
        raise UsageError(str(e)) from None
    config = index_config_for(home, max_false_match=args.max_false_match, query_speeds=speeds)
    spec = runner_spec(args)
    workers = in_flight(spec)
    absent = None if not args.absent else [str(p) for p in args.absent]
    try:
        with prefect_api_for_workers(spec), Progress(enabled=not args.quiet) as progress:
            results = run_index(
                spec.task_runner(), home=home.root, model=args.model, compact=args.compact,
                rebuild=args.rebuild, calibrate=not args.no_calibrate, config=config,
                workers=workers, absent=absent, progress=progress,
            )
    except FileNotFoundError as e:
        raise UsageError(str(e)) from e
    except ValueError as e:
        if absent is None:
            raise
        raise UsageError(str(e)) from e  # the absent music cannot calibrate (too short, unreadable)
    for i, r in enumerate(results):
        print_result(r, first=i == 0)
    print_thresholds(Manifest.load(home.index_dir), quiet=args.quiet, results=results,
                     calibrated=not args.no_calibrate or absent is not None)
    return EXIT_OK


def print_result(r: UpdateResult, first: bool) -> None:
    """One line on what an update (``first``) or the compaction after it did."""
    if r.action == "nothing" and not first:
        print("nothing to compact: one shard, no removed or changed tracks")
    elif r.action == "nothing":
        print(f"index is up to date (generation {r.generation}, {r.shards} shard(s), {r.index_items} items)")
    elif r.action == "compact":
        print(f"compacted into {r.shard}: {r.items} items ({r.tombstoned_tracks} removed/changed tracks dropped)")
    else:
        print(f"{r.action}: {r.shard or 'no new shard'}: {r.added_tracks} tracks added ({r.items} items, "
              f"{r.audio_seconds / 3600:.2f} h), {r.tombstoned_tracks} removed/changed; index now "
              f"{r.shards} shard(s), {r.index_items} items (generation {r.generation})")
    if r.missing_features:
        print(f"warning: {r.missing_features} ok tracks have no stored features (re-run `audiosim ingest`)",
              file=sys.stderr)


def print_thresholds(
    manifest: Manifest, quiet: bool, results: Sequence[UpdateResult] = (), calibrated: bool = True
) -> None:
    """The thresholds the index now has (unless ``quiet``), or a warning that
    nothing can match and why: thresholds for another score, thresholds a
    rebuild could not keep (``results``), calibration not asked for
    (``calibrated`` False, i.e. ``--no-calibrate``), or too little audio."""
    cal = manifest.calibration
    dropped = next((r.thresholds_dropped for r in results if r.thresholds_dropped), "")
    if cal is not None and cal.is_current():
        if not quiet:
            rows = cal.table(config=manifest.config)
            cells = ", ".join(f"{row['seconds']:g} s > {row['threshold']:.3g}"
                              + (f" (or > {row['peak_gate']:.3g} with peaks > {row['peak_threshold']:.2f})"
                                 if "peak_threshold" in row else "") for row in rows)
            print(f"thresholds ({cal.method}, at most {cal.max_false_match:.1%} of absent clips match): {cells}")
    elif cal is not None:
        print("warning: the index's thresholds were calibrated for an older kind of score, so nothing will "
              "match; run `audiosim index` without --no-calibrate", file=sys.stderr)
    elif dropped:
        print(f"warning: the rebuilt index has no calibrated thresholds, so nothing will match: {dropped}; "
              "run `audiosim index` without --no-calibrate", file=sys.stderr)
    elif not calibrated:
        print("warning: the index has no calibrated thresholds and --no-calibrate computed none, so nothing "
              "will match; run `audiosim index` without --no-calibrate", file=sys.stderr)
    else:
        print("warning: the index has no calibrated thresholds, so nothing will match "
              "(calibration needs at least two tracks with readable audio)", file=sys.stderr)
