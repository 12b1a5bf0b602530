"""The one-command demo: the whole pipeline on the built-in songbook.

``audiosim demo`` (what ``make demo`` runs) writes the synthetic songbook,
ingests all but two songs, builds the fingerprint index, cuts degraded clips
(noise, reverb, phone band, speed, MP3) from catalogue songs plus one clip of
a song that is not in the catalogue, identifies them, prints the mood groups
with how many of the songbook's built-in moods, keys and tempi were
recovered (:mod:`audiosim.demo.check`), and writes a playlist report.
Each stage prints a numbered line when it starts and its time when it
ends. Everything runs locally on the CPU.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from audiosim.demo.check import compare_with_songbook
from audiosim.demo.songbook import read_songbook, write_songbook
from audiosim.format import duration
from audiosim.index.writer import update
from audiosim.ingest.ingest import ingest_many
from audiosim.match.background import self_calibrate
from audiosim.match.matcher import Matcher
from audiosim.report.analysis import build_report
from audiosim.report.write import write_report
from audiosim.signal import augment
from audiosim.similarity.model import DEFAULT_SIMILARITY_MODEL
from audiosim.similarity.mood import catalogue_moods, format_groups
from audiosim.store.home import DataHome

DEMO_SONGS = 20
DEMO_SECONDS = 30.0
HELD_OUT = 2
"""The last songs of the songbook are kept out of the catalogue."""


@dataclass(frozen=True)
class DemoClip:
    """A clip the demo cuts, and the answer it expects."""

    path: Path
    source: str
    offset: float | None
    degradation: str


def _degrade(x: np.ndarray, sr: int, kind: str, g: torch.Generator) -> np.ndarray:
    t = torch.from_numpy(x)[None, :]
    if kind == "noise 5 dB":
        t = augment.mix_at_snr(t, augment.coloured_noise(1, t.shape[1], torch.tensor([1.0]), g), torch.tensor([5.0]))
    elif kind == "reverb + noise 10 dB":
        rir = augment.synthetic_rir(1, sr // 2, sr, torch.tensor([0.7]), g)
        t = augment.reverberate(t, rir)
        t = augment.mix_at_snr(t, augment.coloured_noise(1, t.shape[1], torch.tensor([0.5]), g), torch.tensor([10.0]))
    elif kind == "phone band":
        gains = augment.random_eq_gains(1, augment.eq_bins(t.shape[1]), sr, phone=torch.tensor([True]), g=g)
        t = augment.equalise(t, gains)
    elif kind == "2% faster":
        t = augment.gather_resampled(t[0], torch.tensor([0.0]), torch.tensor([1.02]), int(t.shape[1] / 1.02))
    elif kind == "MP3":
        return augment.lossy_copy(x, sr, "mp3")
    peak = float(t.abs().max())
    return (t[0] / max(peak, 1.0)).numpy().astype(np.float32)


def make_clips(songs: list[Path], absent: list[Path], folder: Path, seconds: float = 5.0, seed: int = 0) -> list[DemoClip]:
    """Cut degraded clips from ``songs`` and one clean clip from ``absent``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    kinds = ["noise 5 dB", "reverb + noise 10 dB", "phone band", "2% faster", "MP3"]
    clips = []
    for i, kind in enumerate(kinds):
        src = songs[(i * 3) % len(songs)]
        x, sr = sf.read(src, dtype="float32")
        start = float(rng.uniform(2.0, len(x) / sr - seconds - 2.0))
        piece = x[int(start * sr) : int((start + seconds) * sr)]
        path = folder / f"clip-{i + 1}-{kind.replace(' ', '-').replace('%', 'pct').replace('+', 'and')}.wav"
        sf.write(path, _degrade(piece, sr, kind, g), sr)
        clips.append(DemoClip(path, src.stem, start, kind))
    x, sr = sf.read(absent[0], dtype="float32")
    path = folder / "clip-6-not-in-catalogue.wav"
    sf.write(path, x[int(5 * sr) : int((5 + seconds) * sr)], sr)
    clips.append(DemoClip(path, absent[0].stem, None, "song not in the catalogue"))
    return clips


class _Stages:
    """Numbered stage lines, each followed by the time the stage took."""

    def __init__(self, total: int, log: Callable[[str], None]):
        self.total, self.log, self.done = total, log, 0

    @contextmanager
    def stage(self, what: str) -> Iterator[None]:
        """Log ``n/total what`` now and ``done in m:ss`` when the block ends."""
        self.done += 1
        self.log(f"{self.done}/{self.total} {what}")
        start = time.perf_counter()
        yield
        self.log(f"    done in {duration(time.perf_counter() - start)}")


def run_demo(home: str | Path | None = None, log: Callable[[str], None] = print) -> int:
    """Run the demo in data home ``home`` (default ``./data``); returns an exit code."""
    h = DataHome.resolve(home).create()
    t0 = time.perf_counter()
    stages = _Stages(6, log)
    with stages.stage(f"writing the built-in songbook ({DEMO_SONGS} synthetic songs) to {h.root / 'songbook'}"):
        songs = write_songbook(h.root / "songbook", n=DEMO_SONGS, seconds=DEMO_SECONDS)
    catalogue, absent = songs[:-HELD_OUT], songs[-HELD_OUT:]

    with stages.stage(f"ingesting {len(catalogue)} songs (the last {HELD_OUT} stay out of the catalogue)"):
        results = ingest_many(catalogue, h, workers=2)
        failed = [r for r in results if r.status == "failed"]
        for r in failed:
            log(f"    failed: {r.path}: {r.reason} {r.detail or ''}")

    with stages.stage("building the fingerprint index"):
        update(h, calibrate=self_calibrate)

    with stages.stage("identifying degraded clips"):
        clips = make_clips(catalogue, absent, h.root / "demo-clips")
        matcher = Matcher(h)
        rows = []
        for c in clips:
            m = matcher.answer(c.path)
            expected = f"{c.source} @ {c.offset:.1f}s" if c.offset is not None else "no match"
            found = f"{Path(m.path).stem} @ {m.offset:.1f}s" if m.matched and m.path else "no match"
            rows.append({"clip": c.path.name, "degradation": c.degradation, "expected": expected, "answer": found,
                         "score": round(m.score, 2), "threshold": round(m.threshold, 2),
                         "ms": round(1000 * m.seconds, 1)})
        log(pd.DataFrame(rows).to_string(index=False))

    if not Path(DEFAULT_SIMILARITY_MODEL).is_file():
        log(f"5/6, 6/6 mood groups and playlist report skipped: no similarity model at {DEFAULT_SIMILARITY_MODEL}")
        log(f"done in {duration(time.perf_counter() - t0)} (identification only).")
        return 1 if failed else 0
    try:
        with stages.stage("mood groups"):
            groups, per_song = catalogue_moods(h)
            log(format_groups(groups, per_song))
            log("\n".join(compare_with_songbook(read_songbook(h.root / "songbook"), per_song).lines()))
        with stages.stage("playlist report"):
            playlist = h.root / "demo-playlist.m3u"
            playlist.write_text("\n".join(str(p.resolve()) for p in catalogue[:8]) + "\n")
            out = write_report(build_report(playlist, h))
        log(f"done in {duration(time.perf_counter() - t0)}. Open the report: {out}")
    except FileNotFoundError as e:  # the similarity model is not shipped yet
        log(f"    skipped: {e}")
        log(f"done in {duration(time.perf_counter() - t0)} (identification only).")
    return 1 if failed else 0
