"""``audiosim moods``: the catalogue's songs in mood groups, with the descriptors behind each label."""

from __future__ import annotations

import argparse
import sys

from audiosim.cli.options import (
    EXIT_OK,
    FORMATS,
    UsageError,
    check_at_least_one,
    home_option,
    model_option,
    need_catalogue,
)
from audiosim.cli.output import write_rows
from audiosim.config import MoodConfig
from audiosim.progress import Progress

SONG_COLUMNS = ["group", "group_name", "mood", "valence", "arousal", "title", "tempo_bpm", "pulse_clarity",
               "onset_rate", "loudness_db", "dynamic_range_db", "centroid_hz", "rolloff_hz", "key", "mode",
               "key_strength", "mode_clarity", "duration", "why", "path"]
"""The columns of ``--format csv|json`` (after the track id), one row per song."""
SHOWN_ERRORS = 20
"""Songs that could not be analysed listed one by one."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim moods`` and its options."""
    p = sub.add_parser(
        "moods",
        parents=[home_option(), model_option()],
        help="group the catalogue's songs by mood, with the descriptors behind each label",
        description="Group every catalogue song by mood: k-means on song vectors plus librosa descriptors "
        "(tempo, pulse clarity, onset rate, loudness and range, brightness, key and mode). Each group is "
        "named by the mood prototype (energetic, happy, tense, calm, melancholic) nearest its mean valence "
        "and arousal, and explained by its median descriptors. Descriptors are cached, so only new songs "
        "are analysed.",
        epilog="The table lists each group with its songs; csv and json give one row per song (track id, "
        "group, group name, mood, valence, arousal, descriptors, why), by group and then by arousal.",
    )
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="table: the groups and their songs (default); csv or json: one row per song")
    p.add_argument("--csv", action="store_const", const="csv", dest="csv_format", default=None,
                   help="the same as --format csv")
    p.add_argument("--groups", type=int, default=0, metavar="N",
                   help="number of groups, from 2 to one fewer than the songs (default: chosen by "
                   "silhouette score, 3-8)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="batches of songs not analysed before, analysed at once on threads "
                   "with one torch thread each (default: 1: one batch at a time, torch on every core)")


def run(args: argparse.Namespace) -> int:
    """Print the mood groups (or one CSV or JSON row per song)."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.cli.song_model import load_song_model
    from audiosim.similarity.mood import TooManyGroups, catalogue_moods, format_groups
    if args.format is not None and args.csv_format is not None and args.format != "csv":
        raise UsageError(f"--csv and --format {args.format} disagree; give one of them")
    fmt = args.format or args.csv_format or "table"
    if args.groups < 0 or args.groups == 1:
        raise UsageError(f"--groups must be 0 (automatic) or at least 2, not {args.groups}")
    check_at_least_one("--workers", args.workers)
    home = need_catalogue(args)
    model = load_song_model(args)
    errors: list[str] = []
    try:
        with Progress() as progress:
            result, per_song = catalogue_moods(
                home, model, MoodConfig(n_groups=args.groups), progress=progress,
                on_error=lambda tid, msg: errors.append(f"id {tid}: {msg}"), workers=args.workers,
            )
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    except TooManyGroups as e:
        raise UsageError(f"--groups {args.groups}: {e}") from None
    for e in errors[:SHOWN_ERRORS]:
        print(f"not analysed: {e}", file=sys.stderr)
    if per_song.empty:
        print(f"no songs to group in {home.root}")
        return EXIT_OK
    if fmt != "table":
        songs = per_song.sort_values(["group", "arousal"], ascending=[True, False])
        write_rows(songs, fmt, columns=SONG_COLUMNS, index=True)
    else:
        print(format_groups(result, per_song))
    return EXIT_OK
