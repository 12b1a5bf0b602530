"""The ``audiosim`` command.

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares
its arguments and ``_cmd_<name>(args) -> int`` runs it (returning the exit
code). To add a command, write the pair and list ``_add_<name>`` in
:data:`COMMANDS`. Raise :class:`UsageError` for bad input (exit code 2).

Exit codes: 0 success, 1 some files failed, 2 usage or configuration error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

from audiosim.config import ConfigMismatchError, FeatureConfig
from audiosim.store.home import DataHome

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# Prefect runs locally without a server of its own (a temporary one is started
# per run) and quietly: these apply unless the user set them already, and must
# be set before prefect is imported. The temporary server's own log is turned
# down to CRITICAL because it reports harmless shutdown races as tracebacks.
# Its startup timeout (Prefect's default: 20 s) is generous because a loaded
# machine once needed more than 120 s to start it.
PREFECT_ENV_DEFAULTS = {
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
}


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit code 2."""


def _prefect_env_defaults() -> None:
    for k, v in PREFECT_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)


def _import_flows_ingest():  # type: ignore[no-untyped-def]
    """Import ``flows.ingest``, also when audiosim runs from outside the repo."""
    _prefect_env_defaults()
    try:
        import flows.ingest as mod
    except ModuleNotFoundError as e:
        if e.name not in ("flows", "flows.ingest"):
            raise
        root = Path(__file__).resolve().parents[2]
        if not (root / "flows" / "ingest.py").is_file():
            raise
        sys.path.insert(0, str(root))
        import flows.ingest as mod
    return mod


def _home_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--home",
        metavar="DIR",
        type=Path,
        default=None,
        help="data home holding catalog.sqlite, features/, index/, reports/ "
        "(default: $AUDIOSIM_HOME, else ./data)",
    )
    return p


def _hint_home(args: argparse.Namespace) -> str:
    return f" --home {args.home}" if args.home is not None else ""


# --------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------


def _add_ingest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        parents=[_home_parent()],
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
    _runner_options(p, "files processed")
    p.add_argument("--prune", action="store_true",
                   help="afterwards, mark catalogue tracks under the given folders whose file was deleted as "
                   "missing, and stop them from matching in the index; a folder that does not exist or "
                   "holds no audio file (an unmounted disk?) is left alone")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no list of failures")
    p.set_defaults(func=_cmd_ingest)


def _cmd_ingest(args: argparse.Namespace) -> int:
    from audiosim.ingest.ingest import count_statuses, prepare

    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    spec = _runner_spec(args)
    home = DataHome.resolve(args.home)
    feature_config = FeatureConfig()
    paths: list[Path] = list(args.paths)
    files = _discover(paths) if paths else []  # bad paths fail before the home is made
    try:
        prepare(home, feature_config)
    except (NotADirectoryError, FileExistsError) as e:
        raise UsageError(f"cannot use {e.filename or home.root} as data home: {e.strerror or e}") from e
    if not paths:
        from audiosim.demo.songbook import write_songbook

        folder = home.root / "songbook"
        paths = list(write_songbook(folder))
        files = _discover(paths)
        if not args.quiet:
            print(f"songbook: {len(paths)} synthetic songs in {folder}", file=sys.stderr)
    if not files:
        print(f"no audio files found in {', '.join(map(str, paths))}", file=sys.stderr)
        print("0 added, 0 updated, 0 skipped, 0 failed")
        return EXIT_OK

    try:
        in_flight = spec.in_flight()
    except OSError as e:  # the Dask scheduler cannot be reached
        raise UsageError(str(e)) from None
    flows_ingest = _import_flows_ingest()
    from tqdm import tqdm

    with tqdm(total=len(files), unit="file", desc="ingest", disable=args.quiet or None, file=sys.stderr) as bar:
        failed_so_far = 0

        def progress(result) -> None:  # type: ignore[no-untyped-def]
            nonlocal failed_so_far
            failed_so_far += result.status == "failed"
            bar.set_postfix(failed=failed_so_far, refresh=False)
            bar.update(1)

        from audiosim.runners import prefect_api_for_workers

        pruned: list = []
        with prefect_api_for_workers(spec):
            results = flows_ingest.run_ingest(
                paths, home=home.root, workers=in_flight, task_runner=spec.task_runner(),
                feature_config=feature_config, progress=progress, prune=args.prune, on_prune=pruned.append,
            )
    for p in pruned:
        if not args.quiet:
            for tid, path in p.pruned[:20]:
                print(f"pruned: {path} (track {tid})", file=sys.stderr)
        print(p.describe())
    counts = count_statuses(results)
    failed = sorted((r for r in results if r.status == "failed"), key=lambda r: r.path)
    if failed and not args.quiet:
        for r in failed[:20]:
            print(f"failed: {r.path}: {r.reason}" + (f" ({r.detail})" if r.detail else ""), file=sys.stderr)
        if len(failed) > 20:
            print(f"... and {len(failed) - 20} more", file=sys.stderr)
    line = ", ".join(f"{counts[s]} {s}" for s in ("added", "updated", "skipped", "failed"))
    if counts["failed"]:
        line += f" (see `audiosim catalog --failed{_hint_home(args)}`)"
    print(line)
    return EXIT_FAILURES if counts["failed"] else EXIT_OK


