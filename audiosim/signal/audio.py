"""Decode audio files to mono float32 at a chosen rate, in blocks.

soundfile reads WAV, FLAC, Ogg Vorbis, Ogg Opus and MP3;
:mod:`audiosim.signal.resample` resamples, with memory bounded for any pair
of rates. Long files are streamed block by block so memory does not grow
with length. Every failure raises :class:`AudioError` naming the file and one
of the :data:`REASONS`.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from audiosim.config import DecodeConfig
from audiosim.signal import container
from audiosim.signal.resample import block_resampler
from audiosim.signal.resample import (
    resample as resample,  # audio.resample, for callers of this module
)

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif"})
MAX_CHANNELS = 64
MIN_RATE, MAX_RATE = 1000, 768_000

REASONS = {
    "unreadable": "the file could not be read: it does not exist, or reading it failed",
    "permission-denied": "the file's permissions do not allow reading it",
    "not-a-regular-file": "a folder, device, pipe or socket, not a file",
    "empty": "no audio samples: 0 bytes, or a header with no data",
    "not-audio": "the content is not audio in a format the decoder reads",
    "unsupported": "audio with an absurd channel count or sample rate",
    "truncated": "cut short: the header promises more than the file holds, and less than half of it decodes",
    "corrupt": "damaged audio data: decoding fails part way, or gives NaN or infinite samples",
    "too-short": "too short to fingerprint",
    "too-long": "longer than the configured limit",
    "silence": "too quiet overall to fingerprint",
}
"""Every :attr:`AudioError.reason`, with what it means: the one list of them."""

TRUNCATED_SHARE = 0.5
"""A file that decodes to less than this share of the length its container states
fails as ``truncated``; above it, it is kept and the shortfall is reported as a
warning (see :func:`stream`)."""

_SHORTFALL_SECONDS, _SHORTFALL_SHARE = 0.1, 0.01  # decoder padding and rounding are not truncation


class AudioError(Exception):
    """A file could not be turned into usable audio.

    Attributes
    ----------
    path : str
        The file concerned.
    reason : str
        A short machine-friendly reason, one of :data:`REASONS`.
    detail : str
        Human-readable explanation.
    """

    def __init__(self, path: str | Path, reason: str, detail: str = ""):
        if reason not in REASONS:
            raise ValueError(f"unknown AudioError reason {reason!r}; add it to audio.REASONS")
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}" + (f" ({detail})" if detail else ""))

    @classmethod
    def from_os_error(cls, path: str | Path, error: OSError) -> AudioError:
        """The AudioError for an ``OSError`` met while opening or reading ``path``."""
        if isinstance(error, PermissionError):
            return cls(path, "permission-denied", "permission denied: this user may not read the file")
        if isinstance(error, FileNotFoundError):
            return cls(path, "unreadable", "no such file")
        if isinstance(error, IsADirectoryError):
            return cls(path, "not-a-regular-file", "a folder, not a file")
        return cls(path, "unreadable", error.strerror or str(error))


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
        raise AudioError.from_os_error(path, e) from e
    return h.hexdigest()


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text)


def _not_audio(p: Path, head: bytes, error: Exception) -> AudioError:
    """The ``not-audio`` (or ``truncated``, for a WAV cut inside its header) error for ``p``."""
    if container.wav_is_cut(p):
        return AudioError(p, "truncated", f"a WAV file cut short: its header promises more than its {len(head)} bytes")
    if _looks_like_text(head):
        return AudioError(p, "not-audio", "not audio: the file holds text")
    # libsndfile's own words, unless they mislead ("possibly a pipe?", "System error.")
    said = str(error).split("': ", 1)[-1].strip() if "': " in str(error) else str(error).strip()
    misleading = not said or "possibly a pipe" in said or "System error" in said
    return AudioError(p, "not-audio", "not audio: no decoder recognises its content" + ("" if misleading else f" ({said})"))


def probe(path: str | Path) -> AudioInfo:
    """Read the header of ``path``.

    Raises
    ------
    AudioError
        ``unreadable`` when the file does not exist or cannot be read,
        ``permission-denied``, ``not-a-regular-file`` (folders, devices,
        pipes: never opened, so a pipe cannot block), ``empty``,
        ``not-audio`` when libsndfile does not recognise it, ``truncated``
        for a WAV cut inside its header, ``unsupported`` for absurd channel
        counts or rates.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise AudioError.from_os_error(p, e) from e
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(p, "not-a-regular-file", _file_kind(st.st_mode))
    if st.st_size == 0:
        raise AudioError(p, "empty", "file has 0 bytes")
    try:
        with open(p, "rb") as f:  # our own open, so that its error is the true one
            head = f.read(4096)
    except OSError as e:
        raise AudioError.from_os_error(p, e) from e
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise _not_audio(p, head, e) from e
    except OSError as e:
        raise AudioError.from_os_error(p, e) from e
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioError(p, "unsupported", f"{info.channels} channels")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(p, "unsupported", f"sample rate {info.samplerate} Hz")
    return AudioInfo(str(p), int(info.samplerate), int(info.channels), int(max(info.frames, 0)), info.format)


