"""Musical descriptors of a song, computed with librosa.

One :class:`Descriptors` per song: tempo and pulse clarity, onset rate,
loudness and loudness range, brightness (spectral centroid and roll-off),
key and mode. They are plain numbers with units, chosen so that a mood
label can be explained by them (see :mod:`audiosim.similarity.mood`).

How each value is measured (``cfg`` is a :class:`DescriptorConfig`; songs
longer than ``cfg.max_seconds`` are analysed on their central part):

``tempo_bpm``
    ``librosa.feature.tempo`` on the onset-strength envelope (global
    estimate with librosa's log-normal prior around 120 BPM).
``pulse_clarity``
    How periodic the onsets are: the highest peak of the normalised
    autocorrelation of the onset envelope at lags between 0.25 s and 1.5 s
    (240 to 40 BPM); 0 for no pulse, near 1 for a metronome (after
    Lartillot et al., 2008).
``onset_rate``
    Detected note onsets (``librosa.onset.onset_detect``) per second.
``loudness_db``
    RMS level of the analysed audio in dBFS (unweighted).
``dynamic_range_db``
    Loudness range in dB: the spread (95th minus 10th percentile) of the
    short-term loudness in 3 s windows (hop 1 s), ignoring windows below
    -60 dBFS or 20 dB under the mean, as EBU R128's LRA but unweighted.
``centroid_hz``, ``rolloff_hz``
    Median spectral centroid and 85 % roll-off of the audible frames.
``key``, ``mode``, ``key_strength``, ``mode_clarity``
    The energy-weighted mean chromagram (from an STFT twice ``n_fft`` long,
    for pitch resolution) is correlated (Pearson) with
    the Krumhansl-Kessler major and minor profiles in all 12 keys;
    ``key``/``mode`` are the best of the 24, ``key_strength`` its
    correlation (near 1: clearly tonal; below 0.5: chromatic or atonal),
    ``mode_clarity`` the best major correlation minus the best minor one
    (positive: major).

Descriptors are cached per content hash in the data home
(``cache/descriptors/<config digest>/<hash[:2]>/<hash>.json``, a
:class:`~audiosim.store.content.ContentStore`), so each file is analysed once.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from audiosim.config import DecodeConfig, DescriptorConfig
from audiosim.progress import Callback, as_callback
from audiosim.runners import thread_map
from audiosim.signal import audio
from audiosim.store.content import ContentStore
from audiosim.store.home import DataHome

KEYS: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
"""Krumhansl-Kessler probe-tone profile of C major (C, C#, ..., B)."""
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
"""Krumhansl-Kessler probe-tone profile of C minor."""

COLUMNS: tuple[str, ...] = (
    "duration", "tempo_bpm", "pulse_clarity", "onset_rate", "loudness_db", "dynamic_range_db",
    "centroid_hz", "rolloff_hz", "key", "mode", "key_strength", "mode_clarity",
)


@dataclass(frozen=True)
class Descriptors:
    """What a song sounds like, in numbers with units (see the module notes)."""

    duration: float
    """Length of the whole file (s)."""
    tempo_bpm: float
    pulse_clarity: float
    """0 (no regular pulse) .. 1 (metronomic)."""
    onset_rate: float
    """Note onsets per second."""
    loudness_db: float
    """RMS level (dBFS)."""
    dynamic_range_db: float
    """Loudness range (dB)."""
    centroid_hz: float
    rolloff_hz: float
    key: str
    mode: str
    """``major`` or ``minor``."""
    key_strength: float
    """Correlation with the best key profile (-1 .. 1)."""
    mode_clarity: float
    """Best major minus best minor correlation (positive: major)."""

    def to_dict(self) -> dict:
        """The descriptors as a plain dict (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Descriptors":
        """Inverse of :meth:`to_dict`."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    @property
    def key_name(self) -> str:
        """``"A minor"``, ``"Eb major"`` ..."""
        return f"{self.key} {self.mode}"


# --------------------------------------------------------------------------
# Single measurements (pure functions on arrays)
# --------------------------------------------------------------------------


def estimate_key(chroma: np.ndarray, weights: np.ndarray | None = None) -> tuple[str, str, float, float]:
    """Key and mode of a chromagram by Krumhansl-Kessler profile correlation.

    Parameters
    ----------
    chroma : ndarray, shape (12, frames) or (12,)
        Pitch-class energies, C first.
    weights : ndarray, shape (frames,), optional
        Per-frame weights for the mean (e.g. frame energy).

    Returns
    -------
    (key, mode, key_strength, mode_clarity)
        ``key`` in :data:`KEYS`, ``mode`` ``"major"``/``"minor"``, the
        Pearson correlation of the best profile, and the best major
        correlation minus the best minor correlation.
    """
    c = np.asarray(chroma, dtype=np.float64)
    if c.ndim == 2:
        w = np.ones(c.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
        c = (c * w[None, :]).sum(1) / max(float(w.sum()), 1e-12)
    if not np.isfinite(c).all() or np.ptp(c) <= 0:
        return "C", "major", 0.0, 0.0
    scores = np.empty((2, 12))
    for m, prof in enumerate((KK_MAJOR, KK_MINOR)):
        for k in range(12):
            scores[m, k] = np.corrcoef(c, np.roll(prof, k))[0, 1]
    m, k = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return KEYS[k], ("major", "minor")[m], float(scores[m, k]), float(scores[0].max() - scores[1].max())


TUNING_BAND_HZ = (150.0, 4000.0)
"""Frequencies whose spectral peaks estimate the tuning (librosa's ``piptrack`` defaults)."""
TUNING_PEAK_THRESHOLD = 0.1
"""A peak counts when above this share of its frame's largest bin (``piptrack``'s default)."""


def estimate_tuning(S: np.ndarray, sr: float, bins_per_octave: int = 12) -> float:
    """Tuning deviation (fractions of a bin) of a spectrogram, as ``librosa.estimate_tuning(S=S, sr=sr)``.

    The same answer, bit for bit, for less work: librosa interpolates every
    bin's peak and then keeps those in :data:`TUNING_BAND_HZ`; here only
    that band (and one neighbour on each side, which its interpolation
    reads) is interpolated. Peaks are found by parabolic interpolation over
    frequency, in double precision as librosa's stencil computes them; those
    at or above the median peak magnitude vote in
    :func:`librosa.pitch_tuning`'s histogram.

    Parameters
    ----------
    S : ndarray, shape (1 + n_fft // 2, frames)
        Magnitude or power spectrogram.
    sr : float
        Sample rate of the audio it was computed from.
    bins_per_octave : int
        Bins per octave of the chroma the tuning is for (12: semitones).
    """
    import librosa

    S = np.abs(S)
    n_fft = 2 * (S.shape[-2] - 1)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    band = np.flatnonzero((TUNING_BAND_HZ[0] <= freqs) & (freqs < min(TUNING_BAND_HZ[1], float(sr) / 2)))
    if band.size == 0:
        return float(librosa.pitch_tuning(np.zeros(0), bins_per_octave=bins_per_octave))
    # the band starts above 0 Hz and ends below the Nyquist bin, so both neighbours exist
    first, last = int(band[0]), int(band[-1])
    below, here, above = S[first - 1: last], S[first: last + 1], S[first + 1: last + 2]
    rise = above - below
    slope = rise / 2  # np.gradient at interior bins
    a = (above + below).astype(np.float64) - 2 * here.astype(np.float64)
    b = rise.astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a).astype(S.dtype)
    ref = TUNING_PEAK_THRESHOLD * S.max(axis=-2, keepdims=True)
    gated_below, gated, gated_above = (x * (x > ref) for x in (below, here, above))
    rows, cols = np.nonzero((gated > gated_below) & (gated >= gated_above))  # local maxima over frequency
    pitch = (first + rows + shift[rows, cols]) * float(sr) / n_fft
    mag = here[rows, cols] + 0.5 * slope[rows, cols] * shift[rows, cols]
    voiced = pitch > 0
    threshold = np.median(mag[voiced]) if voiced.any() else 0.0
    return float(librosa.pitch_tuning(pitch[(mag >= threshold) & voiced], bins_per_octave=bins_per_octave))


def pulse_clarity(onset_env: np.ndarray, frames_per_second: float, bpm_range: tuple[float, float] = (40.0, 240.0)) -> float:
    """Highest peak of the normalised onset-envelope autocorrelation at beat lags.

    Parameters
    ----------
    onset_env : ndarray, shape (frames,)
    frames_per_second : float
        Rate of the envelope.
    bpm_range : (float, float)
        Tempi whose beat periods are searched.

    Returns
    -------
    float
        In [0, 1]; 0 when the envelope is flat.
    """
    import librosa

    x = np.asarray(onset_env, dtype=np.float64)
    x = x - x.mean()
    if x.size < 4 or not np.any(x):
        return 0.0
    ac = librosa.autocorrelate(x)
    ac = ac / ac[0]
    lo = max(1, int(math.floor(60.0 / bpm_range[1] * frames_per_second)))
    hi = min(ac.size - 1, int(math.ceil(60.0 / bpm_range[0] * frames_per_second)))
    if hi <= lo:
        return 0.0
    return float(np.clip(ac[lo : hi + 1].max(), 0.0, 1.0))


def loudness_range(y: np.ndarray, sample_rate: int, window_seconds: float = 3.0, floor_db: float = -60.0) -> float:
    """Loudness range (dB): 95th minus 10th percentile of gated short-term loudness.

    Windows of ``window_seconds`` at a hop of a third of it; windows below
    ``floor_db`` or more than 20 dB under the energy-mean of the rest are
    ignored (EBU Tech 3342, without K-weighting). Songs shorter than a
    window use 0.4 s windows.
    """
    y = np.asarray(y, dtype=np.float64)
    win = int(window_seconds * sample_rate)
    if y.size < 2 * win:
        win = max(1, int(0.4 * sample_rate))
    hop = max(1, win // 3)
    if y.size < win:
        return 0.0
    csum = np.concatenate([[0.0], np.cumsum(y * y)])
    starts = np.arange(0, y.size - win + 1, hop)
    power = (csum[starts + win] - csum[starts]) / win
    db = 10 * np.log10(power + 1e-12)
    db = db[db > floor_db]
    if db.size < 2:
        return 0.0
    mean_db = 10 * np.log10(np.mean(10 ** (db / 10)))
    db = db[db > mean_db - 20.0]
    if db.size < 2:
        return 0.0
    return float(np.percentile(db, 95) - np.percentile(db, 10))


def analyse(y: np.ndarray, sample_rate: int, cfg: DescriptorConfig = DescriptorConfig(), duration: float | None = None) -> Descriptors:
    """Descriptors of a mono waveform.

    Parameters
    ----------
    y : ndarray, shape (samples,)
        Mono audio; resampled to ``cfg.sample_rate`` if ``sample_rate`` differs.
    sample_rate : int
    cfg : DescriptorConfig
    duration : float, optional
        Length of the whole song when ``y`` is already an excerpt.

    Returns
    -------
    Descriptors
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if sample_rate != cfg.sample_rate:
        y = audio.resample(y, sample_rate, cfg.sample_rate)
    sr, hop = cfg.sample_rate, cfg.hop_length
    full = y.size / sr if duration is None else duration
    y = central_excerpt(y, sr, cfg.max_seconds)
    if y.size < cfg.n_fft:
        y = np.pad(y, (0, cfg.n_fft - y.size))
    seconds = y.size / sr
    fps = sr / hop

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on very short or silent input
        spec = np.abs(librosa.stft(y, n_fft=cfg.n_fft, hop_length=hop))
        mel = librosa.feature.melspectrogram(S=spec**2, sr=sr)
        env = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=np.max), sr=sr, hop_length=hop)
        tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=hop))[0])
        onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop)
        frame_rms = librosa.feature.rms(S=spec, frame_length=cfg.n_fft)[0]
        audible = 20 * np.log10(frame_rms + 1e-10) > cfg.silence_db
        if not audible.any():
            audible[:] = True
        centroid = librosa.feature.spectral_centroid(S=spec, sr=sr)[0]
        rolloff = librosa.feature.spectral_rolloff(S=spec, sr=sr, roll_percent=0.85)[0]
        long = np.abs(librosa.stft(y, n_fft=2 * cfg.n_fft, hop_length=hop)) ** 2  # finer pitch resolution
        chroma = librosa.feature.chroma_stft(S=long, sr=sr, tuning=estimate_tuning(long, sr))
    n = min(chroma.shape[1], frame_rms.shape[0])
    key, mode, strength, clarity = estimate_key(chroma[:, :n], frame_rms[:n] * audible[:n])
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    return Descriptors(
        duration=round(float(full), 3),
        tempo_bpm=round(tempo, 2),
        pulse_clarity=round(pulse_clarity(env, fps), 4),
        onset_rate=round(len(onsets) / seconds, 3),
        loudness_db=round(20 * math.log10(rms + 1e-10), 2),
        dynamic_range_db=round(loudness_range(y, sr, cfg.loudness_window_seconds, cfg.silence_db), 2),
        centroid_hz=round(float(np.median(centroid[audible[: centroid.size]])), 1),
        rolloff_hz=round(float(np.median(rolloff[audible[: rolloff.size]])), 1),
        key=key,
        mode=mode,
        key_strength=round(strength, 4),
        mode_clarity=round(clarity, 4),
    )


def central_excerpt(y: np.ndarray, sample_rate: int, max_seconds: float) -> np.ndarray:
    """The central ``max_seconds`` of ``y`` (all of it when shorter)."""
    n = int(max_seconds * sample_rate)
    if max_seconds <= 0 or y.size <= n:
        return y
    start = (y.size - n) // 2
    return y[start : start + n]


def describe_file(path: str | Path, cfg: DescriptorConfig = DescriptorConfig(), decode: DecodeConfig = DecodeConfig()) -> Descriptors:
    """Decode ``path`` at ``cfg.sample_rate`` and analyse it.

    Raises
    ------
    AudioError
        If the file cannot be decoded.
    """
    y = audio.load(path, cfg.sample_rate, decode)
    return analyse(y, cfg.sample_rate, cfg, duration=y.size / cfg.sample_rate)


# --------------------------------------------------------------------------
# Cache in the data home
# --------------------------------------------------------------------------


class DescriptorCache:
    """Descriptors by content hash under ``<home>/cache/descriptors/<digest>/``.

    The folder is named by the :class:`DescriptorConfig` digest, so
    descriptors made with other settings are never mixed in.

    Attributes
    ----------
    files : ContentStore
        One ``<hash>.json`` per song (:meth:`Descriptors.to_dict`).
    """

    def __init__(self, home: "str | Path | DataHome | None" = None, cfg: DescriptorConfig = DescriptorConfig()):
        self.cfg = cfg
        self.root = DataHome.resolve(home).cache_dir / "descriptors" / cfg.digest()
        self.files = ContentStore(self.root, ".json")

    def path_for(self, content_hash: str) -> Path:
        """Where the descriptors of ``content_hash`` live (whether or not they exist)."""
        return self.files.path_for(content_hash)

    def get(self, content_hash: str) -> Descriptors | None:
        """Cached descriptors of ``content_hash``, or None (also when the file is unreadable)."""
        data = self.files.find(content_hash)
        if data is None:
            return None
        try:
            return Descriptors.from_dict(data)
        except (KeyError, TypeError):
            return None

    def put(self, content_hash: str, d: Descriptors) -> None:
        """Store descriptors atomically."""
        self.files.put(content_hash, d.to_dict())

    def describe(self, content_hash: str, path: str | Path) -> Descriptors:
        """Cached descriptors, computing and storing them on a miss."""
        d = self.get(content_hash)
        if d is None:
            d = describe_file(path, self.cfg)
            self.put(content_hash, d)
        return d


def descriptor_table(
    tracks: pd.DataFrame,
    home: "str | Path | DataHome | None" = None,
    cfg: DescriptorConfig = DescriptorConfig(),
    progress: bool | Callback | None = False,
    on_error: Callable[[int, str], None] | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """Descriptors of catalogue tracks (cached), one row per track.

    Parameters
    ----------
    tracks : DataFrame
        Indexed by track id with ``path`` and ``content_hash`` columns (as
        :meth:`audiosim.store.catalog.Catalog.tracks`).
    home : data home
    cfg : DescriptorConfig
    progress : bool or callable
        A ``progress(stage, info)`` callback (``descriptors`` per uncached
        file analysed), or True for :class:`audiosim.progress.Progress`.
    on_error : callable, optional
        Called with ``(track_id, message)`` for files that cannot be
        analysed (they are left out of the table).
    workers : int
        Files analysed at once (threads, :func:`audiosim.runners.thread_map`).

    Returns
    -------
    DataFrame
        Indexed by track id, columns :data:`COLUMNS`.
    """
    cache = DescriptorCache(home, cfg)
    rows: dict[int, dict] = {}
    todo = []
    for tid, row in tracks.iterrows():
        d = cache.get(row["content_hash"])
        if d is None:
            todo.append((tid, row))
        else:
            rows[int(tid)] = d.to_dict()
    def one(item: tuple) -> tuple[int, Descriptors | str]:
        tid, row = item
        try:
            return int(tid), cache.describe(row["content_hash"], row["path"])
        except audio.AudioError as e:
            return int(tid), str(e)

    report = as_callback(progress)
    for done, (tid, d) in enumerate(thread_map(one, todo, max(1, workers)), 1):
        report("descriptors", {"done": done, "total": len(todo)})
        if isinstance(d, Descriptors):
            rows[tid] = d.to_dict()
        elif on_error is not None:
            on_error(tid, d)
    df = pd.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS))
    df.index.name = "id"
    return df.reindex([int(t) for t in tracks.index if int(t) in rows])


def describe_many(paths: Iterable[str | Path], cfg: DescriptorConfig = DescriptorConfig()) -> pd.DataFrame:
    """Descriptors of files (no cache), indexed by path; for scripts and tests."""
    rows = {str(p): describe_file(p, cfg).to_dict() for p in paths}
    df = pd.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS))
    df.index.name = "path"
    return df