def _discover(paths: list[Path]) -> list[Path]:
    from audiosim.ingest.ingest import discover

    try:
        return discover(paths)
    except FileNotFoundError as e:
        raise UsageError(f"{e.filename}: no such file or folder") from e
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from e


# --------------------------------------------------------------------------
# catalog
# --------------------------------------------------------------------------

_TABLE_COLUMNS = ["status", "duration", "title", "artist", "album", "path"]
_FAILED_COLUMNS = ["reason", "detail", "path"]


def _add_catalog(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "catalog",
        parents=[_home_parent()],
        help="list the catalogued tracks",
        description="List the tracks of the catalogue. The table shows the main columns; "
        "csv and json give every column (id, path, content_hash, size, mtime_ns, title, "
        "artist, album, duration, sample_rate, channels, status, reason, detail, added_at, "
        "updated_at).",
    )
    p.add_argument("--failed", action="store_true", help="only files that failed, with the reason")
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="output format (default: table)",
    )
    p.set_defaults(func=_cmd_catalog)


def _cmd_catalog(args: argparse.Namespace) -> int:
    import pandas as pd

    from audiosim.store.catalog import Catalog

    home = DataHome.resolve(args.home)
    try:
        cat = Catalog(home.catalog_path, create=False)
    except FileNotFoundError:
        raise UsageError(f"no catalogue in {home.root} (run `audiosim ingest{_hint_home(args)}` first)") from None
    with cat:
        df = cat.tracks(status="failed" if args.failed else None)
        counts = cat.counts()
    if args.format == "json":
        records = json.loads(df.reset_index().to_json(orient="records", date_format="iso"))
        print(json.dumps(records, indent=2, ensure_ascii=False))
    elif args.format == "csv":
        sys.stdout.write(df.to_csv())
    else:
        if df.empty:
            what = "failed files" if args.failed else "tracks"
            print(f"no {what} in {home.catalog_path}")
            return EXIT_OK
        view = df[_FAILED_COLUMNS if args.failed else _TABLE_COLUMNS].copy()
        if "duration" in view:
            view["duration"] = view["duration"].map(_mmss)
        with pd.option_context("display.max_rows", None, "display.width", None, "display.max_colwidth", None):
            print(view.to_string(na_rep=""))
        print(f"{counts['ok']} ok, {counts['failed']} failed")
    return EXIT_OK