def _check_finite(path: str | Path, data: np.ndarray, first_frame: int, rate: int) -> None:
    """Raise ``corrupt`` naming the time of the first NaN or infinite sample in ``data``."""
    bad = ~np.isfinite(data)
    if bad.any():
        at = first_frame + int(np.flatnonzero(bad.any(axis=1))[0])
        raise AudioError(path, "corrupt", f"NaN or infinite samples at {at / rate:.1f} s")


def stream(
    path: str | Path,
    sample_rate: int,
    config: DecodeConfig = DecodeConfig(),
    warnings: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of ``path`` resampled to ``sample_rate``.

    The concatenation of the blocks equals resampling the whole file at once
    (up to float rounding): see :func:`audiosim.signal.resample.block_resampler`.

    Once the file has been read, its decoded length is compared with the
    length its container states (:func:`audiosim.signal.container.declared_frames`).
    Less than :data:`TRUNCATED_SHARE` of it fails as ``truncated``; a smaller
    shortfall, or an Ogg stream without its end page (Ogg states no total),
    is kept and described in ``warnings``.

    Parameters
    ----------
    path : str or Path
        Any file soundfile can read.
    sample_rate : int
        Output rate in Hz.
    config : DecodeConfig
        Length limits, block size and the silence threshold.
    warnings : list of str, optional
        Receives one sentence per problem that does not fail the file
        (a file cut short but mostly there).

    Raises
    ------
    AudioError
        On any problem; checks that need the whole file (too short, silence,
        truncated) are raised after the last block.
    """
    info = probe(path)
    if info.frames and info.duration > config.max_seconds:
        raise AudioError(path, "too-long", f"{info.duration:.0f} s > limit {config.max_seconds:.0f} s")
    orig = info.sample_rate
    resampler = block_resampler(orig, sample_rate, config.block_seconds)
    declared = container.declared_frames(path, info.format, info.frames)
    total_in = 0
    energy = 0.0
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                data = f.read(resampler.block, dtype="float32", always_2d=True)
                if data.size:
                    _check_finite(path, data, total_in, orig)
                mono = data.mean(axis=1) if data.shape[0] else np.zeros(0, np.float32)
                total_in += mono.shape[0]
                energy += float(np.dot(mono.astype(np.float64), mono))
                if total_in / orig > config.max_seconds:
                    raise AudioError(path, "too-long", f"more than {config.max_seconds:.0f} s")
                if mono.shape[0]:
                    out = resampler.push(mono)
                    if out.shape[0]:
                        yield out
                if mono.shape[0] < resampler.block:
                    break
            out = resampler.finish()
            if out.shape[0]:
                yield out
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError) as e:
        of = f" of the {declared / orig:.1f} s its header states" if declared else ""
        raise AudioError(
            path, "corrupt", f"decoding failed at {total_in / orig:.1f} s{of} (damaged or cut short): {e}"
        ) from e
    _check_length(path, info, declared, total_in, warnings)
    if total_in == 0:
        raise AudioError(path, "empty", "no audio samples")
    seconds = total_in / orig
    if seconds < config.min_seconds:
        raise AudioError(path, "too-short", f"{seconds:.2f} s < {config.min_seconds:g} s")
    rms_db = 10 * math.log10(energy / total_in + 1e-20)
    if rms_db < config.silence_dbfs:
        raise AudioError(path, "silence", f"RMS {rms_db:.0f} dBFS")


def _check_length(
    path: str | Path, info: AudioInfo, declared: int | None, decoded: int, warnings: list[str] | None
) -> None:
    """Compare the decoded length with the container's; raise ``truncated`` or add a warning."""
    rate = info.sample_rate
    if declared is not None:
        shortfall = declared - decoded
        if shortfall <= max(_SHORTFALL_SECONDS * rate, _SHORTFALL_SHARE * declared):
            return
        said = f"decoded {decoded / rate:.1f} s of the {declared / rate:.1f} s its header states"
        if decoded < TRUNCATED_SHARE * declared:
            raise AudioError(path, "truncated", f"cut short: {said}")
        message = f"cut short: {said}"
    elif info.format == "OGG" and container.ogg_is_cut(path):
        message = f"cut short: the Ogg stream stops without its end page, after {decoded / rate:.1f} s"
        if decoded == 0:
            raise AudioError(path, "truncated", message)
    else:
        return
    if warnings is not None:
        warnings.append(message)


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
