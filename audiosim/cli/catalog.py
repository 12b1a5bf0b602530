"""``audiosim catalog``: list the catalogued tracks (or the files that failed)."""

from __future__ import annotations

import argparse

from audiosim.cli.options import (
    EXIT_OK,
    UsageError,
    add_format_option,
    home_option,
    no_catalogue,
)
from audiosim.cli.output import write_rows
from audiosim.format import duration
from audiosim.store.home import DataHome

TABLE_COLUMNS = ["status", "duration", "title", "artist", "album", "path"]
"""The table's columns (csv and json give every column)."""
FAILED_COLUMNS = ["reason", "detail", "path"]
"""The table's columns with ``--failed``."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim catalog`` and its options."""
    p = sub.add_parser(
        "catalog",
        parents=[home_option()],
        help="list the catalogued tracks",
        description="List the tracks of the catalogue. The table shows the main columns; "
        "csv and json give every column (id, path, content_hash, size, mtime_ns, title, "
        "artist, album, duration, sample_rate, channels, status, reason, detail, added_at, "
        "updated_at).",
    )
    p.add_argument("--failed", action="store_true", help="only files that failed, with the reason")
    add_format_option(p)


def run(args: argparse.Namespace) -> int:
    """Print the catalogue's tracks, indexed by id."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.store.catalog import Catalog
    home = DataHome.resolve(args.home)
    try:
        cat = Catalog(home.catalog_path, create=False)
    except FileNotFoundError:
        raise UsageError(no_catalogue(home, args)) from None
    with cat:
        df = cat.tracks(status="failed" if args.failed else None)
        counts = cat.counts()
    if args.format != "table":
        write_rows(df, args.format, index=True)
        return EXIT_OK
    if df.empty:
        what = "failed files" if args.failed else "tracks"
        print(f"no {what} in {home.catalog_path}")
        return EXIT_OK
    columns = FAILED_COLUMNS if args.failed else TABLE_COLUMNS
    write_rows(df, "table", columns=columns, index=True,
               table_formats={"duration": duration} if "duration" in columns else None)
    print(f"{counts['ok']} ok, {counts['failed']} failed")
    return EXIT_OK