def _mmss(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return ""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


# --------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------


def _add_train(sub: argparse._SubParsersAction) -> None:
    from audiosim.config import TrainConfig

    p = sub.add_parser(
        "train",
        parents=[_home_parent()],
        help="train the fingerprint encoder on the catalogued tracks",
        description="Train the fingerprint encoder with triplet loss on the ok tracks of the "
        "catalogue (or on PATH... if given). Tracks are split by content hash: a share "
        "(val_fraction) is held out for validation and never trained on. The best checkpoint "
        "by validation is written to --out with a JSON card beside it; a running checkpoint "
        "<out>.last.pt lets an interrupted run resume. Decoded audio is cached in <home>/cache.",
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="audio files, folders or path lists to train on instead of the catalogue")
    p.add_argument("--out", type=Path, default=Path("models/fingerprint.candidate.pt"),
                   help="checkpoint to write (default: models/fingerprint.candidate.pt; the shipped "
                   "model is models/fingerprint.pt)")
    p.add_argument("--steps", type=int, default=TrainConfig().steps, help="training steps (default: %(default)s)")
    p.add_argument("--noise", nargs="*", type=Path, default=[], metavar="FILE",
                   help="environmental recordings to mix into positives as background noise")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if <out>.last.pt exists")
    p.add_argument("--init-from", type=Path, metavar="CKPT",
                   help="fine-tune: start from this checkpoint's weights (e.g. models/fingerprint.pt) "
                   "with a fresh optimiser and schedule; its feature settings must match")
    p.add_argument("--lr", type=float, default=TrainConfig().lr,
                   help="peak learning rate (default: %(default)s; about half of it suits fine-tuning)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from audiosim.config import TrainConfig
    from audiosim.ingest.ingest import discover
    from audiosim.training import loop as lib

    home = DataHome.resolve(args.home)
    if args.paths:
        tracks = lib.track_refs(discover(args.paths))
    else:
        try:
            tracks = lib.catalogue_tracks(home)
        except FileNotFoundError:
            raise UsageError(f"no catalogue in {home.root}: run `audiosim ingest` or give PATH...") from None
    if len(tracks) < 2:
        raise UsageError(f"need at least 2 tracks to train, found {len(tracks)}")
    noise = [str(p) for p in discover(args.noise)] if args.noise else []
    try:
        card = lib.train_from_tracks(tracks, args.out, home.cache_dir, noise_paths=noise,
                                     cfg=TrainConfig(steps=args.steps, lr=args.lr,
                                                     init_from=str(args.init_from or "")),
                                     resume=not args.no_resume)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"best model (step {card.get('step')}): {args.out}  validation: {card.get('validation')}")
    return EXIT_OK


# --------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        parents=[_home_parent()],
        help="run the whole pipeline on the built-in songbook",
        description="Write the built-in synthetic songbook, ingest it (holding two songs out), "
        "build the fingerprint index, identify degraded clips and one clip of a song that is "
        "not in the catalogue, print the mood groups and write a playlist report.",
    )
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from audiosim.demo.run import run_demo

    return run_demo(args.home)


# --------------------------------------------------------------------------
# index
# --------------------------------------------------------------------------


def _import_flows_index():  # type: ignore[no-untyped-def]
    """Import ``flows.index`` (see :func:`_import_flows_ingest`)."""
    _import_flows_ingest()  # puts the repo on sys.path when needed
    import flows.index as mod

    return mod


def _add_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        parents=[_home_parent()],
        help="build or update the fingerprint index from the catalogue",
        description="Embed the new and changed tracks of the catalogue into a new index shard, "
        "stop removed and changed tracks from matching, recalibrate the no-match thresholds "
        "(at most 1% of clips of absent music match, per clip length) and publish the index "
        "atomically: clips being identified meanwhile keep using the previous index.",
        epilog="Exit code: 0 on success, 2 on usage errors, a missing model, or an index built "
        "with another model or settings (rebuild it with --rebuild).",
    )
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="encoder checkpoint (default: the index's own, else models/fingerprint.pt)")
    p.add_argument("--compact", action="store_true", help="then merge all shards into one, dropping removed tracks")
    p.add_argument("--rebuild", action="store_true", help="re-embed every track (to change model or settings)")
    p.add_argument("--no-calibrate", action="store_true", help="keep the current thresholds")
    p.add_argument("--absent", nargs="+", type=Path, default=None, metavar="FILE",
                   help="calibrate on these files of music known not to be in the catalogue "
                   "(instead of leave-one-track-out)")
    p.add_argument("--max-false-match", type=float, default=None, metavar="RATE",
                   help="share of absent-music clips allowed to match, stored as the default (e.g. 0.01)")
    p.add_argument("--speeds", default=None, metavar="LIST",
                   help="playback speeds to try clips at, stored as the default and calibrated for, e.g. "
                   "0.95,1,1.05 to find clips played up to about 8%% fast or slow (DJ pitch, radio edits); "
                   "default 1 (about +-3%%). 1 is always tried, first; the others only for clips that do "
                   "not match as given")
    _runner_options(p, "batches of tracks embedded")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    p.set_defaults(func=_cmd_index)


