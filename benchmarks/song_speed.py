"""Measure song analysis speed: seconds of work per hour of music for vectors, tags and descriptors.

Usage::

    python benchmarks/song_speed.py --corpus LIST [--n 20] [--workers 1]

Takes ``n`` tracks spread evenly over the corpus list and times, without
any cache, each stage of :meth:`audiosim.similarity.vectors.SongVectors.many`
on them: decoding the excerpts (:func:`~audiosim.similarity.excerpts.read_excerpts`),
the musicnn networks (:func:`~audiosim.similarity.vectors.musicnn_outputs`,
the networks' half of :func:`~audiosim.similarity.vectors.analyse_batch`)
and the librosa descriptors, then the whole thing as
``many`` runs it with ``--workers`` threads. Torch runs on one thread per
worker. Printed per hour of music (the tracks' full lengths), so that the
figure scales to a catalogue, in wall and CPU seconds: on a loaded machine
the CPU seconds are the figure that carries over.

To tell whether seeking in Ogg files is what decoding costs, it also times,
per track, seeking to the excerpts without reading, and decoding the whole
file. What a process pays once (librosa compiling its kernels on first use,
loading the second model) is timed first and apart (:func:`warm_up`), so
that the per-hour figures are those of a long run.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiosim.config import DescriptorConfig, SimilarityConfig
from audiosim.runners import one_torch_thread
from audiosim.signal import audio
from audiosim.similarity import musicnn
from audiosim.similarity.descriptors import analyse
from audiosim.similarity.excerpts import excerpt_spans, read_excerpts
from audiosim.similarity.model import SongModel
from audiosim.similarity.vectors import BATCH_SONGS, SongVectors, musicnn_outputs


def spread(paths: list[str], n: int) -> list[str]:
    """``n`` paths taken evenly over the list (so several soundtracks are in)."""
    if n >= len(paths):
        return paths
    return [paths[int(i * len(paths) / n)] for i in range(n)]


def seek_only(path: str, cfg: SimilarityConfig) -> None:
    """Open the file and seek to each excerpt's start, reading a single frame there."""
    with sf.SoundFile(path) as f:
        for start, _ in excerpt_spans(f.frames / f.samplerate, cfg):
            f.seek(int(start * f.samplerate))
            f.read(1)


def warm_up(model: SongModel, dcfg: DescriptorConfig) -> None:
    """What the first song of a process pays once: librosa compiling its numba kernels, loading the MTT weights.

    Timed apart, so that the per-hour figures scale to a catalogue.
    """
    noise = np.random.default_rng(0).standard_normal(dcfg.sample_rate * 5).astype(np.float32) * 0.1
    analyse(noise, dcfg.sample_rate, dcfg)
    patch = musicnn.musicnn_input(audio.resample(noise, dcfg.sample_rate, musicnn.SAMPLE_RATE))
    with torch.inference_mode():
        model.net(patch)
        musicnn.load_musicnn("mtt")(patch)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, required=True, help="text file, one audio path per line")
    p.add_argument("--n", type=int, default=20, help="tracks timed (default: 20)")
    p.add_argument("--workers", type=int, default=1, help="threads for the end-to-end run (default: 1)")
    args = p.parse_args(argv)

    paths = spread([ln.strip() for ln in args.corpus.read_text().splitlines() if ln.strip()], args.n)
    cfg, dcfg = SimilarityConfig(), DescriptorConfig()
    model = SongModel(cfg)
    hours = sum(audio.probe(q).duration for q in paths) / 3600
    timings: dict[str, float] = {}

    cpu: dict[str, float] = {}

    def timed(name: str, fn, *a):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        cpu[name] = cpu.get(name, 0.0) + time.process_time() - c0
        return out

    with one_torch_thread():
        timed("start-up, once per process (librosa's JIT, the MTT weights)", warm_up, model, dcfg)
        for q in paths:
            timed("seek to the excerpts only", seek_only, q, cfg)
        for q in paths:
            timed("decode the whole file (for comparison)", audio.load, q, dcfg.sample_rate)
        excerpts = [timed("decode the excerpts", read_excerpts, q, dcfg.sample_rate, cfg) for q in paths]
        for j in range(0, len(excerpts), BATCH_SONGS):
            timed("musicnn: MSD on all excerpts, MTT on the middle one", musicnn_outputs, excerpts[j: j + BATCH_SONGS], model)
        for ex in excerpts:
            timed("librosa descriptors", analyse, ex.joined(), ex.sample_rate, dcfg, ex.duration)

    with tempfile.TemporaryDirectory() as tmp:
        sv = SongVectors(tmp, model, cfg, dcfg)
        hashes = [audio.content_hash(q) for q in paths]
        done, failed = timed(f"end to end (SongVectors.many, {args.workers} worker(s), hashing and cache included)",
                             sv.many, hashes, paths, False, args.workers)

    print(f"{len(paths)} tracks, {hours * 60:.1f} min of music; {len(done)} analysed, {len(failed)} failed; "
          f"{torch.get_num_threads()} torch threads outside the timed blocks\n")
    print(f"{'stage':<82} {'wall s':>7} {'CPU s':>7} {'wall s/h':>9} {'CPU s/h':>8}")
    for name, t in timings.items():
        once = name.startswith("start-up")
        print(f"{name:<82} {t:7.1f} {cpu[name]:7.1f} {'' if once else f'{t / hours:.0f}':>9} "
              f"{'' if once else f'{cpu[name] / hours:.0f}':>8}")
    key = next(k for k in timings if k.startswith("end to end"))
    total, total_cpu = timings[key], cpu[key]
    print(f"\n(s/h: seconds per hour of music.) 12 h of music at this rate: {12 * total / hours / 60:.1f} min wall, "
          f"{12 * total_cpu / hours / 60:.1f} CPU-minutes (the 3-minute target on 2 cores is 6 CPU-minutes); "
          f"load average during the run {os.getloadavg()[0]:.1f}")
    for msg in failed.values():
        print("failed:", msg)
    return 0 if math.isfinite(total) and np.isfinite(hours) else 1


if __name__ == "__main__":
    raise SystemExit(main())
