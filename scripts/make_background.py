"""Make the background bank that ships beside a fingerprint model.

``audiosim index`` calibrates its no-match thresholds against this bank
(:mod:`audiosim.match.background`): clips of music the model was not
trained on and no benchmark uses (the ``bank`` role of a roles file written
by ``scripts/split_dev_corpus.py``, or the files given), each clip clean
and degraded, embedded with the model. Only vectors and spectral peak maps
are stored, no audio.
A bank belongs to one model: remake it whenever the model changes::

    python scripts/make_background.py --model models/fingerprint.pt \\
        --roles models/dev-corpus.roles.json --noise NOISE_LIST --speech VOICES_DIR...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from audiosim.config import IndexConfig
from audiosim.fingerprint.model import load_encoder
from audiosim.ingest.discover import discover
from audiosim.match.background import bank_path, make_bank
from audiosim.progress import Progress
from audiosim.training.data import load_noise_bank, load_speech_bank


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/fingerprint.pt"), help="the model (default: %(default)s)")
    ap.add_argument("--roles", type=Path, help="roles file: the tracks of its 'bank' role make the bank")
    ap.add_argument("paths", nargs="*", type=Path, help="audio files, folders or lists (instead of --roles)")
    ap.add_argument("--excerpts", type=int, default=300,
                    help="excerpts (each gives a clean and a degraded clip; default %(default)s, the clips "
                    "IndexConfig.background_clips scores)")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length: the longest calibrated length")
    ap.add_argument("--noise", nargs="*", type=Path, default=[], help="recorded noise for the degraded clips")
    ap.add_argument("--speech", nargs="*", type=Path, default=[], help="voices for babble in the degraded clips")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="default: beside the model, <model>.background.npz")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.roles:
        paths = [r["path"] for r in json.loads(args.roles.read_text())["bank"]]
    else:
        try:
            paths = [str(p) for p in discover(args.paths)]
        except FileNotFoundError as e:
            ap.error(str(e))
    if not paths:
        ap.error("no bank tracks: give --roles or PATH...")
    model = load_encoder(args.model)
    sr = model.features.sample_rate
    noise = load_noise_bank([str(p) for p in discover(args.noise)], sr) if args.noise else None
    speech = load_speech_bank([str(p) for p in discover(args.speech)], sr) if args.speech else None
    t0 = time.perf_counter()
    try:
        with Progress() as progress:
            bank = make_bank(model, paths, args.excerpts, args.seconds, IndexConfig(), args.seed, noise, speech,
                             progress)
    except ValueError as e:
        ap.error(str(e))
    out = args.out or bank_path(model)
    bank.save(out)
    print(f"{out}: {bank.n_clips} clips of {len(bank.track_hashes)} tracks, {len(bank.vectors)} segments, "
          f"{out.stat().st_size / 1e6:.1f} MB, made in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
