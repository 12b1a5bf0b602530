"""Resample mono float32 audio, whole or block by block, in bounded memory for any rate pair.

Two resamplers, chosen by the pair of rates:

- torchaudio's band-limited sinc (Hann window, 6 zero crossings, roll-off
  0.99) for every pair whose *reduced* ratio is small: all the common rates
  (8, 11.025, 16, 22.05, 32, 44.1, 48, 96 kHz and more) and the query speeds.
  The index and every stored feature were made with it, so its output must
  stay bit for bit what it was.
- soxr, a resampler made for arbitrary ratios, for the other pairs, such as
  a prime rate (44 101 Hz, 7 919 Hz). torchaudio's kernel holds one row of
  ``orig / gcd`` taps for each of the ``new / gcd`` output phases, so with a
  reduced ratio like 44101/8000 it alone would need gigabytes.

:func:`sinc_kernel_taps` is the rule that chooses; :func:`resample` resamples
a whole array and :func:`block_resampler` one stream, block by block, with
its filter built once per stream.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import soxr
import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT

MAX_SINC_TAPS = 1 << 22
"""Largest torchaudio kernel (taps over all phases) used; larger pairs go to soxr."""

SOXR_QUALITY = "HQ"
SOXR_MAX_BLOCK = 1 << 20
"""Input frames per block on the soxr path (its memory does not depend on the ratio)."""

_LOWPASS_WIDTH, _ROLLOFF = 6, 0.99  # torchaudio's defaults, which every stored feature used
_EMPTY = np.zeros(0, np.float32)


def sinc_kernel_taps(orig: int, new: int) -> int:
    """Number of taps torchaudio's sinc kernel has for ``orig`` -> ``new`` Hz.

    The same arithmetic as ``torchaudio.functional.resample``: after
    reducing the ratio by the rates' gcd, ``new`` phases of ``orig`` taps
    plus the filter's width on both sides.
    """
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    width = math.ceil(_LOWPASS_WIDTH * o / (min(o, n) * _ROLLOFF))
    return n * (o + 2 * width)


def uses_sinc(orig: int, new: int) -> bool:
    """True when ``orig`` -> ``new`` is resampled by torchaudio's sinc (the small reduced ratios)."""
    return sinc_kernel_taps(orig, new) <= MAX_SINC_TAPS


def output_length(n: int, orig: int, new: int) -> int:
    """Samples that ``n`` input samples give at the new rate: ``ceil(n * new / orig)``."""
    return -(-n * new // orig)


def resample(samples: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Resample a whole mono float32 array from ``orig`` to ``new`` Hz.

    Returns ``ceil(len * new / orig)`` samples whichever resampler is used
    (see the module docstring); ``orig == new`` returns the samples as float32.
    """
    if orig == new:
        return np.asarray(samples, dtype=np.float32)
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if uses_sinc(orig, new):
        return AF.resample(torch.from_numpy(x), orig, new).numpy()
    y = soxr.resample(x, orig, new, quality=SOXR_QUALITY)
    return _fit(np.asarray(y, np.float32), output_length(x.shape[0], orig, new))


class BlockResampler(Protocol):
    """Resamples one stream given block by block.

    Feed input blocks of ``block`` samples (the last may be shorter) to
    :meth:`push`, then call :meth:`finish` once. The concatenated outputs
    equal :func:`resample` of the whole input, up to float rounding.
    """

    block: int
    """Input samples per block the caller should read."""

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Take the next input block; return the output it completes (possibly empty)."""

    def finish(self) -> np.ndarray:
        """Return the rest of the output, once the input has ended."""


def block_resampler(orig: int, new: int, block_seconds: float) -> BlockResampler:
    """The resampler for one stream from ``orig`` to ``new`` Hz, reading about ``block_seconds`` a block."""
    if orig == new:
        return _Unchanged(max(1, round(block_seconds * orig)))
    if uses_sinc(orig, new):
        return _SincBlocks(orig, new, block_seconds)
    return _SoxrBlocks(orig, new, block_seconds)


class _Unchanged:
    def __init__(self, block: int):
        self.block = block

    def push(self, samples: np.ndarray) -> np.ndarray:
        return samples.astype(np.float32, copy=False)

    def finish(self) -> np.ndarray:
        return _EMPTY


class _SincBlocks:
    """torchaudio's sinc, exact block by block.

    Blocks are whole multiples of the reduced input step, so their
    boundaries land on whole output samples; each block is resampled with
    some context on both sides (50 ms, more than the filter's half-width),
    then trimmed. The block is therefore held until the next one supplies
    its right context.
    """

    def __init__(self, orig: int, new: int, block_seconds: float):
        self.orig, self.new = orig, new
        step = orig // math.gcd(orig, new)
        self.block = max(1, round(block_seconds * orig / step)) * step
        self.context = max(1, math.ceil(0.05 * orig / step)) * step
        self._kernel = AT.Resample(orig, new, dtype=torch.float32)  # built once per stream
        self._left = _EMPTY  # left context of the pending block
        self._pending: np.ndarray | None = None  # block waiting for its right context

    def push(self, samples: np.ndarray) -> np.ndarray:
        out = _EMPTY if self._pending is None else self._flush(samples[: self.context])
        self._pending = samples
        return out

    def finish(self) -> np.ndarray:
        return _EMPTY if self._pending is None else self._flush(_EMPTY)

    def _flush(self, right: np.ndarray) -> np.ndarray:
        block = self._pending
        x = torch.from_numpy(np.concatenate([self._left, block, right]))
        y = self._kernel(x).numpy()
        start = self._left.shape[0] * self.new // self.orig
        n_out = math.ceil(block.shape[0] * self.new / self.orig)
        self._left, self._pending = block[-self.context :], None
        return np.ascontiguousarray(y[start : start + n_out], dtype=np.float32)


class _SoxrBlocks:
    """soxr's streaming resampler: any ratio, memory independent of it."""

    def __init__(self, orig: int, new: int, block_seconds: float):
        self.orig, self.new = orig, new
        self.block = min(SOXR_MAX_BLOCK, max(1, round(block_seconds * orig)))
        self._stream = soxr.ResampleStream(orig, new, 1, dtype="float32", quality=SOXR_QUALITY)
        self._n_in = self._n_out = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._n_in += samples.shape[0]
        y = np.asarray(self._stream.resample_chunk(np.ascontiguousarray(samples, np.float32)), np.float32)
        self._n_out += y.shape[0]
        return y

    def finish(self) -> np.ndarray:
        y = np.asarray(self._stream.resample_chunk(_EMPTY, last=True), np.float32)
        return _fit(y, max(0, output_length(self._n_in, self.orig, self.new) - self._n_out))


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` cut or zero-padded to ``n`` samples (soxr rounds the length, torchaudio takes the ceiling)."""
    if y.shape[0] >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - y.shape[0], np.float32)])