def _cmd_index(args: argparse.Namespace) -> int:
    from audiosim.index.manifest import Manifest

    home = DataHome.resolve(args.home)
    if not home.catalog_path.exists():
        raise UsageError(f"no catalogue in {home.root} (run `audiosim ingest{_hint_home(args)}` first)")
    if args.model is not None and not args.model.is_file():
        raise UsageError(f"{args.model}: no such model checkpoint")
    rate = args.max_false_match
    if rate is not None and not 0.0 <= rate < 1.0:
        raise UsageError(f"--max-false-match must be in [0, 1), not {rate}")
    speeds = None
    if args.speeds is not None:
        try:
            speeds = tuple(sorted({1.0} | {float(x) for x in args.speeds.split(",") if x.strip()}))
        except ValueError:
            raise UsageError(f"--speeds takes numbers separated by commas, like 0.95,1,1.05, not {args.speeds!r}") from None
        if not all(0.5 <= x <= 2.0 for x in speeds):
            raise UsageError(f"--speeds must be between 0.5 and 2, not {args.speeds!r}")
    config = None
    if rate is not None or speeds is not None:
        import dataclasses

        from audiosim.config import IndexConfig

        try:
            base = Manifest.load(home.index_dir).config
        except FileNotFoundError:
            base = IndexConfig()
        config = dataclasses.replace(base, max_false_match=base.max_false_match if rate is None else rate,
                                     query_speeds=base.query_speeds if speeds is None else speeds)
    spec = _runner_spec(args)
    try:
        in_flight = spec.in_flight()
    except OSError as e:  # the Dask scheduler cannot be reached
        raise UsageError(str(e)) from None
    flows_index = _import_flows_index()
    from audiosim.runners import prefect_api_for_workers

    try:
        with prefect_api_for_workers(spec):
            results = flows_index.run_index(
                spec.task_runner(), home=home.root, model=args.model, compact=args.compact,
                rebuild=args.rebuild, calibrate=not args.no_calibrate and not args.absent, config=config,
                workers=in_flight,
            )
    except FileNotFoundError as e:
        raise UsageError(str(e)) from e
    if args.absent:
        from audiosim.match.calibrate import calibrate

        try:
            calibrate(home, args.absent, model=args.model)
        except ValueError as e:
            raise UsageError(str(e)) from e
    for i, r in enumerate(results):
        if r.action == "nothing" and i > 0:
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
    manifest = Manifest.load(home.index_dir)
    from audiosim.index.thresholds import Calibration, is_current

    if is_current(manifest.calibration) and not args.quiet:
        cal = Calibration.from_dict(manifest.calibration)
        cells = ", ".join(f"{row['seconds']:g} s > {row['threshold']:.3g}" for row in cal.table())
        print(f"thresholds ({cal.method}, at most {cal.max_false_match:.1%} of absent clips match): {cells}")
    elif manifest.calibration and not is_current(manifest.calibration):
        print("warning: the index's thresholds were calibrated for an older kind of score, so nothing will "
              "match; run `audiosim index` without --no-calibrate", file=sys.stderr)
    elif not manifest.calibration:
        print("warning: the index has no calibrated thresholds, so nothing will match "
              "(calibration needs at least two tracks with readable audio)", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------
# identify and monitor
# --------------------------------------------------------------------------

_MATCH_COLUMNS = ["clip", "track_id", "path", "title", "offset", "score", "threshold", "matched", "seconds"]


def _match_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="encoder checkpoint (default: the one the index was built with)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default: table)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--threshold", type=float, default=None, metavar="X",
                   help="fixed score threshold instead of the calibrated ones")
    g.add_argument("--max-false-match", type=float, default=None, metavar="RATE",
                   help="share of absent-music clips allowed to match (default: the index's, 0.01)")


