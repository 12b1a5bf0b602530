"""Decode audio files to mono float32 at a chosen rate, in blocks.

soundfile reads WAV, FLAC, Ogg Vorbis, Ogg Opus and MP3; torchaudio resamples.
Long files are streamed block by block so memory does not grow with length.
Every failure raises :class:`AudioError` naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from audiosim.config import DecodeConfig

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif"})
MAX_CHANNELS = 64
MIN_RATE, MAX_RATE = 1000, 768_000


class AudioError(Exception):
    """A file could not be turned into usable audio.

    Attributes
    ----------
    path : str
        The file concerned.
    reason : str
        A short machine-friendly reason (``unreadable``, ``not-audio``,
        ``empty``, ``too-short``, ``too-long``, ``silence``, ``non-finite``,
        ``unsupported``).
    detail : str
        Human-readable explanation.
    """

    def __init__(self, path: str | Path, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says, before decoding."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def is_audio_path(path: str | Path) -> bool:
    """True when the file name has an extension we try to decode."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes (hex), read in chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as e:
        raise AudioError(path, "unreadable", e.strerror or str(e)) from e
    return h.hexdigest()


def probe(path: str | Path) -> AudioInfo:
    """Read the header of ``path``.

    Raises
    ------
    AudioError
        ``unreadable`` when the file cannot be opened, ``not-audio`` when
        libsndfile does not recognise it, ``unsupported`` for absurd channel
        counts or rates.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioError(p, "unreadable", "no such file" if not p.exists() else "not a regular file")
    if p.stat().st_size == 0:
        raise AudioError(p, "empty", "file has 0 bytes")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(p, "not-audio", str(e).split(":")[-1].strip() or "unrecognised format") from e
    except OSError as e:
        raise AudioError(p, "unreadable", str(e)) from e
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioError(p, "unsupported", f"{info.channels} channels")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(p, "unsupported", f"sample rate {info.samplerate} Hz")
    return AudioInfo(str(p), int(info.samplerate), int(info.channels), int(max(info.frames, 0)), info.format)


def _resampler_block(orig: int, new: int, seconds: float) -> tuple[int, int]:
    """Input block length and input context (samples) for exact
    block-wise resampling: block boundaries land on whole output samples."""
    step = orig // math.gcd(orig, new)
    block = max(1, round(seconds * orig / step)) * step
    context = max(1, math.ceil(0.05 * orig / step)) * step  # 50 ms > filter half-width
    return block, context


def stream(
    path: str | Path,
    sample_rate: int,
    config: DecodeConfig = DecodeConfig(),
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of ``path`` resampled to ``sample_rate``.

    The concatenation of the blocks equals resampling the whole file at once
    (up to float rounding): each block is resampled with some context on both
    sides which is then trimmed.

    Parameters
    ----------
    path : str or Path
        Any file soundfile can read.
    sample_rate : int
        Output rate in Hz.
    config : DecodeConfig
        Length limits, block size and the silence threshold.

    Raises
    ------
    AudioError
        On any problem; checks that need the whole file (too short, silence)
        are raised after the last block.
    """
    info = probe(path)
    if info.frames and info.duration > config.max_seconds:
        raise AudioError(path, "too-long", f"{info.duration:.0f} s > limit {config.max_seconds:.0f} s")
    orig = info.sample_rate
    block, ctx_in = _resampler_block(orig, sample_rate, config.block_seconds)
    total_in = 0
    energy = 0.0
    try:
        with sf.SoundFile(str(path)) as f:
            prev_tail = np.zeros(0, dtype=np.float32)  # left context for the next block
            pending: np.ndarray | None = None  # block waiting for its right context
            while True:
                data = f.read(block, dtype="float32", always_2d=True)
                if data.size and not np.isfinite(data).all():
                    raise AudioError(path, "non-finite", f"NaN or inf samples near {total_in / orig:.1f} s")
                mono = data.mean(axis=1) if data.shape[0] else np.zeros(0, np.float32)
                total_in += mono.shape[0]
                energy += float(np.dot(mono.astype(np.float64), mono))
                if total_in / orig > config.max_seconds:
                    raise AudioError(path, "too-long", f"more than {config.max_seconds:.0f} s")
                if pending is not None:
                    yield _resample_with_context(prev_tail, pending, mono[:ctx_in], orig, sample_rate)
                    prev_tail = pending[-ctx_in:]
                    pending = None
                if mono.shape[0] == 0:
                    break
                pending = mono
                if mono.shape[0] < block:
                    yield _resample_with_context(prev_tail, pending, mono[:0], orig, sample_rate)
                    pending = None
                    break
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, "unreadable", f"decoding failed after {total_in / orig:.1f} s: {e}") from e
    if total_in == 0:
        raise AudioError(path, "empty", "no audio samples")
    seconds = total_in / orig
    if seconds < config.min_seconds:
        raise AudioError(path, "too-short", f"{seconds:.2f} s < {config.min_seconds:g} s")
    rms_db = 10 * math.log10(energy / total_in + 1e-20)
    if rms_db < config.silence_dbfs:
        raise AudioError(path, "silence", f"RMS {rms_db:.0f} dBFS")


def _resample_with_context(
    left: np.ndarray, block: np.ndarray, right: np.ndarray, orig: int, new: int
) -> np.ndarray:
    if orig == new:
        return block.astype(np.float32, copy=False)
    x = torch.from_numpy(np.concatenate([left, block, right]))
    y = AF.resample(x, orig, new).numpy()
    start = left.shape[0] * new // orig
    n_out = math.ceil(block.shape[0] * new / orig)
    return np.ascontiguousarray(y[start : start + n_out], dtype=np.float32)


def load(path: str | Path, sample_rate: int, config: DecodeConfig = DecodeConfig()) -> np.ndarray:
    """Decode the whole of ``path`` to one mono float32 array at ``sample_rate``.

    See :func:`stream` for the checks made; this simply concatenates its blocks.
    """
    blocks = list(stream(path, sample_rate, config))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mix ``(frames,)`` or ``(frames, channels)`` samples down to mono float32."""
    a = np.asarray(samples, dtype=np.float32)
    return a.mean(axis=1) if a.ndim == 2 else a


def resample(samples: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Resample a mono float32 array with torchaudio (band-limited sinc)."""
    if orig == new:
        return np.asarray(samples, dtype=np.float32)
    return AF.resample(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), orig, new).numpy()
