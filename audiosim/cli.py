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

from .config import ConfigMismatchError, FeatureConfig
from .store import DataHome

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# Prefect runs locally without a server of its own (a temporary one is started
# per run) and quietly: these apply unless the user set them already, and must
# be set before prefect is imported. The temporary server's own log is turned
# down to CRITICAL because it reports harmless shutdown races as tracebacks.
PREFECT_ENV_DEFAULTS = {
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
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
        root = Path(__file__).resolve().parent.parent
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
    p.add_argument("--workers", type=int, default=1, metavar="N", help="files processed at once (default: 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no list of failures")
    p.set_defaults(func=_cmd_ingest)


def _cmd_ingest(args: argparse.Namespace) -> int:
    from .ingest import count_statuses, prepare

    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    home = DataHome.resolve(args.home)
    feature_config = FeatureConfig()
    paths: list[Path] = list(args.paths)
    files = _discover(paths) if paths else []  # bad paths fail before the home is made
    try:
        prepare(home, feature_config)
    except (NotADirectoryError, FileExistsError) as e:
        raise UsageError(f"cannot use {e.filename or home.root} as data home: {e.strerror or e}") from e
    if not paths:
        from .songbook import write_songbook

        folder = home.root / "songbook"
        paths = list(write_songbook(folder))
        files = _discover(paths)
        if not args.quiet:
            print(f"songbook: {len(paths)} synthetic songs in {folder}", file=sys.stderr)
    if not files:
        print(f"no audio files found in {', '.join(map(str, paths))}", file=sys.stderr)
        print("0 added, 0 updated, 0 skipped, 0 failed")
        return EXIT_OK

    flows_ingest = _import_flows_ingest()
    from tqdm import tqdm

    with tqdm(total=len(files), unit="file", desc="ingest", disable=args.quiet or None, file=sys.stderr) as bar:
        failed_so_far = 0

        def progress(result) -> None:  # type: ignore[no-untyped-def]
            nonlocal failed_so_far
            failed_so_far += result.status == "failed"
            bar.set_postfix(failed=failed_so_far, refresh=False)
            bar.update(1)

        results = flows_ingest.run_ingest(
            paths, home=home.root, workers=args.workers, feature_config=feature_config, progress=progress
        )
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
    from .ingest import discover

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

    from .catalog import Catalog

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
# entry point
# --------------------------------------------------------------------------

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_ingest, _add_catalog]
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
