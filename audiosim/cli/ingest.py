"""``audiosim ingest``: decode audio files, store their features and catalogue them.

The work runs as the Prefect flow :func:`flows.ingest.run_ingest` (on
threads, a local Dask cluster or a Dask scheduler, ``--workers``/``--dask``);
this module checks the input, shows progress and prints the summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiosim.cli.options import (
    EXIT_FAILURES,
    EXIT_OK,
    UsageError,
    add_runner_options,
    check_at_least_one,
    hint_home,
    home_option,
    in_flight,
    runner_spec,
)
from audiosim.config import FeatureConfig
from audiosim.progress import Progress
from audiosim.store.home import DataHome

SHOWN_FAILURES = 20
"""Failed (and pruned) files listed one by one; the rest are counted."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim ingest`` and its options."""
    p = sub.add_parser(
        "ingest",
        parents=[home_option()],
        help="decode audio files, store their features and catalogue them",
        description="Decode audio files, store their log-mel features by content hash and record "
        "each file in the catalogue. Unchanged files are skipped, changed files updated, "
        "moved files found again without recomputing; files that cannot be used are "
        "recorded as failed with a reason and retried on the next run. Safe to interrupt "
        "and re-run.",
        epilog="With no PATH, the built-in synthetic songbook is written to <home>/songbook/ "
        "and ingested. Exit code: 0 if no file failed, 1 if some failed, 2 on usage errors.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="audio file, folder (searched recursively), or list of paths "
        "(.txt/.lst/.m3u: one per line, '#' comments)",
    )
    add_runner_options(p, "files processed")
    p.add_argument("--prune", action="store_true",
                   help="afterwards, mark catalogue tracks under the given folders whose file was deleted as "
                   "missing, and stop them from matching in the index; a folder that does not exist or "
                   "holds no audio file (an unmounted disk?) is left alone")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress (a bar in a terminal, a stage line otherwise) and no list of failures")


def run(args: argparse.Namespace) -> int:
    """Ingest the given paths (or the songbook) into the data home; 1 if some file failed."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.demo.songbook import write_songbook
    from audiosim.ingest.ingest import count_statuses, prepare
    from audiosim.runners import prefect_api_for_workers
    from flows.ingest import run_ingest
    check_at_least_one("--workers", args.workers)
    spec = runner_spec(args)
    home = DataHome.resolve(args.home)
    feature_config = FeatureConfig()
    paths: list[Path] = list(args.paths)
    files = discover_paths(paths) if paths else []  # bad paths fail before the home is made
    try:
        prepare(home, feature_config)
    except (NotADirectoryError, FileExistsError) as e:
        raise UsageError(f"cannot use {e.filename or home.root} as data home: {e.strerror or e}") from e
    if not paths:
        folder = home.root / "songbook"
        paths = list(write_songbook(folder))
        files = discover_paths(paths)
        if not args.quiet:
            print(f"songbook: {len(paths)} synthetic songs in {folder}", file=sys.stderr)
    if not files:
        print(f"no audio files found in {', '.join(map(str, paths))}", file=sys.stderr)
        print("0 added, 0 updated, 0 skipped, 0 failed")
        return EXIT_OK

    workers = in_flight(spec)
    with Progress(enabled=not args.quiet) as show:
        counts_so_far = {"done": 0, "failed": 0}

        def progress(result) -> None:  # type: ignore[no-untyped-def]
            counts_so_far["done"] += 1
            counts_so_far["failed"] += result.status == "failed"
            show("ingest", {"done": counts_so_far["done"], "total": len(files),
                            "postfix": {"failed": counts_so_far["failed"]}})

        pruned: list = []
        with prefect_api_for_workers(spec):
            results = run_ingest(
                paths, home=home.root, workers=workers, task_runner=spec.task_runner(),
                feature_config=feature_config, progress=progress, prune=args.prune, on_prune=pruned.append,
            )
    for p in pruned:
        if not args.quiet:
            for tid, path in p.pruned[:SHOWN_FAILURES]:
                print(f"pruned: {path} (track {tid})", file=sys.stderr)
        print(p.describe())
    counts = count_statuses(results)
    failed = sorted((r for r in results if r.status == "failed"), key=lambda r: r.path)
    if failed and not args.quiet:
        for r in failed[:SHOWN_FAILURES]:
            print(f"failed: {r.path}: {r.reason}" + (f" ({r.detail})" if r.detail else ""), file=sys.stderr)
        if len(failed) > SHOWN_FAILURES:
            print(f"... and {len(failed) - SHOWN_FAILURES} more", file=sys.stderr)
    line = ", ".join(f"{counts[s]} {s}" for s in ("added", "updated", "skipped", "failed"))
    if counts["failed"]:
        line += f" (see `audiosim catalog --failed{hint_home(args)}`)"
    print(line)
    return EXIT_FAILURES if counts["failed"] else EXIT_OK


def discover_paths(paths: list[Path]) -> list[Path]:
    """The audio files of ``paths`` (:func:`audiosim.ingest.discover.discover`); bad paths are usage errors."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.ingest.discover import discover
    try:
        return discover(paths)
    except FileNotFoundError as e:
        raise UsageError(f"{e.filename}: no such file or folder") from e
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from e