def _matcher(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import warnings

    from audiosim.match.matcher import Matcher

    if args.model is not None and not args.model.is_file():
        raise UsageError(f"{args.model}: no such model checkpoint")
    if args.max_false_match is not None and not 0.0 <= args.max_false_match < 1.0:
        raise UsageError(f"--max-false-match must be in [0, 1), not {args.max_false_match}")
    home = DataHome.resolve(args.home)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = Matcher(home, args.model, threshold=args.threshold, max_false_match=args.max_false_match)
    except FileNotFoundError as e:
        if "no index" in str(e):
            raise UsageError(f"no index in {home.root} (run `audiosim index{_hint_home(args)}` first)") from e
        raise UsageError(str(e)) from e
    if m.calibration is None and args.threshold is None:
        print("warning: the index has no calibrated thresholds: nothing will match "
              "(run `audiosim index` or pass --threshold)", file=sys.stderr)
    return m


def _print_rows(rows: list[dict], columns: list[str], fmt: str) -> None:
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    if "track_id" in df:
        df["track_id"] = df["track_id"].astype("Int64")
    if fmt == "json":
        print(json.dumps(json.loads(df.to_json(orient="records")), indent=2, ensure_ascii=False))
    elif fmt == "csv":
        sys.stdout.write(df.to_csv(index=False))
    else:
        df = df.astype(object).where(df.notna(), "")
        with pd.option_context("display.max_rows", None, "display.width", None, "display.max_colwidth", None):
            print(df.to_string(index=False))


def _add_identify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "identify",
        parents=[_home_parent()],
        help="name the catalogue track each clip comes from",
        description="Identify audio clips against the index: one row per clip with the track, "
        "where the clip starts in it (offset, s), the score and the threshold it had to beat "
        "(calibrated per clip length so that at most 1% of clips of absent music match), "
        "whether it matched, and the seconds taken. The index and model are loaded once.",
        epilog="Exit code: 0 if every clip matched, 1 if some clip matched nothing or could not "
        "be read, 2 on usage errors (no index, model mismatch, bad options).",
    )
    p.add_argument("clips", nargs="+", type=Path, metavar="CLIP", help="audio file to identify")
    _match_options(p)
    p.set_defaults(func=_cmd_identify)


def _cmd_identify(args: argparse.Namespace) -> int:
    from audiosim.signal.audio import AudioError

    rows, unmatched = [], 0
    with _matcher(args) as m:
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
    _print_rows(rows, _MATCH_COLUMNS, args.format)
    return EXIT_FAILURES if unmatched else EXIT_OK


_TIMELINE_COLUMNS = ["start", "end", "track_id", "title", "offset", "score", "windows", "path"]


def _add_monitor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        parents=[_home_parent()],
        help="timeline of the catalogue tracks heard in a long recording",
        description="Slide a window over a recording, identify each window and merge consecutive "
        "windows that agree on a track (at a consistent position) into timeline rows: start and "
        "end in the recording (s), the track, and the offset in the track at the start.",
        epilog="Exit code: 0 if some track was found, 1 if none, 2 on usage errors.",
    )
    p.add_argument("recording", type=Path, metavar="RECORDING", help="audio file (any length)")
    p.add_argument("--window", type=float, default=5.0, metavar="S", help="window length in seconds (default 5)")
    p.add_argument("--hop", type=float, default=2.5, metavar="S", help="window hop in seconds (default 2.5)")
    _match_options(p)
    p.set_defaults(func=_cmd_monitor)


def _cmd_monitor(args: argparse.Namespace) -> int:
    from audiosim.signal.audio import AudioError

    if not 0 < args.hop <= args.window:
        raise UsageError("need 0 < --hop <= --window")
    with _matcher(args) as m:
        try:
            rows = m.monitor(args.recording, window=args.window, hop=args.hop)
        except AudioError as e:
            raise UsageError(str(e)) from e
    _print_rows([r.to_dict() for r in rows], _TIMELINE_COLUMNS, args.format)
    return EXIT_OK if rows else EXIT_FAILURES



