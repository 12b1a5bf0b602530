"""``audiosim train``: train the fingerprint encoder on the catalogued tracks."""

from __future__ import annotations

import argparse
from pathlib import Path

from audiosim.cli.options import EXIT_OK, UsageError, home_option
from audiosim.config import TrainConfig
from audiosim.store.home import DataHome


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim train`` and its options."""
    p = sub.add_parser(
        "train",
        parents=[home_option()],
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


def run(args: argparse.Namespace) -> int:
    """Train, keeping the best checkpoint by validation, and print where it is."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.ingest.discover import discover
    from audiosim.training.data import catalogue_track_refs, track_refs
    from audiosim.training.loop import train_from_tracks
    home = DataHome.resolve(args.home)
    if args.paths:
        tracks = track_refs(discover(args.paths))
    else:
        try:
            tracks = catalogue_track_refs(home)
        except FileNotFoundError:
            raise UsageError(f"no catalogue in {home.root}: run `audiosim ingest` or give PATH...") from None
    if len(tracks) < 2:
        raise UsageError(f"need at least 2 tracks to train, found {len(tracks)}")
    noise = [str(p) for p in discover(args.noise)] if args.noise else []
    try:
        card = train_from_tracks(tracks, args.out, home.cache_dir, noise_paths=noise,
                                 cfg=TrainConfig(steps=args.steps, lr=args.lr, init_from=str(args.init_from or "")),
                                 resume=not args.no_resume)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"best model (step {card.get('step')}): {args.out}  validation: {card.get('validation')}")
    return EXIT_OK
