"""Batched degradations: known answers on synthetic signals."""

import numpy as np
import pytest
import torch

from audiosim.config import AugmentConfig
from audiosim.signal import augment


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_coloured_noise_has_unit_rms_and_the_right_slope():
    n = augment.coloured_noise(4, 16384, torch.tensor([0.0, 1.0, 2.0, 1.0]), g())
    assert torch.allclose(n.pow(2).mean(1), torch.ones(4), atol=1e-4)
    spec = torch.fft.rfft(n).abs().pow(2)
    low, high = spec[:, 100:200].mean(1), spec[:, 4000:5000].mean(1)
    assert low[0] / high[0] == pytest.approx(1.0, rel=0.5)  # white: flat
    assert low[2] / high[2] > 100  # brown: steep


def test_mix_at_snr_gives_the_requested_snr():
    x = torch.sin(torch.linspace(0, 2000, 8000))[None].repeat(2, 1)
    noise = torch.randn(2, 8000, generator=g())
    y = augment.mix_at_snr(x, noise, torch.tensor([0.0, 20.0]))
    snr = 10 * torch.log10(x.pow(2).sum(1) / (y - x).pow(2).sum(1))
    assert snr.tolist() == pytest.approx([0.0, 20.0], abs=0.01)


def test_reverb_keeps_length_and_direct_path():
    x = torch.zeros(1, 4000)
    x[0, 100] = 1.0
    rir = augment.synthetic_rir(1, 2000, 8000, torch.tensor([0.5]), g())
    y = augment.reverberate(x, rir)
    assert y.shape == x.shape
    assert float(y[0, :100].abs().max()) < 1e-5  # causal: nothing before the impulse
    assert abs(float(y[0, 100])) > 0.1  # the direct sound arrives at once
    assert y[0, 150:].abs().sum() > 0  # and a tail follows


def test_gather_resampled_at_rate_one_is_a_slice_and_speed_shortens():
    src = torch.arange(1000, dtype=torch.float32)
    out = augment.gather_resampled(src, torch.tensor([10.0, 20.5]), torch.tensor([1.0, 1.0]), 5)
    assert out[0].tolist() == [10, 11, 12, 13, 14]
    assert out[1].tolist() == pytest.approx([20.5, 21.5, 22.5, 23.5, 24.5])
    fast = augment.gather_resampled(src, torch.tensor([0.0]), torch.tensor([1.02]), 100)
    assert float(fast[0, -1]) == pytest.approx(99 * 1.02, abs=1e-3)


def test_phone_band_removes_low_and_high_frequencies():
    sr, n = 8000, 8192
    t = torch.arange(n) / sr
    x = (torch.sin(2 * np.pi * 100 * t) + torch.sin(2 * np.pi * 1000 * t))[None]
    gains = augment.random_eq_gains(1, augment.eq_bins(n), sr, max_db=0.0, phone=torch.tensor([True]), g=g())
    y = augment.equalise(x, gains)
    spec = torch.fft.rfft(y[0]).abs()
    bin100, bin1000 = round(100 * n / sr), round(1000 * n / sr)
    assert spec[bin100] < 0.05 * spec[bin1000]


