"""Resampling: the common rates exactly as before, any other rate in bounded memory."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from audiosim.config import DecodeConfig
from audiosim.signal import audio
from audiosim.signal.resample import (
    MAX_SINC_TAPS,
    block_resampler,
    output_length,
    resample,
    sinc_kernel_taps,
    uses_sinc,
)

COMMON_RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000]
TARGETS = [8000, 16000, 22050]  # fingerprints, musicnn, descriptors
ODD_RATES = [44101, 7919]  # primes: torchaudio's kernel would be huge


def noisy(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    n = int(seconds * rate) + 7  # not a whole number of blocks
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate) + 0.1 * rng.standard_normal(n)).astype(np.float32)


def tones(rate: int, seconds: float, n_out: int | None = None, out_rate: int | None = None):
    """A sum of tones below 3 kHz at ``rate``, and the same tones sampled exactly at ``out_rate``."""
    rng = np.random.default_rng(rate)
    freqs, phases = rng.uniform(60, 3000, 12), rng.uniform(0, 2 * np.pi, 12)

    def at(times):
        return sum(0.05 * np.sin(2 * np.pi * f * times + p) for f, p in zip(freqs, phases)).astype(np.float32)

    x = at(np.arange(int(seconds * rate)) / rate)
    return x, (at(np.arange(n_out) / out_rate) if n_out else None)


def old_stream(x: np.ndarray, orig: int, new: int, block_seconds: float) -> np.ndarray:
    """The block-wise resampling of the code the index was built with: torchaudio per block, with context."""
    step = orig // math.gcd(orig, new)
    block = max(1, round(block_seconds * orig / step)) * step
    ctx = max(1, math.ceil(0.05 * orig / step)) * step
    out, left = [], np.zeros(0, np.float32)
    for i in range(0, x.shape[0], block):
        b, right = x[i : i + block], x[i + block : i + block + ctx]
        y = AF.resample(torch.from_numpy(np.concatenate([left, b, right])), orig, new).numpy()
        start = left.shape[0] * new // orig
        out.append(y[start : start + math.ceil(b.shape[0] * new / orig)])
        left = b[-ctx:]
    return np.concatenate(out)


@pytest.mark.parametrize("orig", COMMON_RATES)
def test_common_rates_keep_torchaudio_bit_for_bit(orig):
    x = noisy(orig, 1.3)
    for new in TARGETS:
        if new == orig:
            continue
        assert uses_sinc(orig, new), (orig, new)
        expected = AF.resample(torch.from_numpy(x), orig, new).numpy()
        np.testing.assert_array_equal(resample(x, orig, new), expected)


@pytest.mark.parametrize("orig", COMMON_RATES)
def test_common_rates_stream_bit_for_bit_as_before(tmp_path, orig):
    x = noisy(orig, 1.3, seed=orig)
    sf.write(tmp_path / "x.wav", np.stack([x, -x[::-1]], axis=1), orig, subtype="FLOAT")
    mono = sf.read(tmp_path / "x.wav", dtype="float32")[0].mean(axis=1)
    for new in TARGETS:
        streamed = np.concatenate(list(audio.stream(tmp_path / "x.wav", new, DecodeConfig(block_seconds=0.4))))
        np.testing.assert_array_equal(streamed, old_stream(mono, orig, new, 0.4) if new != orig else mono)


def test_query_speeds_stay_on_torchaudio():
    for speed in (0.9, 0.95, 0.97, 1.013, 1.03, 1.05, 1.1):
        assert uses_sinc(8000, int(round(8000 * speed))), speed


def test_large_reduced_ratios_leave_torchaudio():
    for orig in ODD_RATES + [1009, 767_999, 44056]:
        assert sinc_kernel_taps(orig, 8000) > MAX_SINC_TAPS and not uses_sinc(orig, 8000), orig


@pytest.mark.parametrize("orig", ODD_RATES)
def test_an_odd_rate_matches_the_exact_tones(orig):
    new = 8000
    x, _ = tones(orig, 3.0)
    y = resample(x, orig, new)
    assert y.shape[0] == output_length(x.shape[0], orig, new) == math.ceil(x.shape[0] * new / orig)
    _, exact = tones(orig, 3.0, y.shape[0], new)
    inner = slice(100, -100)  # the edges, where the input starts and stops, differ in every resampler
    assert np.corrcoef(y[inner], exact[inner])[0, 1] > 0.9999
    assert np.abs(y[inner] - exact[inner]).max() < 1e-3


@pytest.mark.parametrize("orig", ODD_RATES)
def test_an_odd_rate_streams_as_it_resamples_whole(tmp_path, orig):
    x, _ = tones(orig, 3.3)
    sf.write(tmp_path / "x.wav", x, orig, subtype="FLOAT")
    blocks = list(audio.stream(tmp_path / "x.wav", 8000, DecodeConfig(block_seconds=0.2)))
    assert len(blocks) >= 10
    np.testing.assert_allclose(np.concatenate(blocks), resample(x, orig, 8000), atol=1e-6)


def test_block_resampler_pushes_and_finishes():
    x, _ = tones(44101, 1.0)
    r = block_resampler(44101, 16000, 0.1)
    out = [r.push(x[i : i + r.block]) for i in range(0, x.shape[0], r.block)] + [r.finish()]
    assert sum(o.shape[0] for o in out) == output_length(x.shape[0], 44101, 16000)
    same = block_resampler(8000, 8000, 0.5)
    assert same.block == 4000 and same.push(x[:10]) is not None and same.finish().shape == (0,)


PEAK = r"""
import resource, sys, time
import numpy as np, soundfile as sf
from audiosim.signal import audio
path, rate = sys.argv[1], int(sys.argv[2])
t = np.arange(10 * rate) / rate
x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
sf.write(path, np.stack([x, x], axis=1), rate, subtype="PCM_16")
del t, x
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
y = np.concatenate([audio.load(path, 8000), audio.load(path, 16000)])
seconds = time.perf_counter() - t0
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown // 1024, seconds, y.shape[0])
"""


@pytest.mark.slow
@pytest.mark.parametrize("orig", ODD_RATES)
def test_an_odd_rate_decodes_in_bounded_memory_and_time(tmp_path, orig):
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(tmp_path / "x.wav"), str(orig)], capture_output=True, text=True, check=True
    )
    grown_mb, seconds, n = done.stdout.split()
    assert int(n) == 10 * 8000 + 10 * 16000
    assert int(grown_mb) < 300, done.stdout  # the kernel torchaudio would build is gigabytes
    assert float(seconds) < 20