# --------------------------------------------------------------------------
# serve (and the --workers / --dask options)
# --------------------------------------------------------------------------


def _runner_options(p: argparse.ArgumentParser, what: str, default: int | None = 1) -> None:
    p.add_argument("--workers", type=int, default=default, metavar="N",
                   help=f"{what} at once: 1 in this process; N > 1 in a local Dask cluster of N worker "
                   "processes" + (f" (default: {default})" if default is not None else ""))
    p.add_argument("--dask", metavar="ADDRESS", default=None,
                   help=f"send the {what} to the workers of an existing Dask scheduler (tcp://host:8786) "
                   "instead; they must see the data home at the same path, and PREFECT_API_URL should "
                   "name a Prefect server they can reach (default: $AUDIOSIM_DASK_ADDRESS)")


def _runner_spec(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from audiosim.runners import resolve

    try:
        return resolve(args.workers, args.dask)
    except ValueError as e:
        raise UsageError(f"--workers/--dask: {e}") from None


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        parents=[_home_parent()],
        help="run the scheduled flows: ingest and index every 15 min, nightly compaction, weekly retrain",
        description="Serve the deployments of prefect.yaml, with their schedules, in this process: "
        "ingest-and-index every 15 minutes over the watched folder(s) (only new or changed files do "
        "work), nightly-compaction of the index shards, weekly-retrain (the model is replaced only "
        "if the new one validates better) and the on-demand playlist report. Nothing to set up: "
        "without PREFECT_API_URL a temporary local Prefect API runs alongside. Stop with Ctrl-C.",
        epilog="With PREFECT_API_URL pointing at a Prefect server the deployments also appear in its "
        "UI and can be triggered, e.g. `prefect deployment run playlist-report/on-demand --param "
        "playlist=mix.m3u`. To run flows on workers elsewhere, use `prefect deploy --all` and "
        "`prefect worker start --pool audiosim` instead (see the README).",
    )
    p.add_argument("--watch", nargs="+", type=Path, metavar="DIR",
                   help="folder(s) ingested every 15 minutes (default: $AUDIOSIM_WATCH)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="serve only these deployments (ingest-and-index, nightly-compaction, "
                   "weekly-retrain, on-demand)")
    _runner_options(p, "files ingested", default=None)
    p.add_argument("--list", action="store_true", help="print the deployments and their schedules, then exit")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    _import_flows_ingest()  # puts the project root on sys.path when run from elsewhere
    from flows.deploy import build_deployments, serve_deployments

    spec = _runner_spec(args)
    for w in args.watch or []:
        if not w.is_dir():
            raise UsageError(f"--watch {w}: no such folder")
    kwargs = dict(watch=args.watch, home=args.home, only=args.only, workers=args.workers, dask_address=spec.dask)
    try:
        deployments = build_deployments(**kwargs)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.list:
        for d in deployments:
            when = ", ".join(_describe_schedule(s.schedule) for s in d.schedules or []) or "on demand"
            print(f"{d.flow_name}/{d.name}: {when}; parameters {json.dumps(d.parameters)}")
        return EXIT_OK
    serve_deployments(**kwargs)
    return EXIT_OK


def _describe_schedule(schedule: object) -> str:
    cron = getattr(schedule, "cron", None)
    if cron:
        return f"cron '{cron}'"
    interval = getattr(schedule, "interval", None)
    return f"every {interval.total_seconds() / 60:g} min" if interval is not None else str(schedule)


# --------------------------------------------------------------------------
# similar, moods, report (song similarity)
# --------------------------------------------------------------------------


def _model_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="song-similarity model (default: models/similarity.pt)")
    return p


