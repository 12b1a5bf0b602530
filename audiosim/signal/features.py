"""Log-mel spectrograms and fingerprint segments: pure functions on tensors.

Frames are not centred: frame ``i`` covers samples ``[i*hop, i*hop + n_fft)``,
so a file processed block by block (:func:`log_mel_stream`) gives exactly the
frames of the whole file processed at once.
"""

from __future__ import annotations

import functools
from typing import Iterable

import numpy as np
import torch
import torchaudio

from audiosim.config import FeatureConfig


@functools.lru_cache(maxsize=8)
def mel_transform(config: FeatureConfig) -> torchaudio.transforms.MelSpectrogram:
    """The torchaudio power mel spectrogram module for ``config`` (cached)."""
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        f_min=config.f_min,
        f_max=config.f_max,
        n_mels=config.n_mels,
        center=False,
        power=2.0,
    )


def _power_scale(config: FeatureConfig) -> float:
    # Turns a sum of mel powers into mean-square amplitude (Parseval, one-sided
    # spectrum, Hann window), so loudness reads in dBFS.
    window = torch.hann_window(config.n_fft)
    return 2.0 / (config.n_fft * float((window**2).sum()))


def log_mel(waveform: torch.Tensor, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Natural-log mel power spectrogram.

    Parameters
    ----------
    waveform : Tensor, shape (..., samples)
        Mono audio at ``config.sample_rate``.
    config : FeatureConfig

    Returns
    -------
    Tensor, shape (..., n_mels, frames)
        ``frames = 1 + (samples - n_fft) // hop`` (0 when too short).
    """
    waveform = waveform.float()
    if waveform.shape[-1] < config.n_fft:
        return waveform.new_zeros(*waveform.shape[:-1], config.n_mels, 0)
    mel = mel_transform(config).to(waveform.device)(waveform)
    return torch.log(mel + config.log_floor)


def n_frames(samples: int, config: FeatureConfig = FeatureConfig()) -> int:
    """Frames :func:`log_mel` gives for ``samples`` samples (frames are not centred)."""
    return 0 if samples < config.n_fft else 1 + (samples - config.n_fft) // config.hop_length


def log_mel_stream(blocks: Iterable[np.ndarray], config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Log-mel of a waveform given as consecutive blocks, without holding it whole.

    Returns
    -------
    ndarray, shape (n_mels, frames), float32
        Identical to ``log_mel`` of the concatenated blocks.
    """
    pieces: list[np.ndarray] = []
    carry = np.zeros(0, np.float32)
    with torch.inference_mode():
        for block in blocks:
            buf = np.concatenate([carry, block]) if carry.size else block
            n = n_frames(buf.shape[0], config)
            if n:
                used = (n - 1) * config.hop_length + config.n_fft
                pieces.append(log_mel(torch.from_numpy(np.ascontiguousarray(buf[:used])), config).numpy())
                carry = buf[n * config.hop_length :]
            else:
                carry = buf
    if not pieces:
        return np.zeros((config.n_mels, 0), np.float32)
    return np.concatenate(pieces, axis=1)


def frame_loudness_db(logmel: torch.Tensor | np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Approximate loudness in dBFS of each frame of a log-mel spectrogram.

    Only the mel band (``f_min``..``f_max``) counts, so it reads low for audio
    whose energy lies outside it. A full-scale sine in band reads about -3 dB.
    """
    lm = torch.as_tensor(logmel, dtype=torch.float32)
    power = (lm.exp() - config.log_floor).clamp_min(0).sum(dim=-2) * _power_scale(config)
    return (10 * torch.log10(power + 1e-12)).numpy()


def segment_starts(n_frames: int, hop_frames: int, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Start frames of every whole segment at a hop of ``hop_frames`` frames."""
    if n_frames < config.segment_frames:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_frames - config.segment_frames + 1, hop_frames, dtype=np.int64)


def segments(
    logmel: torch.Tensor | np.ndarray, starts: np.ndarray, config: FeatureConfig = FeatureConfig()
) -> torch.Tensor:
    """Cut ``(n_mels, frames)`` into ``(len(starts), n_mels, segment_frames)``."""
    lm = torch.as_tensor(logmel, dtype=torch.float32)
    idx = torch.as_tensor(starts, dtype=torch.long)[:, None] + torch.arange(config.segment_frames)
    return lm[:, idx].permute(1, 0, 2).contiguous()


def segment_loudness_db(
    logmel: torch.Tensor | np.ndarray, starts: np.ndarray, config: FeatureConfig = FeatureConfig()
) -> np.ndarray:
    """Mean-power loudness (dBFS) of each segment starting at ``starts``."""
    frame_db = frame_loudness_db(logmel, config)
    if len(starts) == 0:
        return np.zeros(0, np.float32)
    power = 10 ** (frame_db / 10)
    csum = np.concatenate([[0.0], np.cumsum(power)])
    mean = (csum[starts + config.segment_frames] - csum[starts]) / config.segment_frames
    return (10 * np.log10(mean + 1e-12)).astype(np.float32)


def audible_segments(
    logmel: torch.Tensor | np.ndarray, hop_frames: int, config: FeatureConfig = FeatureConfig()
) -> np.ndarray:
    """Start frames of the segments louder than ``config.silence_db``."""
    starts = segment_starts(int(np.shape(logmel)[-1]), hop_frames, config)
    return starts[segment_loudness_db(logmel, starts, config) > config.silence_db]


def normalise(segs: torch.Tensor) -> torch.Tensor:
    """Remove each segment's mean log-mel value (makes features gain-invariant)."""
    return segs - segs.mean(dim=(-2, -1), keepdim=True)


def seconds_to_frames(seconds: float, config: FeatureConfig = FeatureConfig()) -> int:
    """Nearest whole number of frames (at least 1) for a duration."""
    return max(1, round(seconds * config.frames_per_second))


def shifted_similarity(segments: torch.Tensor, max_lag: int, step: int = 4) -> torch.Tensor:
    """Pairwise correlation of log-mel segments at their best relative shift.

    Parameters
    ----------
    segments : torch.Tensor
        ``(n, n_mels, frames)`` log-mel segments.
    max_lag : int
        Largest shift tried, in frames (both directions, every ``step``).

    Returns
    -------
    torch.Tensor
        ``(n, n)`` symmetric matrix of Pearson correlations in [-1, 1].
    """
    frames = segments.shape[-1]
    max_lag = min(max_lag, frames // 2)
    best = None
    for lag in range(-max_lag, max_lag + 1, max(1, step)):
        x = segments[:, :, max(lag, 0) : frames + min(lag, 0)].flatten(1)
        y = segments[:, :, max(-lag, 0) : frames + min(-lag, 0)].flatten(1)
        x = x - x.mean(1, keepdim=True)
        y = y - y.mean(1, keepdim=True)
        c = (x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)) @ (y / y.norm(dim=1, keepdim=True).clamp_min(1e-8)).T
        best = c if best is None else torch.maximum(best, c)
    return torch.maximum(best, best.T)


def passage_similarity(a: torch.Tensor, b: torch.Tensor, window: int, max_lag: int) -> float:
    """How alike two equally long log-mels are, window by window.

    The median over consecutive windows of ``window`` frames of their
    :func:`shifted_similarity` (each window at its own best shift up to
    ``max_lag`` frames), so a variant mixed a little differently, or
    drifting by a few frames over ten seconds, still reads as the same
    passage while a different passage does not.

    Parameters
    ----------
    a, b : torch.Tensor
        ``(n_mels, frames)`` log-mels of the same length.
    window, max_lag : int
        Frames.
    """
    pair = torch.stack([a, b])
    frames = pair.shape[-1]
    starts = range(0, max(1, frames - window + 1), window) if frames >= window else [0]
    sims = [float(shifted_similarity(pair[:, :, s : s + window], max_lag)[0, 1]) for s in starts]
    return float(np.median(sims))
