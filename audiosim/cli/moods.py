"""``audiosim moods``: the catalogue's songs in mood groups, with the descriptors behind each label."""

from __future__ import annotations

import argparse
import sys

from audiosim.cli.options import (
    EXIT_OK,
    UsageError,
    check_at_least_one,
    home_option,
    model_option,
    need_catalogue,
)
from audiosim.cli.output import write_rows
from audiosim.cli.song_model import load_song_model
from audiosim.config import MoodConfig
from audiosim.similarity.mood import catalogue_moods, format_groups

CSV_COLUMNS = ["group", "group_name", "mood", "valence", "arousal", "title", "tempo_bpm", "pulse_clarity",
               "onset_rate", "loudness_db", "dynamic_range_db", "centroid_hz", "rolloff_hz", "key", "mode",
               "key_strength", "mode_clarity", "duration", "why", "path"]
"""The columns of ``--csv`` (after the track id), one row per song."""
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
    )
    p.add_argument("--csv", action="store_true",
                   help="print one CSV row per song (group, mood, valence, arousal, descriptors, why)")
    p.add_argument("--groups", type=int, default=0, metavar="N",
                   help="number of groups (default: chosen by silhouette score, 2-8)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="songs analysed at once (default: 1)")


def run(args: argparse.Namespace) -> int:
    """Print the mood groups (or one CSV row per song)."""
    if args.groups < 0 or args.groups == 1:
        raise UsageError(f"--groups must be 0 (automatic) or at least 2, not {args.groups}")
    check_at_least_one("--workers", args.workers)
    home = need_catalogue(args)
    model = load_song_model(args)
    errors: list[str] = []
    try:
        result, per_song = catalogue_moods(
            home, model, MoodConfig(n_groups=args.groups), progress=sys.stderr.isatty(),
            on_error=lambda tid, msg: errors.append(f"id {tid}: {msg}"), workers=args.workers,
        )
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    for e in errors[:SHOWN_ERRORS]:
        print(f"not analysed: {e}", file=sys.stderr)
    if per_song.empty:
        print(f"no songs to group in {home.root}")
        return EXIT_OK
    if args.csv:
        songs = per_song.sort_values(["group", "arousal"], ascending=[True, False])
        write_rows(songs, "csv", columns=CSV_COLUMNS, index=True)
    else:
        print(format_groups(result, per_song))
    return EXIT_OK
