"""Clips and recordings as the matcher hears them: mono, at the model's rate.

A clip given as a file is decoded whole (:func:`load_clip`); one given as
samples is mixed down and resampled. A long recording given as a file is
turned into log-mel frames block by block (:func:`recording_logmel`), so it
never has to fit in memory as audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audiosim.config import DecodeConfig, FeatureConfig
from audiosim.signal import audio
from audiosim.signal import features as F

Clip = str | Path | np.ndarray
"""A file, or samples ``(n,)`` / ``(n, channels)`` (with their sample rate)."""

ANY_LENGTH = DecodeConfig(min_seconds=0.0)
"""Queries may be shorter than a catalogue track may be."""


def clip_name(clip: Clip, name: str | None = None) -> str:
    """How a clip is named in answers: ``name``, else its path, else ``<array>``."""
    return name or (str(clip) if isinstance(clip, (str, Path)) else "<array>")


def load_clip(clip: Clip, sample_rate: int, sr: int | None = None) -> np.ndarray:
    """Decode a path, or mix down and resample an array, to ``sample_rate``.

    Parameters
    ----------
    clip : str, Path or ndarray
        A file, or samples ``(n,)`` or ``(n, channels)`` (either layout: the
        longer axis is time).
    sample_rate : int
        The rate wanted (the model's).
    sr : int, optional
        Sample rate of an array clip (required then).

    Raises
    ------
    ValueError
        For an array without ``sr``.
    AudioError
        For a file that cannot be decoded.
    """
    if isinstance(clip, (str, Path)):
        return audio.load(clip, sample_rate, ANY_LENGTH)
    if sr is None:
        raise ValueError("identify(array) needs sr= (the array's sample rate)")
    x = np.asarray(clip, dtype=np.float32)
    if x.ndim == 2:
        x = audio.to_mono(x if x.shape[0] > x.shape[1] else x.T)
    return audio.resample(x, int(sr), sample_rate)


def recording_logmel(recording: Clip, features: FeatureConfig, sr: int | None = None) -> np.ndarray:
    """Log-mel frames ``(n_mels, frames)`` of a recording of any length.

    A file is decoded and transformed block by block; samples go through
    :func:`load_clip` first.
    """
    if isinstance(recording, (str, Path)):
        return F.log_mel_stream(audio.stream(recording, features.sample_rate, ANY_LENGTH), features)
    with torch.inference_mode():
        return F.log_mel(torch.from_numpy(load_clip(recording, features.sample_rate, sr)), features).numpy()
