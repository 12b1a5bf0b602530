"""Seeded degradations on batches of waveforms, for training positives.

Everything works on ``(batch, samples)`` tensors with one random draw per
item and no per-item Python loops, so a batch of 128 costs about as much as
one. Pass a ``torch.Generator`` for reproducible runs.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF

from audiosim.config import AugmentConfig


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _chance(n: int, p: float, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


def _fft_size(n: int) -> int:
    # Power-of-two FFTs are several times faster than odd sizes like 7887.
    return 1 << (n - 1).bit_length()


def coloured_noise(batch: int, samples: int, exponent: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """Unit-RMS noise with power spectrum ``1 / f**exponent`` (0 white, 1 pink, 2 brown).

    Parameters
    ----------
    batch, samples : int
    exponent : Tensor, shape (batch,)
    """
    n = _fft_size(samples)
    spec = torch.fft.rfft(torch.randn(batch, n, generator=g))
    f = torch.arange(spec.shape[-1], dtype=torch.float32).clamp_min(1.0)
    spec = spec * f[None, :] ** (-exponent[:, None] / 2)
    x = torch.fft.irfft(spec, n=n)[:, :samples]
    return x / x.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)


def synthetic_rir(
    batch: int,
    samples: int,
    sample_rate: int,
    rt60: torch.Tensor,
    g: torch.Generator | None = None,
    hf_ratio: torch.Tensor | None = None,
) -> torch.Tensor:
    """Room impulse responses: a direct path then exponentially decaying noise.

    Parameters
    ----------
    rt60 : Tensor, shape (batch,)
        Reverberation time in seconds (time for a 60 dB decay).
    hf_ratio : Tensor, shape (batch,), optional
        Reverberation time above a crossover (drawn between 1 and 3 kHz, or
        below Nyquist) as a share of ``rt60``. Real rooms and air absorb
        high frequencies faster, so values under 1 give the darker tails
        of real halls; None keeps the decay the same at every frequency.

    Returns
    -------
    Tensor, shape (batch, samples), unit energy.
    """
    t = torch.arange(samples, dtype=torch.float32) / sample_rate
    noise = torch.randn(batch, samples, generator=g)
    decay = torch.exp(-6.9078 * t[None, :] / rt60[:, None])  # ln(1000) = 60 dB
    if hf_ratio is None:
        rir = noise * decay
    else:
        n = _fft_size(samples)
        freqs = torch.fft.rfftfreq(n, 1.0 / sample_rate)
        cross = torch.minimum(_uniform(batch, 1000.0, 3000.0, g), torch.tensor(0.4 * sample_rate))
        low_gain = torch.sigmoid((cross[:, None] - freqs[None, :]) / (0.1 * cross[:, None]))
        low = torch.fft.irfft(torch.fft.rfft(noise, n=n) * low_gain, n=n)[:, :samples]
        hf_decay = torch.exp(-6.9078 * t[None, :] / (rt60 * hf_ratio).clamp_min(0.02)[:, None])
        rir = low * decay + (noise - low) * hf_decay
    onset = (0.002 + 0.02 * torch.rand(batch, generator=g)) * sample_rate  # pre-delay of the tail
    rir = rir * (torch.arange(samples)[None, :] >= onset[:, None])
    rir[:, 0] = 1.0 + 2.0 * torch.rand(batch, generator=g)  # direct-to-reverberant ratio varies
    return rir / rir.norm(dim=-1, keepdim=True)


def reverberate(x: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """Convolve each row of ``x`` with its impulse response, keeping the length."""
    n = _fft_size(x.shape[-1] + rir.shape[-1] - 1)
    y = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(rir, n=n), n=n)
    return y[..., : x.shape[-1]]


def random_eq_gains(
    batch: int,
    n_bins: int,
    sample_rate: int,
    max_db: float = 8.0,
    phone: torch.Tensor | None = None,
    g: torch.Generator | None = None,
) -> torch.Tensor:
    """Linear magnitude gains ``(batch, n_bins)`` for an rFFT: a random smooth
    tilt-and-bumps curve, a random low-pass, and for items where ``phone`` is
    True a telephone band-pass (300-3400 Hz)."""
    knots = 8
    db = (torch.rand(batch, knots, generator=g) * 2 - 1) * max_db
    curve = torch.nn.functional.interpolate(db[:, None, :], size=n_bins, mode="linear", align_corners=True)[:, 0]
    freqs = torch.linspace(0, sample_rate / 2, n_bins)
    cutoff = _uniform(batch, 2000.0, sample_rate / 2, g)
    lowpass = torch.sigmoid((cutoff[:, None] - freqs[None, :]) / 60.0)
    gains = 10 ** (curve / 20) * lowpass
    if phone is not None and phone.any():
        band = torch.sigmoid((freqs - 300.0) / 40.0) * torch.sigmoid((3400.0 - freqs) / 60.0)
        gains = torch.where(phone[:, None], gains * band[None, :], gains)
    return gains


def equalise(x: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Apply per-item magnitude ``gains`` (for an rFFT of
    ``eq_bins(x.shape[-1])`` bins) to ``x``: a zero-phase filter."""
    n = _fft_size(x.shape[-1])
    return torch.fft.irfft(torch.fft.rfft(x, n=n) * gains, n=n)[..., : x.shape[-1]]


