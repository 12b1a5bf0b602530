"""``audiosim train``: train the fingerprint encoder on the catalogued tracks."""

from __future__ import annotations

import argparse
from pathlib import Path

from audiosim.cli.options import EXIT_OK, UsageError, home_option, parse_settings
from audiosim.config import AugmentConfig, TrainConfig
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
    p.add_argument("--speech", nargs="*", type=Path, default=[], metavar="FILE",
                   help="speech recordings; several voices at once are mixed into a share of positives "
                   "as babble (people talking over the music)")
    p.add_argument("--val-speech", nargs="*", type=Path, default=[], metavar="FILE",
                   help="other voices, for the validation's babble conditions (babble-1s, babble-5s, chain-5s)")
    p.add_argument("--split", type=Path, metavar="FILE",
                   help="a split file (train, validation): train on its train side, validate on its "
                   "validation side, leave every other track out (default: split by content hash)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if <out>.last.pt exists")
    p.add_argument("--init-from", type=Path, metavar="CKPT",
                   help="fine-tune: start from this checkpoint's weights (e.g. models/fingerprint.pt) "
                   "with a fresh optimiser and schedule; its feature settings must match")
    p.add_argument("--lr", type=float, default=TrainConfig().lr,
                   help="peak learning rate (default: %(default)s; about half of it suits fine-tuning)")
    p.add_argument("--augment", action="append", default=[], metavar="FIELD=VALUE",
                   help="change one degradation of the positives (an AugmentConfig field, value as JSON), "
                   "e.g. --augment p_babble=0.4 --augment 'babble_snr_db=[-2, 10]'; repeatable; the card "
                   "records the whole configuration")
    p.add_argument("--threads", type=int, default=TrainConfig().threads,
                   help="torch CPU threads (default: 0, torch's own choice)")


def augment_config(overrides: dict) -> AugmentConfig:
    """The default :class:`AugmentConfig` with ``overrides`` (field -> value).

    Raises
    ------
    UsageError
        Naming the field that is unknown or of the wrong type
        (:meth:`~audiosim.config.AugmentConfig.with_fields`).
    """
    try:
        return AugmentConfig().with_fields(overrides)
    except ValueError as e:
        raise UsageError(f"--augment {e}") from None


def run(args: argparse.Namespace) -> int:
    """Train, keeping the best checkpoint by validation, and print where it is."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.ingest.discover import discover
    from audiosim.training.data import catalogue_track_refs, split_by_file, track_refs
    from audiosim.training.loop import train_from_tracks
    augment = augment_config(parse_settings(args.augment, "--augment"))
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
    noise, speech, val_speech = ([str(p) for p in discover(a)] if a else []
                                 for a in (args.noise, args.speech, args.val_speech))
    split = None
    if args.split:
        try:
            train, val, _ = split_by_file(tracks, args.split)
        except (OSError, ValueError, KeyError) as e:
            raise UsageError(f"cannot read the split file {args.split}: {e}") from None
        split = (train, val)
    try:
        card = train_from_tracks(tracks, args.out, home.cache_dir, noise_paths=noise, speech_paths=speech,
                                 val_speech_paths=val_speech, split=split, augment_cfg=augment,
                                 cfg=TrainConfig(steps=args.steps, lr=args.lr, init_from=str(args.init_from or ""),
                                                 threads=args.threads),
                                 resume=not args.no_resume)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"best model (step {card.get('step')}): {args.out}  validation: {card.get('validation')}")
    return EXIT_OK
