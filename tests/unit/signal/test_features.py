"""Log-mel features and segments, checked against answers known in advance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosim.config import DecodeConfig, FeatureConfig
from audiosim.signal import audio
from audiosim.signal import features as F

C = FeatureConfig()
SR = C.sample_rate


def tone(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(SR * seconds))) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def frames_for(samples: int) -> int:
    return 0 if samples < C.n_fft else 1 + (samples - C.n_fft) // C.hop_length


def rich(seconds: float, seed: int = 0) -> np.ndarray:
    """Tones plus broadband noise: energy in every mel band."""
    rng = np.random.default_rng(seed)
    x = tone(440, seconds, 0.3) + tone(1234, seconds, 0.2) + tone(2900, seconds, 0.1)
    return (x + 0.1 * rng.standard_normal(x.shape[0])).astype(np.float32)


@pytest.mark.parametrize("samples", [0, 100, 511, 512, 513, 637, 8000, 8001, 7887])
def test_log_mel_shape_and_frame_count(samples):
    lm = F.log_mel(torch.from_numpy(rich(samples / SR) if samples else np.zeros(0, np.float32)))
    assert lm.shape == (C.n_mels, frames_for(samples))
    assert lm.dtype == torch.float32


def test_log_mel_batches_and_frames_per_second():
    x = torch.from_numpy(np.stack([rich(2.0, 1), rich(2.0, 2)]))
    lm = F.log_mel(x)
    assert lm.shape == (2, C.n_mels, frames_for(2 * SR))
    assert torch.allclose(lm[1], F.log_mel(x[1]), atol=1e-5)
    assert C.frames_per_second == 64.0
    # a segment's worth of samples gives exactly one segment of frames
    assert F.log_mel(torch.zeros(C.segment_samples)).shape[-1] == C.segment_frames


def test_log_mel_puts_a_tone_in_the_right_band():
    fb = F.mel_transform(C).mel_scale.fb  # (n_freqs, n_mels)
    for freq in (300.0, 1000.0, 3000.0):
        lm = F.log_mel(torch.from_numpy(tone(freq, 1.0)))
        band = int(lm.mean(dim=1).argmax())
        assert band == int(fb[int(round(freq * C.n_fft / SR))].argmax()), freq


def test_silence_sits_at_the_log_floor():
    lm = F.log_mel(torch.zeros(SR))
    assert torch.allclose(lm, torch.full_like(lm, math.log(C.log_floor)))


@pytest.mark.parametrize("block", [7, 125, 333, 512, 1000, 8000])
def test_log_mel_stream_equals_log_mel_of_the_whole(block):
    x = rich(3.1)
    whole = F.log_mel(torch.from_numpy(x)).numpy()
    blocks = [x[i : i + block] for i in range(0, x.shape[0], block)]
    blocks.insert(3, np.zeros(0, np.float32))  # an empty block changes nothing
    streamed = F.log_mel_stream(blocks)
    assert streamed.shape == whole.shape and streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, whole, atol=1e-4)


def test_log_mel_stream_of_too_little_audio():
    assert F.log_mel_stream([]).shape == (C.n_mels, 0)
    assert F.log_mel_stream([np.zeros(200, np.float32), np.zeros(300, np.float32)]).shape == (C.n_mels, 0)
    assert F.log_mel_stream([np.zeros(200, np.float32), np.zeros(312, np.float32)]).shape == (C.n_mels, 1)


def test_decode_stream_into_features_equals_whole_file(tmp_path):
    x = (rich(3.0) * 0.8).astype(np.float32)
    sf.write(tmp_path / "x.wav", audio.resample(x, SR, 44100), 44100, subtype="FLOAT")
    config = DecodeConfig(block_seconds=0.5)
    streamed = F.log_mel_stream(audio.stream(tmp_path / "x.wav", SR, config))
    whole = F.log_mel(torch.from_numpy(audio.load(tmp_path / "x.wav", SR))).numpy()
    np.testing.assert_allclose(streamed, whole, atol=1e-4)


def test_segment_starts():
    assert F.segment_starts(0, 10).shape == (0,)
    assert F.segment_starts(C.segment_frames - 1, 10).shape == (0,)
    np.testing.assert_array_equal(F.segment_starts(C.segment_frames, 10), [0])
    starts = F.segment_starts(100, 10)
    np.testing.assert_array_equal(starts, [0, 10, 20, 30, 40])
    assert starts.dtype == np.int64
    starts = F.segment_starts(1000, 32)
    assert starts[-1] + C.segment_frames <= 1000 < starts[-1] + 32 + C.segment_frames


def test_segments_cut_the_right_frames():
    lm = torch.arange(C.n_mels * 200, dtype=torch.float32).reshape(C.n_mels, 200)
    starts = np.array([0, 17, 140])
    segs = F.segments(lm, starts)
    assert segs.shape == (3, C.n_mels, C.segment_frames)
    for i, s in enumerate(starts):
        assert torch.equal(segs[i], lm[:, s : s + C.segment_frames])
    assert F.segments(lm.numpy(), np.zeros(0, np.int64)).shape == (0, C.n_mels, C.segment_frames)


def test_seconds_to_frames():
    assert F.seconds_to_frames(1.0) == 64
    assert F.seconds_to_frames(0.5) == 32
    assert F.seconds_to_frames(0.0) == 1


@pytest.mark.parametrize("amp", [1.0, 0.5, 0.1, 0.01])
def test_loudness_of_a_sine_is_amplitude_squared_over_two(amp):
    lm = F.log_mel(torch.from_numpy(tone(1000, 2.0, amp)))
    expected = 10 * math.log10(amp**2 / 2)  # -3.01 dBFS at full scale
    frame_db = F.frame_loudness_db(lm)
    assert frame_db.shape == (lm.shape[-1],)
    np.testing.assert_allclose(frame_db, expected, atol=0.1)
    starts = F.segment_starts(lm.shape[-1], 16)
    np.testing.assert_allclose(F.segment_loudness_db(lm, starts), expected, atol=0.1)


def test_loudness_only_counts_the_mel_band():
    in_band = F.frame_loudness_db(F.log_mel(torch.from_numpy(tone(1000, 1.0)))).mean()
    below = F.frame_loudness_db(F.log_mel(torch.from_numpy(tone(60, 1.0)))).mean()
    assert below < in_band - 20


def test_audible_segments_drop_silent_parts():
    loud, quiet = tone(1000, 3.0, 0.5), np.zeros(3 * SR, np.float32)
    x = np.concatenate([loud, quiet, loud])
    lm = F.log_mel(torch.from_numpy(x))
    hop = 16
    every = F.segment_starts(lm.shape[-1], hop)
    kept = F.audible_segments(lm, hop)
    # frames 192..379 hold only silence (frame i covers samples 125 i .. 125 i + 511);
    # a segment with any loud frame is far above -50 dBFS, one without is far below
    first_silent, last_silent = 3 * SR // C.hop_length, (6 * SR - C.n_fft) // C.hop_length
    assert (first_silent, last_silent) == (192, 379)
    expected = [s for s in every if s < first_silent or s + C.segment_frames - 1 > last_silent]
    np.testing.assert_array_equal(kept, expected)
    assert len(kept) < len(every)
    quiet_lm = F.log_mel(torch.from_numpy(tone(1000, 3.0, 10 ** (-60 / 20))))  # -63 dBFS < -50
    assert F.audible_segments(quiet_lm, hop).shape == (0,)
    assert len(F.audible_segments(F.log_mel(torch.from_numpy(loud)), hop)) == len(F.segment_starts(frames_for(loud.shape[0]), hop))


def test_normalise_removes_each_segment_mean():
    lm = F.log_mel(torch.from_numpy(rich(3.0)))
    segs = F.normalise(F.segments(lm, F.segment_starts(lm.shape[-1], 20)))
    assert torch.allclose(segs.mean(dim=(-2, -1)), torch.zeros(segs.shape[0]), atol=1e-4)


def test_normalise_is_gain_invariant():
    x = rich(4.0, seed=3)
    starts = F.segment_starts(frames_for(x.shape[0]), 16)
    a = F.normalise(F.segments(F.log_mel(torch.from_numpy(x)), starts))
    b = F.normalise(F.segments(F.log_mel(torch.from_numpy(0.1 * x)), starts))
    # exact up to the log floor, which only matters in rare near-empty bins
    assert float((a - b).abs().mean()) < 1e-3
    assert float((a - b).abs().max()) < 0.1
    raw = F.segments(F.log_mel(torch.from_numpy(x)), starts) - F.segments(F.log_mel(torch.from_numpy(0.1 * x)), starts)
    assert float(raw.mean()) == pytest.approx(2 * math.log(10), abs=0.01)  # 20 dB of power, before normalising


def test_mel_transform_is_cached_per_config():
    assert F.mel_transform(C) is F.mel_transform(FeatureConfig())
    other = FeatureConfig(n_mels=32)
    assert F.mel_transform(other) is not F.mel_transform(C)
    assert F.log_mel(torch.from_numpy(rich(1.0)), other).shape[0] == 32


def test_passage_similarity_tolerates_drift_but_not_another_passage():
    from audiosim.signal.features import passage_similarity, shifted_similarity

    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool1d(torch.randn(64, 640, generator=g)[None], 9, 1, 4)[0]
    # the same passage drifting by up to 12 frames over 10 s (a slightly different tempo), remixed
    drift = torch.stack([smooth[:, min(639, int(i * 1.02))] for i in range(600)], dim=1)
    remix = drift + 0.1 * torch.randn(64, 600, generator=g)
    other = torch.nn.functional.avg_pool1d(torch.randn(64, 600, generator=g)[None], 9, 1, 4)[0]
    assert passage_similarity(smooth[:, :600], remix, 60, 16) > 0.8
    assert passage_similarity(smooth[:, :600], other, 60, 16) < 0.3
    # one shift for the whole 10 s cannot follow the drift
    assert shifted_similarity(torch.stack([smooth[:, :600], remix]), 16)[0, 1] < 0.8