def _similarity_model(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from audiosim.similarity.vectors import (
        DEFAULT_SIMILARITY_MODEL,
        load_similarity_model,
    )

    path = args.model or DEFAULT_SIMILARITY_MODEL
    try:
        return load_similarity_model(path)
    except FileNotFoundError:
        raise UsageError(f"no similarity model at {path} (train one with `python -m audiosim.training.similarity`)") from None


def _need_catalogue(args: argparse.Namespace) -> DataHome:
    home = DataHome.resolve(args.home)
    if not home.catalog_path.is_file():
        raise UsageError(f"no catalogue in {home.root} (run `audiosim ingest{_hint_home(args)}` first)")
    return home


def _add_similar(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "similar",
        parents=[_home_parent(), _model_parent()],
        help="list the catalogue songs that sound most like a track",
        description="List the catalogue songs whose sound is closest to TRACK. The score is the cosine "
        "similarity of the two song vectors (1 = the same sound; unrelated songs score near the "
        "catalogue's typical pair). The song index (<home>/index/songs/) is built, or rebuilt when the "
        "catalogue or the model changed, before the query.",
    )
    p.add_argument("track", metavar="TRACK",
                   help="catalogue id (see `audiosim catalog`) or audio file; a file that is not in the "
                   "catalogue is analysed on the fly")
    p.add_argument("-k", type=int, default=10, metavar="N", help="number of songs to list (default: 10)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default: table)")
    p.set_defaults(func=_cmd_similar)


def _cmd_similar(args: argparse.Namespace) -> int:
    import pandas as pd

    from audiosim.similarity.vectors import resolve_track, similar

    if args.k < 1:
        raise UsageError(f"-k must be at least 1, not {args.k}")
    home = _need_catalogue(args)
    model = _similarity_model(args)
    try:
        query = resolve_track(args.track, home)
        df = similar(args.track, home, k=args.k, model=model, log=lambda m: print(m, file=sys.stderr))
    except (LookupError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    if args.format == "json":
        print(json.dumps(json.loads(df.to_json(orient="records")), indent=2, ensure_ascii=False))
    elif args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
    else:
        where = f"id {query.track_id}" if query.track_id is not None else "not in the catalogue"
        print(f"Songs most similar to {query.title} ({where}; {query.path}):")
        if df.empty:
            print("(the catalogue has no other songs)")
            return EXIT_OK
        view = df[["rank", "score", "id", "title", "duration", "path"]].copy()
        view["score"] = view["score"].map("{:.3f}".format)
        view["duration"] = view["duration"].map(_mmss)
        with pd.option_context("display.max_rows", None, "display.width", None, "display.max_colwidth", 60):
            print(view.to_string(index=False))
    return EXIT_OK


def _add_moods(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "moods",
        parents=[_home_parent(), _model_parent()],
        help="group the catalogue's songs by mood, with the descriptors behind each label",
        description="Group every catalogue song by mood: k-means on song vectors plus librosa descriptors "
        "(tempo, pulse clarity, onset rate, loudness and range, brightness, key and mode). Each group is "
        "named by the mood prototype (energetic, happy, tense, calm, melancholic) nearest its mean valence "
        "and arousal, and explained by its median descriptors. Descriptors are cached, so only new songs "
        "are analysed.",
    )
    p.add_argument("--csv", action="store_true",
                   help="print one CSV row per song (group, mood, valence, arousal, descriptors, why)")
    p.add_argument("--groups", type=int, default=0, metavar="N",
                   help="number of groups (default: chosen by silhouette score, 2-8)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="songs analysed at once (default: 1)")
    p.set_defaults(func=_cmd_moods)


def _cmd_moods(args: argparse.Namespace) -> int:
    from audiosim.config import MoodConfig
    from audiosim.similarity.mood import catalogue_moods, format_groups

    if args.groups < 0 or args.groups == 1:
        raise UsageError(f"--groups must be 0 (automatic) or at least 2, not {args.groups}")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    home = _need_catalogue(args)
    model = _similarity_model(args)
    errors: list[str] = []
    try:
        result, per_song = catalogue_moods(
            home, model, MoodConfig(n_groups=args.groups), progress=sys.stderr.isatty(),
            on_error=lambda tid, msg: errors.append(f"id {tid}: {msg}"), workers=args.workers,
        )
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    for e in errors[:20]:
        print(f"not analysed: {e}", file=sys.stderr)
    if per_song.empty:
        print(f"no songs to group in {home.root}")
        return EXIT_OK
    if args.csv:
        cols = ["group", "group_name", "mood", "valence", "arousal", "title", "tempo_bpm", "pulse_clarity",
                "onset_rate", "loudness_db", "dynamic_range_db", "centroid_hz", "rolloff_hz", "key", "mode",
                "key_strength", "mode_clarity", "duration", "why", "path"]
        sys.stdout.write(per_song.sort_values(["group", "arousal"], ascending=[True, False])[cols].to_csv())
    else:
        print(format_groups(result, per_song))
    return EXIT_OK


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        parents=[_home_parent(), _model_parent()],
        help="write an HTML + CSV report on a playlist",
        description="Analyse a playlist against the catalogue: cohesion, most and least similar pairs, "
        "outliers and why, a similarity heatmap, a map of the catalogue, the mood mix, the tempo and "
        "energy arc, a smoother order and suggested additions. Writes one self-contained report.html "
        "and the tables as CSV to <home>/reports/<playlist name>/ (or --out).",
        epilog="Playlist files that are not catalogued yet are ingested first (unless --no-ingest); "
        "entries that cannot be used are listed in the report.",
    )
    p.add_argument("playlist", type=Path, metavar="PLAYLIST",
                   help="M3U/M3U8, text (.txt/.lst) or CSV list of audio paths or catalogue ids, or a folder")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder")
    p.add_argument("--no-ingest", action="store_true", help="do not ingest uncatalogued files; list them as missing")
    p.add_argument("--additions", type=int, default=10, metavar="N", help="suggested additions (default: 10)")
    p.add_argument("--flow", action="store_true",
                   help="run as the Prefect flow `playlist-report` (publishes the summary as artifacts)")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from audiosim.report.playlist import build_report, summary_markdown, write_report

    if args.additions < 0:
        raise UsageError(f"--additions must be 0 or more, not {args.additions}")
    if not args.playlist.exists():
        raise UsageError(f"{args.playlist}: no such playlist file or folder")
    home = DataHome.resolve(args.home)
    if args.no_ingest:
        _need_catalogue(args)
    try:
        if args.flow:
            _similarity_model(args)  # fails early and clearly when there is no model
            html = Path(_import_flows_report().report_flow(
                str(args.playlist), home=str(home.root), out=None if args.out is None else str(args.out),
                ingest=not args.no_ingest, n_additions=args.additions,
                model=None if args.model is None else str(args.model)))
            print(html)
            return EXIT_OK
        model = _similarity_model(args)
        report = build_report(args.playlist, home, model=model, ingest=not args.no_ingest,
                              n_additions=args.additions, progress=sys.stderr.isatty(),
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


def _import_flows_report():  # type: ignore[no-untyped-def]
    """Import ``flows.report`` (see :func:`_import_flows_ingest`)."""
    _import_flows_ingest()  # puts the repository on sys.path when needed
    import flows.report as mod

    return mod


# --------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_ingest, _add_catalog, _add_train, _add_index, _add_identify, _add_monitor, _add_demo, _add_serve,
    _add_similar, _add_moods, _add_report,
]
"""Functions that each add one subcommand, in ``--help`` order."""


def build_parser() -> argparse.ArgumentParser:
    """The ``audiosim`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="audiosim",
        description="Audio fingerprinting and music similarity. Data (catalogue, features, "
        "index, reports) lives in a data home: --home DIR, else $AUDIOSIM_HOME, else ./data.",
        epilog="Run `audiosim COMMAND --help` for the options of a command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``audiosim`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success, 1 some files failed, 2 usage or
        configuration error, 130 interrupted.
    """
    _prefect_env_defaults()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return int(e.code or 0)
    with _exit_cleanly_on_sigterm():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except UsageError as e:
        print(f"audiosim {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigMismatchError as e:
        print(f"audiosim {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `audiosim catalog | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"audiosim {args.command}: interrupted (work done so far is kept)", file=sys.stderr)
        return EXIT_INTERRUPTED


class _exit_cleanly_on_sigterm:
    """Turn SIGTERM into SystemExit so that cleanup (Prefect's temporary server) runs."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handler)

    @staticmethod
    def _handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


if __name__ == "__main__":
    sys.exit(main())
