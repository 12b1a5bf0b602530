"""Train the song-similarity encoder on the dev corpus (Debian game soundtracks).

The corpus is a text file of audio paths, one per line, of the music shipped
in the Debian packages :data:`DEV_PACKAGES`. Each song's label is its
soundtrack (:func:`soundtrack`, from the install path). Only the training
side of the fingerprint model's split (``--split``, its ``.split.json``) is
used: a further hash split of it selects the checkpoint, so the held-out
tracks stay unseen for ``benchmarks/similarity.py``. The training itself is
:func:`audiosim.similarity.song_training.train_similarity`.

Run it as ``python scripts/train_similarity.py --help``. It is a script, not
part of the library: nothing in ``audiosim`` imports it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

from audiosim.config import SIMILARITY_TRAIN, TrainConfig, similarity_features
from audiosim.similarity.song_training import train_similarity
from audiosim.training.data import (
    AudioSet,
    TrackRef,
    load_audio_set,
    split_by_file,
    split_tracks,
    track_refs,
)

DEV_PACKAGES = (
    "fretsonfire-songs-muldjord fretsonfire-songs-sectoid drascula-music asc-music lincity-ng-data "
    "extremetuxracer-data xmoto-data freedroidrpg-data hedgewars-data pushover-data supertux-data "
    "widelands-data megaglest-data warmux-data"
).split()
"""Debian packages the dev corpus comes from (game soundtracks)."""


def soundtrack(path: str | Path) -> str:
    """The soundtrack (game) a Debian-packaged track belongs to.

    ``/usr/share/games/<game>/...`` and ``/usr/share/scummvm/<game>/...``
    give ``<game>``; ``/usr/share/<package>/...`` gives ``<package>``;
    anything else its parent folder's name.

    Examples
    --------
    >>> soundtrack("/usr/share/games/supertux2/music/forest/x.ogg")
    'supertux2'
    >>> soundtrack("/usr/share/scummvm/drascula/audio/track2.ogg")
    'drascula'
    """
    parts = Path(path).parts
    if len(parts) > 4 and parts[1:3] == ("usr", "share"):
        return parts[4] if parts[3] in ("games", "scummvm") and len(parts) > 5 else parts[3]
    return Path(path).parent.name


def _labels(refs: Sequence[TrackRef], data: AudioSet) -> list[str]:
    """The soundtrack of every song of ``data`` (loaded from ``refs``, in its order)."""
    by_name = {r.name or Path(r.path).name: r for r in refs}
    return [soundtrack(by_name[n].path) for n in data.names]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, split and load the corpus, train; exit status 0."""
    p = argparse.ArgumentParser(prog="python scripts/train_similarity.py", description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, required=True, help="text file, one audio path per line")
    p.add_argument("--split", type=Path, required=True, help="the fingerprint model's split.json (held-out side is never used)")
    p.add_argument("--cache", type=Path, required=True, help="folder of cached waveforms at the encoder's rate, by content hash (filled on first use)")
    p.add_argument("--out", type=Path, default=Path("models/similarity.pt"))
    p.add_argument("--steps", type=int, default=SIMILARITY_TRAIN.steps)
    p.add_argument("--batch-size", type=int, default=SIMILARITY_TRAIN.batch_size)
    p.add_argument("--validate-every", type=int, default=SIMILARITY_TRAIN.validate_every)
    p.add_argument("--mining", default=SIMILARITY_TRAIN.mining,
                   choices=("semi_hard_then_hard", "semi_hard", "batch_hard", "batch_all"))
    p.add_argument("--margin", type=float, default=SIMILARITY_TRAIN.margin)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="use only the first N training tracks (smoke tests)")
    p.add_argument("--init", type=Path, default=None, help="copy matching weights from this checkpoint first")
    p.add_argument("--max-minutes", type=float, default=None, help="fit the training into this many minutes")
    p.add_argument("--soundtrack-negatives", action="store_true",
                   help="songs of the anchor's soundtrack (training-split folder labels) are not negatives")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if <out>.last.pt exists")
    args = p.parse_args(argv)

    paths = [line.strip() for line in args.corpus.read_text().splitlines() if line.strip()]
    refs = track_refs(paths)
    train_refs, held, unknown = split_by_file(refs, args.split)
    if unknown:
        print(f"{len(unknown)} corpus tracks are in neither side of {args.split}: not used")
    cfg = TrainConfig.from_dict({**SIMILARITY_TRAIN.to_dict(), "steps": args.steps, "batch_size": args.batch_size,
                                 "validate_every": args.validate_every, "threads": args.threads,
                                 "mining": args.mining, "margin": args.margin})
    fit, select = split_tracks(train_refs, cfg.val_fraction, seed=cfg.seed + 1)
    if args.limit:
        fit, select = fit[: args.limit], select[: max(4, args.limit // 4)]
    print(f"{len(fit)} training songs, {len(select)} selection songs (from the training split); "
          f"{len(held)} held-out songs left untouched")
    f = similarity_features()
    fit_data = load_audio_set(fit, f, args.cache)
    select_data = load_audio_set(select, f, args.cache)
    card = dict(
        data=dict(
            source="Debian game-soundtrack packages (dev corpus)",
            packages=DEV_PACKAGES,
            split=f"training side of {args.split.name} (track-level by content hash); "
            f"selection = hash split of it with seed {cfg.seed + 1}",
            train_tracks=len(fit), select_tracks=len(select), held_out_tracks_unused=len(held),
            train_soundtracks=sorted({soundtrack(r.path) for r in fit}),
        ),
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    labels = _labels(select, select_data)
    groups = _labels(fit, fit_data) if args.soundtrack_negatives else None
    train_similarity(fit_data, select_data, args.out, f, cfg=cfg, card=card, select_labels=labels,
                     train_groups=groups, init=args.init, max_minutes=args.max_minutes, resume=not args.no_resume)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
