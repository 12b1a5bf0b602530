"""Spectral evidence for a candidate: do the clip's spectral peaks sit where the track's do?

Why: the clip's score sums how alike its segments' embeddings are to the
track's. Under loud speech or a microphone chain (reverb, phone band,
noise) a clip of a catalogue track can score under its threshold while
its audio still lines up with the track, peak for peak: the bands where
the music is loudest poke through the noise at the same times and
pitches. Absent music's best candidate shares few peaks with it, whatever
the catalogue holds, because the check looks at one candidate at one
offset, not at every track.

The evidence is :func:`peak_agreement`: the share of the clip's log-mel
peaks (:func:`peak_map`) that land on one of the candidate's, within one
band and one frame, at the best of a few frame shifts around the matched
offset. The candidate's log-mel is read from the data home's feature store
(the arrays the index was embedded from), so nothing new is stored per
track. How a matcher uses it, and how its threshold is calibrated, is
:class:`~audiosim.index.thresholds.Calibration`'s ``rule``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from audiosim.config import ConfigMismatchError, FeatureConfig
from audiosim.store.content import FeatureStore
from audiosim.store.home import DataHome

PEAK_BANDS = 5
"""A peak is the loudest cell of the ``PEAK_BANDS`` mel bands around it..."""
PEAK_FRAMES = 11
"""...and of the ``PEAK_FRAMES`` frames around it (0.17 s at 64 frames per second)..."""
PEAK_RISE = 1.0
"""...and stands this far above its frame's median band (natural log of power: 4.3 dB)."""
MAX_SHIFT = 12
"""Frames either side of the matched offset the clip is tried at (0.19 s at 64 frames per second)."""


def peak_map(log_mel: np.ndarray) -> np.ndarray:
    """Where a log-mel spectrogram has its peaks.

    Parameters
    ----------
    log_mel : ndarray, shape (n_mels, frames)
        Natural-log mel power (:func:`audiosim.signal.features.log_mel`).

    Returns
    -------
    ndarray of bool, shape (n_mels, frames)
        True at cells that are the maximum of their ``PEAK_BANDS`` x
        ``PEAK_FRAMES`` neighbourhood and exceed their frame's median band
        by ``PEAK_RISE``. The test is local in time, so the peaks of a
        slice are the slice of the peaks (but within half a neighbourhood
        of its ends).

    Examples
    --------
    >>> m = np.zeros((8, 20), np.float32); m[3, 10] = 5.0
    >>> [(int(b), int(t)) for b, t in zip(*np.nonzero(peak_map(m)))]
    [(3, 10)]
    """
    m = np.asarray(log_mel, np.float32)
    if m.size == 0:
        return np.zeros(m.shape, bool)
    local = ndimage.maximum_filter(m, size=(PEAK_BANDS, PEAK_FRAMES), mode="nearest")
    return (m == local) & (m > np.median(m, axis=0, keepdims=True) + PEAK_RISE)


def peak_agreement(clip_peaks: np.ndarray, track_log_mel: np.ndarray, start_frame: int,
                   max_shift: int = MAX_SHIFT) -> float:
    """Share of a clip's peaks that land on the track's peaks, at the best shift.

    Parameters
    ----------
    clip_peaks : ndarray of bool, shape (n_mels, T)
        :func:`peak_map` of the clip (at normal speed).
    track_log_mel : ndarray, shape (n_mels, frames)
        The candidate track's log-mel (float16 from the feature store is fine).
    start_frame : int
        The track frame the clip's first frame is matched to (may be
        negative, or run past the track's end: frames outside it hold no peaks).
    max_shift : int
        The clip is tried at ``start_frame`` plus every shift up to this many
        frames either way (the matched offset is that close, not exact).

    Returns
    -------
    float
        In [0, 1]; 0 when the clip has no peaks. A track's peaks count
        within one band and one frame (a 3 x 3 neighbourhood).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> track = rng.normal(size=(16, 400)).astype(np.float32)
    >>> clip = peak_map(track[:, 100:200])
    >>> peak_agreement(clip, track, 103) > 0.9 > peak_agreement(clip, track, 300)
    True
    """
    q = np.asarray(clip_peaks, bool)
    n_peaks = int(q.sum())
    if n_peaks == 0:
        return 0.0
    bands, span = q.shape
    lo, hi = start_frame - max_shift, start_frame + span + max_shift
    have_lo, have_hi = max(lo, 0), min(hi, track_log_mel.shape[1])
    ref = np.zeros((bands, hi - lo), bool)
    if have_hi > have_lo:
        ref[:, have_lo - lo : have_hi - lo] = peak_map(track_log_mel[:, have_lo:have_hi])
    ref = ndimage.binary_dilation(ref, np.ones((3, 3), bool))
    best = max(int(np.count_nonzero(q & ref[:, s : s + span])) for s in range(2 * max_shift + 1))
    return best / n_peaks


def pack(peaks: np.ndarray) -> np.ndarray:
    """A peak map as bits, frames first: ``(frames, ceil(n_mels / 8))`` uint8 (for storing)."""
    return np.packbits(np.asarray(peaks, bool).T, axis=1)


def unpack(bits: np.ndarray, n_mels: int) -> np.ndarray:
    """The ``(n_mels, frames)`` peak map :func:`pack` stored."""
    return np.unpackbits(np.asarray(bits, np.uint8), axis=1, count=n_mels).T.astype(bool)


class TrackLogMels:
    """The log-mels of an index's tracks, memory-mapped from a data home's feature store.

    Parameters
    ----------
    store : FeatureStore
    live : dict
        Track id -> content hash of the index's live tracks.
    """

    def __init__(self, store: FeatureStore, live: dict[int, str]):
        self.store = store
        self.live = dict(live)

    @classmethod
    def open(cls, home: DataHome, features: FeatureConfig, live: dict[int, str]) -> "TrackLogMels | None":
        """The home's log-mels if it has a feature store made with ``features``; None otherwise
        (the spectral check is then skipped: the features were deleted, or made otherwise)."""
        if not (home.features_dir / FeatureStore.CONFIG_NAME).is_file():
            return None
        try:
            return cls(FeatureStore(home.features_dir, features), live)
        except (ConfigMismatchError, ValueError):
            return None

    def get(self, track_id: int) -> np.ndarray | None:
        """Track ``track_id``'s ``(n_mels, frames)`` log-mel; None when it is not stored or unreadable."""
        h = self.live.get(int(track_id))
        if h is None:
            return None
        try:
            return self.store.get(h, mmap=True)
        except (KeyError, OSError, ValueError):
            return None

    def agreement(self, clip_peaks: np.ndarray, track_id: int, offset: float) -> float | None:
        """:func:`peak_agreement` of a clip's peaks with track ``track_id``, the clip
        starting ``offset`` s into it; None when the track's log-mel is not stored."""
        mel = self.get(track_id)
        if mel is None:
            return None
        return peak_agreement(clip_peaks, mel, int(round(offset * self.store.config.frames_per_second)))
