"""``audiosim similar``: the catalogue songs that sound most like a track."""

from __future__ import annotations

import argparse
import sys

from audiosim.cli.options import (
    EXIT_OK,
    UsageError,
    add_format_option,
    check_at_least_one,
    home_option,
    model_option,
    need_catalogue,
)
from audiosim.cli.output import write_rows
from audiosim.format import duration
from audiosim.progress import Progress

TABLE_COLUMNS = ["rank", "score", "id", "title", "duration", "path"]
"""The table's columns (csv and json give every column of :func:`audiosim.similarity.song_index.similar`)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim similar`` and its options."""
    p = sub.add_parser(
        "similar",
        parents=[home_option(), model_option()],
        help="list the catalogue songs that sound most like a track",
        description="List the catalogue songs whose sound is closest to TRACK. The score is the cosine "
        "similarity of the two song vectors (1 = the same sound; unrelated songs score near the "
        "catalogue's typical pair). The song index (<home>/index/songs/) is built, or rebuilt when the "
        "catalogue or the model changed, before the query.",
    )
    p.add_argument("track", metavar="TRACK",
                   help="catalogue id (see `audiosim catalog`), audio file, or title: a whole title or a "
                   "part of one, case-insensitive, that names one track (a part found in several titles "
                   "lists them); a file that is not in the catalogue is analysed on the fly")
    p.add_argument("-k", type=int, default=10, metavar="N", help="number of songs to list (default: 10)")
    add_format_option(p)


def run(args: argparse.Namespace) -> int:
    """Print the ``-k`` songs most similar to the track, best first."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.cli.song_model import load_song_model
    from audiosim.similarity.song_index import resolve_track, similar
    check_at_least_one("-k", args.k)
    home = need_catalogue(args)
    model = load_song_model(args)
    try:
        query = resolve_track(args.track, home)
        with Progress() as progress:
            df = similar(query.path if query.track_id is not None else args.track, home, k=args.k, model=model,
                         log=lambda m: print(m, file=sys.stderr), progress=progress)
    except (LookupError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    if args.format != "table":
        write_rows(df, args.format)
        return EXIT_OK
    where = f"id {query.track_id}" if query.track_id is not None else "not in the catalogue"
    print(f"Songs most similar to {query.title} ({where}; {query.path}):")
    if df.empty:
        print("(the catalogue has no other songs)")
        return EXIT_OK
    write_rows(df, "table", columns=TABLE_COLUMNS, table_formats={"score": "{:.3f}".format, "duration": duration})
    return EXIT_OK
