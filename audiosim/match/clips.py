"""Clips and recordings as the matcher hears them: mono, at the model's rate.

A clip given as a file is decoded whole (:func:`load_clip`); one given as
samples is checked (not empty, finite, a plausible sample rate), mixed down
and resampled. A long recording given as a file is turned into log-mel
frames block by block (:func:`recording_logmel`), so it never has to fit in
memory as audio.

Input that cannot be identified raises the one error type of bad audio,
:class:`~audiosim.signal.audio.AudioError`, with a short ``reason``
(``empty``, ``corrupt``, ``unsupported``, ``too-short``, ``silence``,
and for files also ``unreadable``, ``not-audio``...): a file and an array
fail the same way, and only a clip that was really heard and matched
nothing is a no-match. :func:`unscorable` says why a clip gave no segment
to look up.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from audiosim.config import DecodeConfig, FeatureConfig
from audiosim.signal import audio
from audiosim.signal import features as F
from audiosim.signal.audio import MAX_RATE, MIN_RATE, AudioError

Clip = str | Path | np.ndarray
"""A file, or samples ``(n,)`` / ``(n, channels)`` (with their sample rate)."""

ANY_LENGTH = DecodeConfig(min_seconds=0.0)
"""Queries may be shorter than a catalogue track may be (:func:`unscorable` says when one is too short)."""

ARRAY_NAME = "<array>"
"""How a clip given as samples is named in answers and errors."""


def clip_name(clip: Clip, name: str | None = None) -> str:
    """How a clip is named in answers: ``name``, else its path, else ``<array>``."""
    return name or (str(clip) if isinstance(clip, (str, Path)) else ARRAY_NAME)


def check_sample_rate(sr: object, name: str = ARRAY_NAME) -> int:
    """``sr`` as a whole number of Hz within what audio files may have.

    Raises
    ------
    AudioError
        ``unsupported``, for a rate that is not a whole number in
        [``MIN_RATE``, ``MAX_RATE``] Hz (0, negative, 10 MHz...).
    """
    try:
        rate = float(sr)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AudioError(name, "unsupported", f"sample rate {sr!r} is not a number") from None
    if not math.isfinite(rate) or rate != int(rate) or not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(name, "unsupported", f"sample rate {sr!r} Hz; audio has {MIN_RATE} to {MAX_RATE} Hz")
    return int(rate)


def check_samples(samples: object, name: str = ARRAY_NAME) -> np.ndarray:
    """Samples ``(n,)`` or ``(n, channels)`` (either layout) as a mono float32 array.

    Raises
    ------
    AudioError
        ``unsupported`` for more than two dimensions or not numbers,
        ``empty`` for no samples, ``corrupt`` for NaN or inf samples.
    """
    try:
        x = np.asarray(samples, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise AudioError(name, "unsupported", f"samples are not numbers: {e}") from None
    if x.ndim not in (1, 2):
        raise AudioError(name, "unsupported", f"samples of shape {x.shape}: expected (n,) or (n, channels)")
    if x.size == 0:
        raise AudioError(name, "empty", "no audio samples")
    if not np.isfinite(x).all():
        raise AudioError(name, "corrupt", f"{int(np.count_nonzero(~np.isfinite(x)))} NaN or inf samples")
    if x.ndim == 2:
        x = audio.to_mono(x if x.shape[0] > x.shape[1] else x.T)
    return x


def load_clip(clip: Clip, sample_rate: int, sr: int | None = None, name: str | None = None) -> np.ndarray:
    """Decode a path, or check, mix down and resample an array, to ``sample_rate``.

    Parameters
    ----------
    clip : str, Path or ndarray
        A file, or samples ``(n,)`` or ``(n, channels)`` (either layout: the
        longer axis is time).
    sample_rate : int
        The rate wanted (the model's).
    sr : int, optional
        Sample rate of an array clip (required then).
    name : str, optional
        The clip's name in errors (default: :func:`clip_name`).

    Raises
    ------
    ValueError
        For an array without ``sr`` (a call that cannot work, not bad audio).
    AudioError
        For a file that cannot be decoded, or samples that are not audio
        (see :func:`check_samples`, :func:`check_sample_rate`).
    """
    if isinstance(clip, (str, Path)):
        return audio.load(clip, sample_rate, ANY_LENGTH)
    if sr is None:
        raise ValueError("identify(array) needs sr= (the array's sample rate)")
    label = clip_name(clip, name)
    rate = check_sample_rate(sr, label)
    return audio.resample(check_samples(clip, label), rate, sample_rate)


def unscorable(name: str, wave: np.ndarray, features: FeatureConfig) -> AudioError:
    """Why a clip gave no segment to look up: ``too-short`` or ``silence``.

    A clip shorter than one segment (about 1 s) cannot be fingerprinted;
    a longer one without a segment louder than ``features.silence_db`` is
    silence (digital silence, or a level too low to hear).
    """
    seconds = len(wave) / features.sample_rate
    shortest = features.segment_samples / features.sample_rate
    if len(wave) < features.segment_samples:
        return AudioError(name, "too-short", f"{seconds:.2f} s; a clip needs at least {shortest:.2f} s")
    return AudioError(name, "silence", f"no {shortest:.2f} s stretch louder than {features.silence_db:g} dB "
                                       f"in {seconds:.2f} s")


def recording_logmel(recording: Clip, features: FeatureConfig, sr: int | None = None) -> np.ndarray:
    """Log-mel frames ``(n_mels, frames)`` of a recording of any length.

    A file is decoded and transformed block by block; samples go through
    :func:`load_clip` first.
    """
    if isinstance(recording, (str, Path)):
        return F.log_mel_stream(audio.stream(recording, features.sample_rate, ANY_LENGTH), features)
    with torch.inference_mode():
        return F.log_mel(torch.from_numpy(load_clip(recording, features.sample_rate, sr)), features).numpy()