@pytest.mark.parametrize("codec", ["mp3", "opus", "vorbis"])
def test_lossy_copy_stays_aligned(codec):
    sr = 8000
    rng = np.random.default_rng(0)
    t = np.arange(sr * 4) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 1.3 * t)) + 0.05 * rng.standard_normal(len(t)))
    x = x.astype(np.float32)
    y = augment.lossy_copy(x, sr, codec)
    assert y.shape == x.shape
    core = slice(sr // 2, -sr // 2)
    lags = {lag: np.corrcoef(x[core], np.roll(y, lag)[core])[0, 1] for lag in (-8, -1, 0, 1, 8)}
    assert max(lags, key=lags.get) == 0
    assert lags[0] > 0.8


def test_degrader_is_seeded_and_keeps_the_requested_length():
    d = augment.Degrader(AugmentConfig(), 8000)
    x = torch.randn(8, 12000, generator=g(1))
    a = d(x, 8000, g(5), music=x)
    b = d(x, 8000, g(5), music=x)
    c = d(x, 8000, g(6), music=x)
    assert a.shape == (8, 8000)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_silent_noise_leaves_the_signal_finite():
    x = torch.sin(torch.linspace(0, 2000, 8000))[None].repeat(2, 1)
    noise = torch.stack([torch.zeros(8000), torch.randn(8000, generator=g())])
    y = augment.mix_at_snr(x, noise, torch.tensor([5.0, 5.0]))
    assert torch.isfinite(y).all()
    assert torch.equal(y[0], x[0]) and not torch.equal(y[1], x[1])


def test_degrader_with_a_partly_silent_noise_bank_stays_finite():
    # recordings with digital silence between sounds (voice samples) once gave NaN positives
    bank = torch.zeros(8000 * 20)
    bank[8000 * 15 :] = torch.randn(8000 * 5, generator=g(2))
    cfg = AugmentConfig(p_noise=1.0, snr_db=(5.0, 5.0))
    d = augment.Degrader(cfg, 8000, bank)
    x = torch.randn(64, 12000, generator=g(3))
    assert torch.isfinite(d(x, 8000, g(4), music=x)).all()


def test_room_response_darkens_its_tail():
    """With ``hf_ratio`` < 1 the late tail holds less treble than bass."""
    sr, n = 8000, 4000
    rt60 = torch.full((64,), 0.8)

    def treble_share(rir: torch.Tensor) -> float:
        late = torch.fft.rfft(rir[:, int(0.2 * sr):], dim=-1).abs().pow(2)
        freqs = torch.fft.rfftfreq(n - int(0.2 * sr), 1 / sr)
        return float(late[:, freqs > 3000].sum() / late.sum())

    flat = augment.synthetic_rir(64, n, sr, rt60, g())
    dark = augment.synthetic_rir(64, n, sr, rt60, g(), hf_ratio=torch.full((64,), 0.3))
    same = augment.synthetic_rir(64, n, sr, rt60, g(), hf_ratio=torch.ones(64))
    assert treble_share(dark) < 0.3 * treble_share(flat)
    assert treble_share(same) == pytest.approx(treble_share(flat), rel=0.1)
    for r in (flat, dark, same):
        assert torch.isfinite(r).all() and torch.allclose(r.norm(dim=1), torch.ones(64))


def speech(seconds: float = 10.0, sr: int = 8000) -> torch.Tensor:
    """A stand-in voice: bursts of harmonic tones (syllables) with pauses, unit RMS."""
    t = torch.arange(int(seconds * sr)) / sr
    on = (torch.sin(2 * np.pi * 3.0 * t) > 0).float()  # three syllables a second
    x = on * sum(torch.sin(2 * np.pi * f * t) / k for k, f in enumerate((180.0, 360.0, 540.0), 1))
    return x / x.pow(2).mean().sqrt()


def test_babble_is_several_talkers_at_unit_rms():
    bank = speech()
    one = augment.speech_babble(bank, 16, 8000, (1, 1), g())
    many = augment.speech_babble(bank, 16, 8000, (6, 6), g())
    assert torch.allclose(many.pow(2).mean(1), torch.ones(16), atol=1e-3)
    # one talker pauses between syllables; six talking at once rarely all do
    quiet = lambda x: (x.unfold(1, 400, 400).pow(2).mean(-1) < 0.01).float().mean()  # noqa: E731
    assert quiet(one) > 0.3 and quiet(many) < 0.1
    assert torch.equal(many, augment.speech_babble(bank, 16, 8000, (6, 6), g()))


def test_babble_is_drawn_only_with_a_speech_bank():
    cfg = AugmentConfig(p_babble=1.0)
    assert (augment.Degrader(cfg, 8000, speech_bank=speech()).noise_kinds(64, g()) == 3).all()
    assert not (augment.Degrader(cfg, 8000).noise_kinds(64, g()) == 3).any()
    x = torch.randn(4, 12000, generator=g(1))
    assert torch.isfinite(augment.Degrader(cfg, 8000, speech_bank=speech())(x, 8000, g(2))).all()


def test_the_microphone_chain_adds_the_noise_after_the_band_limiting():
    """p_chain=1: reverb, phone band, then noise (the noise keeps its bass);
    p_chain=0: the noise is band-limited with the music."""
    sr = 8000
    t = torch.arange(12000) / sr
    x = torch.sin(2 * np.pi * 1000.0 * t)[None].repeat(32, 1)
    base = dict(p_noise=1.0, snr_db=(0.0, 0.0), p_reverb=0.0, p_eq=1.0, p_phone=1.0, p_babble=0.0, gain_db=(0.0, 0.0))

    def bass_share(p_chain: float) -> float:
        y = augment.Degrader(AugmentConfig(**base, p_chain=p_chain), sr)(x, 8000, g(3))
        spec = torch.fft.rfft(y, dim=-1).abs().pow(2)
        freqs = torch.fft.rfftfreq(8000, 1 / sr)
        return float(spec[:, freqs < 150].sum() / spec.sum())

    assert bass_share(1.0) > 20 * bass_share(0.0)
