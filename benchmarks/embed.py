"""Embedding throughput of the fingerprint encoder (prints a table; never run by tests).

Times ``Encoder.embed`` on log-mel segments of real-looking shape (random
values: the encoder's cost does not depend on them) for several torch
thread counts and batch sizes, with BatchNorm as trained and folded into
the convolutions (what the index build and lookups use). The target is
in ``benchmarks/README.md``.

Example::

    python benchmarks/embed.py --model models/fingerprint.pt --segments 8192
    python benchmarks/embed.py --quick    # the tier `make bench` runs: one thread, one batch size

Each timed setting is announced on stderr as it starts; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiosim.fingerprint.model import DEFAULT_FINGERPRINT_MODEL, load_encoder  # noqa: E402

QUICK = dict(segments=2048, threads="1", batch_sizes="256", repeats=1)
"""The settings of ``--quick``."""


def throughput(model, segs: torch.Tensor, batch_size: int, repeats: int) -> float:
    """Best-of-``repeats`` segments per second of ``model.embed``."""
    model.embed(segs[:batch_size], batch_size=batch_size)  # warm-up (oneDNN primitive caches)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.embed(segs, batch_size=batch_size)
        best = max(best, len(segs) / (time.perf_counter() - t0))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_FINGERPRINT_MODEL))
    ap.add_argument("--segments", type=int, default=8192, help="segments per timed run")
    ap.add_argument("--threads", default="1,2", help="comma list of torch thread counts")
    ap.add_argument("--batch-sizes", default="64,128,256,1024", help="comma list of batch sizes")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per setting; the best counts")
    ap.add_argument("--quick", action="store_true",
                    help="the quick tier: 2048 segments, 1 thread, batch 256, 1 repeat (options given "
                    "explicitly still apply)")
    args = ap.parse_args(argv)
    if args.quick:
        given = [a.split("=", 1)[0] for a in (argv if argv is not None else sys.argv[1:])]
        for option, value in QUICK.items():
            if f"--{option.replace('_', '-')}" not in given:
                setattr(args, option, value)
    model = load_encoder(args.model)
    fused = model.for_inference()
    f = model.features
    segs = torch.randn(args.segments, f.n_mels, f.segment_frames) * 10 - 40
    with torch.inference_mode():
        err = (model.embed(segs[:512]) - fused.embed(segs[:512])).abs().max().item()
    rows = []
    settings = [(int(t), int(b)) for t in args.threads.split(",") for b in args.batch_sizes.split(",")]
    for n, (threads, bs) in enumerate(settings, 1):
        torch.set_num_threads(threads)
        print(f"[{n}/{len(settings)}] {threads} thread(s), batch {bs}: {args.segments} segments x "
              f"{args.repeats} repeat(s), as trained and folded ...", file=sys.stderr, flush=True)
        rows.append(dict(threads=threads, batch=bs,
                         **{"as trained (seg/s)": throughput(model, segs, bs, args.repeats),
                            "BN folded (seg/s)": throughput(fused, segs, bs, args.repeats)}))
    print(f"# embedding throughput\n\nmodel {args.model} ({model.n_parameters() / 1e6:.2f} M parameters, "
          f"segment {f.n_mels} mels x {f.segment_frames} frames); {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}; max |difference| folded vs as trained {err:.1e}; "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    df = pd.DataFrame(rows)
    try:
        print(df.to_markdown(index=False, floatfmt=".0f"))
    except ImportError:
        print(df.round(0).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