def eq_bins(samples: int) -> int:
    """Number of rFFT bins :func:`equalise` uses for ``samples`` samples."""
    return _fft_size(samples) // 2 + 1


def gather_resampled(
    source: torch.Tensor, starts: torch.Tensor, rates: torch.Tensor, length: int
) -> torch.Tensor:
    """Read ``length`` samples from ``source`` at ``starts + rates * k`` by
    linear interpolation: a speed change (tempo and pitch together, as a
    record played fast) fused with the window read.

    Parameters
    ----------
    source : Tensor, shape (N,)
    starts : Tensor, shape (B,), float sample positions
    rates : Tensor, shape (B,); 1.02 plays 2 % fast
    length : int

    Returns
    -------
    Tensor, shape (B, length)
    """
    base = starts.floor()
    # float32 offsets from an integer base keep sub-sample precision cheaply
    rel = (starts - base)[:, None].float() + rates[:, None].float() * torch.arange(length, dtype=torch.float32)[None, :]
    step = rel.floor()
    frac = rel - step
    i0 = (base.long()[:, None] + step.long()).clamp(0, source.shape[0] - 2)
    return torch.lerp(source[i0], source[i0 + 1], frac)


def mix_at_snr(x: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Add ``noise`` to ``x`` so each row has the given signal-to-noise ratio (dB).

    Rows whose noise is digital silence are returned unchanged (torchaudio's
    ``add_noise`` would divide by its zero energy and give NaN).
    """
    silent = noise.pow(2).mean(-1) < 1e-12
    mixed = AF.add_noise(x, torch.where(silent[:, None], torch.ones_like(noise), noise), snr_db)
    return torch.where(silent[:, None], x, mixed)


NOISE_KINDS = ("coloured", "recorded", "music", "babble")
"""The kinds of noise :class:`Degrader` mixes in, by their code (0 to 3)."""


def speech_babble(
    bank: torch.Tensor,
    batch: int,
    samples: int,
    talkers: tuple[int, int],
    g: torch.Generator | None = None,
) -> torch.Tensor:
    """Unit-RMS babble: several talkers of a speech bank speaking at once.

    Each talker is a window of ``bank`` at a random position, read 0.8 to
    1.25 times as fast (:func:`gather_resampled`), which moves its pitch and
    formants: a few recorded voices stand in for many people. Talkers are
    mixed at levels within 6 dB of each other.

    Parameters
    ----------
    bank : Tensor, shape (N,)
        Speech recordings concatenated, each at unit RMS.
    batch, samples : int
    talkers : (int, int)
        Fewest and most talkers per item.
    """
    lo, hi = int(talkers[0]), int(talkers[1])
    count = torch.randint(lo, hi + 1, (batch,), generator=g)
    out = torch.zeros(batch, samples)
    for k in range(hi):
        rates = _uniform(batch, 0.8, 1.25, g)
        room = float(bank.shape[0] - 2) - rates.max().item() * samples
        starts = torch.rand(batch, generator=g).double() * max(room, 0.0)
        voice = gather_resampled(bank, starts, rates, samples)
        level = 10 ** (_uniform(batch, -6.0, 0.0, g) / 20) * (k < count)
        out = out + voice * level[:, None]
    return out / out.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)


class Degrader:
    """Random degradations of positives: reverb, noise, EQ/phone band, gain.

    Speed changes, time shifts and codec artefacts are applied by the caller
    when it reads the window (see :func:`gather_resampled`), since they
    change which source samples are read. Items are degraded in one of two
    orders: reverb, noise, then EQ (a recording of a noisy room); or, for a
    ``config.p_chain`` share, reverb, EQ, then noise (a phone held up in a
    room: its band-limiting shapes the music; talk and noise come on top).

    Parameters
    ----------
    config : AugmentConfig
    sample_rate : int
    noise_bank : Tensor, shape (N,), optional
        Recorded environmental noise at ``sample_rate``; windows of it are
        mixed in as one of the noise types.
    speech_bank : Tensor, shape (N,), optional
        Speech recordings at ``sample_rate`` (each at unit RMS), for the
        ``config.p_babble`` share of noisy items that get speech babble
        (:func:`speech_babble`).
    """

    def __init__(
        self,
        config: AugmentConfig,
        sample_rate: int,
        noise_bank: torch.Tensor | None = None,
        speech_bank: torch.Tensor | None = None,
    ):
        self.config = config
        self.sample_rate = sample_rate
        self.noise_bank = noise_bank if noise_bank is not None and noise_bank.numel() > sample_rate else None
        self.speech_bank = speech_bank if speech_bank is not None and speech_bank.numel() > 4 * sample_rate else None

    def noise_kinds(self, batch: int, g: torch.Generator | None) -> torch.Tensor:
        """Per item, the code of its noise kind (see :data:`NOISE_KINDS`):
        babble for a ``p_babble`` share when there is a speech bank, else
        coloured, recorded or music alike."""
        kind = torch.randint(0, 3, (batch,), generator=g)
        if self.speech_bank is None:
            return kind
        return torch.where(_chance(batch, self.config.p_babble, g), torch.full_like(kind, 3), kind)

    def noise(
        self,
        batch: int,
        samples: int,
        music: torch.Tensor | None,
        g: torch.Generator | None,
        kind: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Unit-RMS noise of the given kinds (default :meth:`noise_kinds`):
        coloured, recorded, a mix of other music (``music``, rows from the
        same batch, rolled) or speech babble."""
        kind = self.noise_kinds(batch, g) if kind is None else kind
        out = coloured_noise(batch, samples, _uniform(batch, 0.0, 2.0, g), g)
        if self.noise_bank is not None:
            starts = torch.randint(0, self.noise_bank.shape[0] - samples, (batch,), generator=g)
            rec = self.noise_bank[starts[:, None] + torch.arange(samples)[None, :]]
            rms = rec.pow(2).mean(-1, keepdim=True).sqrt()
            rec = rec / rms.clamp_min(1e-6)
            # a silent stretch of a recording (pauses between voice samples) stays coloured noise
            out = torch.where((kind == 1)[:, None] & (rms > 1e-4), rec, out)
        if music is not None and music.shape[0] > 1:
            mix = sum(torch.roll(music, shifts=s, dims=0) for s in (1, 2, 3))
            mix = mix / mix.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-6)
            out = torch.where((kind == 2)[:, None], mix, out)
        if self.speech_bank is not None and bool((kind == 3).any()):
            talk = speech_babble(self.speech_bank, batch, samples, self.config.babble_talkers, g)
            out = torch.where((kind == 3)[:, None], talk, out)
        return out

    def __call__(
        self,
        x: torch.Tensor,
        keep: int,
        g: torch.Generator | None = None,
        snr_db: torch.Tensor | None = None,
        music: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Degrade ``x`` (batch, samples) and return its last ``keep`` samples.

        The samples before the last ``keep`` are context that feeds the reverb
        tail. ``snr_db`` fixes the SNR per item (validation); otherwise it is
        drawn from ``config.snr_db`` (``config.babble_snr_db`` for babble)
        for a ``p_noise`` share of items.
        """
        c = self.config
        b, n = x.shape
        sr = self.sample_rate
        rir_len = min(n - keep, sr // 2) if n > keep else sr // 4
        if rir_len > 0:
            # (1, 1) takes the plain path, so runs with the defaults draw the same random numbers as before
            hf = None if tuple(c.rt60_hf_ratio) == (1.0, 1.0) else _uniform(b, *c.rt60_hf_ratio, g)
            rir = synthetic_rir(b, rir_len, sr, _uniform(b, *c.rt60, g), g, hf_ratio=hf)
            wet = reverberate(x, rir)
            x = torch.where(_chance(b, c.p_reverb, g)[:, None], wet, x)
        x = x[:, -keep:]
        kind = self.noise_kinds(b, g)
        if snr_db is None:
            drawn = torch.where(kind == 3, _uniform(b, *c.babble_snr_db, g), _uniform(b, *c.snr_db, g))
            snr_db = torch.where(_chance(b, c.p_noise, g), drawn, torch.full((b,), 200.0))
        noise = self.noise(b, keep, None if music is None else music[:, -keep:], g, kind)
        gains = random_eq_gains(b, eq_bins(keep), sr, phone=_chance(b, c.p_phone, g), g=g)
        use_eq = _chance(b, c.p_eq, g)[:, None]
        chain = _chance(b, c.p_chain, g)[:, None]
        x = torch.where(use_eq & chain, equalise(x, gains), x)
        x = mix_at_snr(x, noise, snr_db.float())
        x = torch.where(use_eq & ~chain, equalise(x, gains), x)
        gain = 10 ** (_uniform(b, *c.gain_db, g) / 20)
        return x * gain[:, None]


def speed_factors(batch: int, config: AugmentConfig, g: torch.Generator | None = None) -> torch.Tensor:
    """Per-item playback rates: 1.0, or uniform in ``config.speed`` for a ``p_speed`` share."""
    return torch.where(_chance(batch, config.p_speed, g), _uniform(batch, *config.speed, g), torch.ones(batch))


def shifts(batch: int, config: AugmentConfig, sample_rate: int, g: torch.Generator | None = None) -> torch.Tensor:
    """Per-item time shifts in samples, uniform within ``±max_shift_seconds``."""
    m = config.max_shift_seconds * sample_rate
    return _uniform(batch, -m, m, g)


def lossy_copy(x: np.ndarray, sample_rate: int, codec: str) -> np.ndarray:
    """Encode ``x`` with a lossy codec at a low bitrate and decode it back,
    aligned sample-for-sample with ``x`` (the codec delay is measured by
    cross-correlation and removed).

    Parameters
    ----------
    x : ndarray, mono float32
    sample_rate : int
    codec : {'mp3', 'opus', 'vorbis'}
    """
    import io

    import soundfile as sf

    fmt, subtype = {"mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS"), "vorbis": ("OGG", "VORBIS")}[codec]
    buf = io.BytesIO()
    rate = sample_rate if codec != "opus" or sample_rate in (8000, 12000, 16000, 24000, 48000) else 48000
    clipped = np.clip(x, -1, 1).astype(np.float32)
    # Written in small blocks: libsndfile's encoders overflow the C stack on
    # one multi-minute write.
    with sf.SoundFile(buf, "w", rate, 1, format=fmt, subtype=subtype, compression_level=0.9) as f:
        for i in range(0, len(clipped), 8192):
            f.write(clipped[i : i + 8192])
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    y = y if y.ndim == 1 else y.mean(1)
    probe = min(len(x), len(y), 20 * sample_rate)
    max_lag = min(4000, probe // 4)
    a = torch.from_numpy(np.ascontiguousarray(x[:probe]))
    bb = torch.from_numpy(np.ascontiguousarray(y[:probe + max_lag] if len(y) >= probe + max_lag else np.pad(y, (0, probe + max_lag - len(y)))[: probe + max_lag]))
    corr = AF.fftconvolve(bb, a.flip(0))[probe - 1 : probe - 1 + max_lag + 1]
    lag = int(torch.argmax(corr))
    y = y[lag:]
    out = np.zeros_like(x)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out
