"""Decoding only the excerpts of a song that song analysis listens to.

Song vectors, tags and descriptors are computed on a few excerpts
(:class:`~audiosim.config.SimilarityConfig`: ``excerpt_seconds`` long,
centred at ``excerpt_positions`` of the track). :func:`read_excerpts`
seeks to each one and decodes just that span, once, at one rate; callers
resample from there (the descriptors' 22 050 Hz to musicnn's 16 kHz), so a
file is decoded once however many analyses use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audiosim.config import DecodeConfig, SimilarityConfig
from audiosim.signal import audio


@dataclass(frozen=True)
class Excerpts:
    """The decoded excerpts of one file.

    Attributes
    ----------
    waves : list of ndarray
        Mono float32 excerpts at ``sample_rate``, in track order.
    sample_rate : int
    duration : float
        Length of the whole file (s).
    """

    waves: list[np.ndarray]
    sample_rate: int
    duration: float

    def joined(self) -> np.ndarray:
        """All excerpts end to end (for descriptors of the song as a whole)."""
        return np.concatenate(self.waves) if self.waves else np.zeros(0, np.float32)


def excerpt_spans(duration: float, cfg: SimilarityConfig = SimilarityConfig()) -> list[tuple[float, float]]:
    """``(start, length)`` in seconds of each excerpt of a track of ``duration`` seconds.

    Each excerpt is centred at its position and shifted to lie inside the
    track. A track too short for its excerpts not to overlap is one
    excerpt: all of it.
    """
    n = len(cfg.excerpt_positions)
    if duration <= n * cfg.excerpt_seconds:
        return [(0.0, float(duration))]
    spans = []
    for p in cfg.excerpt_positions:
        start = min(max(0.0, p * duration - cfg.excerpt_seconds / 2), duration - cfg.excerpt_seconds)
        spans.append((start, cfg.excerpt_seconds))
    return spans


def read_excerpts(
    path: str | Path,
    sample_rate: int,
    cfg: SimilarityConfig = SimilarityConfig(),
    decode: DecodeConfig = DecodeConfig(),
) -> Excerpts:
    """Decode the excerpts of ``path`` (and nothing else) as mono float32 at ``sample_rate``.

    The checks of :func:`audiosim.signal.audio.stream` apply: a file that is
    unreadable, too short, too long, non-finite or silent (RMS of the
    excerpts below ``decode.silence_dbfs``) raises. A file whose length
    soundfile cannot tell is decoded whole and cut.

    Raises
    ------
    AudioError
        With the file's name and the reason.
    """
    info = audio.probe(path)
    if not info.frames:
        return _cut(path, audio.load(path, sample_rate, decode), sample_rate, cfg)
    if info.duration > decode.max_seconds:
        raise audio.AudioError(path, "too-long", f"{info.duration:.0f} s > limit {decode.max_seconds:.0f} s")
    if info.duration < decode.min_seconds:
        raise audio.AudioError(path, "too-short", f"{info.duration:.2f} s < {decode.min_seconds:g} s")
    orig = info.sample_rate
    waves = []
    try:
        with sf.SoundFile(str(path)) as f:
            for start, length in excerpt_spans(info.duration, cfg):
                f.seek(int(start * orig))
                data = f.read(int(math.ceil(length * orig)), dtype="float32", always_2d=True)
                if data.size and not np.isfinite(data).all():
                    raise audio.AudioError(path, "corrupt", f"NaN or inf samples near {start:.1f} s")
                waves.append(audio.resample(data.mean(axis=1), orig, sample_rate))
    except audio.AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError) as e:
        raise audio.AudioError(path, "unreadable", f"decoding an excerpt failed: {e}") from e
    _check_audible(path, waves, decode)
    return Excerpts(waves, sample_rate, info.duration)


def _cut(path: str | Path, wave: np.ndarray, sample_rate: int, cfg: SimilarityConfig) -> Excerpts:
    duration = wave.size / sample_rate
    waves = [wave[int(s * sample_rate): int(s * sample_rate) + int(math.ceil(n * sample_rate))]
             for s, n in excerpt_spans(duration, cfg)]
    return Excerpts(waves, sample_rate, duration)


def _check_audible(path: str | Path, waves: list[np.ndarray], decode: DecodeConfig) -> None:
    total = sum(w.size for w in waves)
    if total == 0:
        raise audio.AudioError(path, "empty", "no audio samples")
    energy = sum(float(np.dot(w.astype(np.float64), w)) for w in waves)
    rms_db = 10 * math.log10(energy / total + 1e-20)
    if rms_db < decode.silence_dbfs:
        raise audio.AudioError(path, "silence", f"RMS {rms_db:.0f} dBFS")
