"""``audiosim tags``: a track's musicnn tags, each with its percentile among the catalogue's songs."""

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


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim tags`` and its options."""
    p = sub.add_parser(
        "tags",
        parents=[home_option(), model_option()],
        help="a track's musicnn tags, each ranked among the catalogue's songs",
        description="List the most probable tags of TRACK from both musicnn models (msd: genres and "
        "moods such as rock, chill, happy; mtt: instruments and character such as guitar, quiet, "
        "slow). The probabilities are small and differ from tag to tag, so each comes with its "
        "percentile among the catalogue's songs: 90 means more of that tag than nine in ten songs of "
        "the catalogue. Song analyses are cached, so only songs not analysed before are decoded.",
        epilog="csv and json give one row per tag: model, tag, probability, percentile.",
    )
    p.add_argument("track", metavar="TRACK",
                   help="catalogue id (see `audiosim catalog`), audio file, or title (a whole title or a "
                   "part of one that names one track); a file outside the catalogue is analysed on the fly "
                   "and ranked among the catalogue's songs")
    p.add_argument("--top", type=int, default=5, metavar="N", help="tags listed per model (default: 5)")
    add_format_option(p)


def run(args: argparse.Namespace) -> int:
    """Print the track's top tags of each model with their catalogue percentiles."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.cli.song_model import load_song_model
    from audiosim.signal.audio import AudioError
    from audiosim.similarity.song_index import resolve_track
    from audiosim.similarity.tags import TAG_COLUMNS, query_analysis, track_tags
    from audiosim.similarity.vectors import catalogue_vectors
    check_at_least_one("--top", args.top)
    home = need_catalogue(args)
    model = load_song_model(args)
    try:
        query = resolve_track(args.track, home)
        song = query_analysis(query, home, model)
    except LookupError as e:
        raise UsageError(str(e)) from None
    except (AudioError, ValueError) as e:
        raise UsageError(f"cannot be analysed: {e}") from None
    catalogue = catalogue_vectors(home, model, progress=True,
                                  on_error=lambda tid, msg: print(f"not analysed: id {tid}: {msg}", file=sys.stderr))
    df = track_tags(song, catalogue, top=args.top)
    if args.format != "table":
        write_rows(df, args.format, columns=TAG_COLUMNS)
        return EXIT_OK
    where = f"id {query.track_id}" if query.track_id is not None else "not in the catalogue"
    print(f"Tags of {query.title} ({where}; {query.path}), percentile among {len(catalogue.tracks)} "
          "catalogue songs:")
    write_rows(df, "table", columns=TAG_COLUMNS,
               table_formats={"probability": "{:.3f}".format, "percentile": "{:.0f}".format})
    return EXIT_OK
