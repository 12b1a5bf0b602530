"""Validate fingerprint models side by side on the same held-out tracks (prints a table).

The validation of training (:mod:`audiosim.training.validate`): every
segment of the held-out tracks indexed, fixed seeded queries under each
condition (clean, noise at 0-20 dB, mixed degradations at 1 s and 5 s and,
with ``--val-speech``, babble and a phone in a talking room), top-1 right
track. Every model is scored on the same queries, so the columns compare::

    python benchmarks/validation.py models/fingerprint.pt candidate.pt \\
        --roles benchmarks/dev-corpus.roles.json --val-speech /usr/share/asterisk/sounds/es_MX_f_Allison
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiosim.config import AugmentConfig, FeatureConfig  # noqa: E402
from audiosim.fingerprint.model import load_encoder  # noqa: E402
from audiosim.ingest.discover import discover  # noqa: E402
from audiosim.training.data import TrackRef, load_audio_set, load_speech_bank  # noqa: E402
from audiosim.training.validate import build_validation, validate, validation_score  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="checkpoints to compare")
    ap.add_argument("--roles", type=Path, required=True,
                    help="a split or roles file: its 'validation' tracks are validated on")
    ap.add_argument("--val-speech", nargs="*", type=Path, default=[],
                    help="voices for the babble conditions (none that any model trained on)")
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "work" / "validation",
                    help="decoded-audio cache (default: benchmarks/work/validation)")
    ap.add_argument("--queries", type=int, default=400, help="queries per condition")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    doc = json.loads(args.roles.read_text())
    refs = [TrackRef(r.get("path", ""), r["content_hash"], r["name"]) for r in doc["validation"]]
    missing = [r for r in refs if not r.path or not Path(r.path).is_file()]
    if missing:
        ap.error(f"{len(missing)} validation tracks have no readable path in {args.roles} (first: {missing[0].name})")
    fc = FeatureConfig()
    data = load_audio_set(refs, fc, args.cache / f"wave-{fc.sample_rate}", progress=False)
    speech = load_speech_bank([str(p) for p in discover(args.val_speech)], fc.sample_rate) if args.val_speech else None
    t0 = time.perf_counter()
    val = build_validation(data, fc, AugmentConfig(), n_queries=args.queries, speech_bank=speech)
    print(f"validation: {len(data.names)} tracks, {data.hours:.2f} h, {args.queries} queries per condition "
          f"(built in {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    cols = {}
    for path in args.models:
        rates = validate(load_encoder(path).eval(), val)
        rates["score"] = validation_score(rates)
        cols[str(path)] = {k: v for k, v in rates.items() if "@" not in k}
    table = pd.DataFrame(cols)
    try:
        print(table.to_markdown(floatfmt=".3f"))
    except ImportError:  # tabulate is optional
        print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
