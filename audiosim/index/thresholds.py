"""The no-match thresholds of an index: the typed calibration record.

A clip's score grows with its number of segments, so the threshold is set
per clip length from the scores of absent clips of that length
(:class:`CalibrationBin`), interpolated on the number of segments in
between. :mod:`audiosim.match.calibrate` makes these records (a
:class:`Calibrator` is what an index update calls to make one);
:mod:`audiosim.index.writer` stores them in the manifest, with every score,
so the false-match target can change at query time without recalibrating.
Beside each score a bin may hold the absent clip's spectral peak agreement
with its best candidate: :meth:`Calibration.rule` then shares the target
rate between the score and a spectral check (:class:`Rule`).

Note for the match package (issue 15): ``Manifest.calibration`` is now a
``Calibration | None``, parsed when the manifest loads, no longer a dict.
``is_current(cal, config)`` became the method ``cal.is_current(config)``
(a record for another statistic loads with ``is_current()`` False and no
bins); ``Calibration.from_dict`` no longer raises for another statistic.
The manifest's bookkeeping keys are fields: ``generation``,
``index_tracks``, ``added_since``. ``writer.update(calibrate=...)`` takes a
:class:`Calibrator` (``calibrate_leave_one_out`` is one) instead of a bool,
and ``writer.store_calibration(home, calibration)`` takes the record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from audiosim.config import IndexConfig
from audiosim.fingerprint.model import Encoder
from audiosim.store.home import DataHome

if TYPE_CHECKING:  # for the Calibrator signature only: the reader imports this module
    from audiosim.index.reader import Index

CONDITIONS = "half clean, half degraded with AugmentConfig() (noise 0-20 dB, reverb, EQ/phone band, gain)"
STATISTIC = "aligned-similarity"
"""Name of the clip score the thresholds apply to (see :func:`audiosim.match.scoring.clip_score`)."""

BOOKKEEPING = ("generation", "index_tracks", "added_since")
"""Keys the index writer adds to a stored calibration, in the order they are written."""


def speed_set(speeds: Sequence[float]) -> tuple[float, ...]:
    """Query speeds as recorded: distinct, ascending."""
    return tuple(sorted({float(x) for x in speeds}))


@dataclass
class CalibrationBin:
    """Scores of the absent clips of one length.

    Attributes
    ----------
    seconds : float
        Clip length.
    segments : int
        Query segments of a fully audible clip of that length.
    scores : ndarray
        Scores of the absent clips, sorted high to low.
    peaks : ndarray or None
        Each absent clip's peak agreement with its best candidate
        (:func:`audiosim.match.spectral.peak_agreement`), in the order of
        ``scores``; None when it was not measured (leave-one-track-out,
        a bank without peak maps, a home without features).
    """

    seconds: float
    segments: int
    scores: np.ndarray
    peaks: np.ndarray | None = None

    def threshold(self, rate: float) -> float:
        """The score at most ``rate`` of the absent clips exceed."""
        s = self.scores
        if len(s) == 0:
            return math.inf
        m = int(math.floor(rate * len(s) + 1e-9))
        return float(s[m]) if m < len(s) else float(s[-1]) - 1e-6

    def peak_threshold(self, rate: float, share: float, gate: float) -> float:
        """The peak agreement a clip under the score threshold must beat, in :meth:`Calibration.rule`.

        The score threshold is the one for ``rate * (1 - share)``; of the
        absent clips under it but above ``gate`` times it, as many may pass
        on their peaks as keeps all that match within ``rate``. inf when
        none may (or peaks were not measured); 0 when all of them may.
        """
        s, p = self.scores, self.peaks
        if p is None or len(s) == 0:
            return math.inf
        t = self.threshold(rate * (1.0 - share))
        allowed = int(math.floor(rate * len(s) + 1e-9)) - int(np.count_nonzero(s > t))
        band = np.sort(p[(s > gate * t) & (s <= t)])[::-1] if t > 0 else np.zeros(0)
        if allowed <= 0:
            return math.inf
        return float(band[allowed]) if allowed < len(band) else 0.0


@dataclass(frozen=True)
class Rule:
    """How the clips of one length are judged: on their score, or on their score and peaks.

    A clip matches when its score beats ``threshold``, or when it beats
    ``gate`` and its best candidate's peak agreement
    (:mod:`audiosim.match.spectral`) beats ``peak_threshold``. With the
    defaults (no spectral check) only the threshold counts.
    """

    threshold: float
    gate: float = math.inf
    peak_threshold: float = math.inf

    @property
    def checks_peaks(self) -> bool:
        """Whether any score may match on its peaks."""
        return math.isfinite(self.peak_threshold) and self.gate < self.threshold

    def needs_peaks(self, score: float) -> bool:
        """Whether the peaks decide a clip of this score (it is between the gate and the threshold)."""
        return self.checks_peaks and self.gate < score <= self.threshold

    def matches(self, score: float, peaks: float | None = None) -> bool:
        """Whether a clip of ``score`` (and, if checked, ``peaks``) matches."""
        if score > self.threshold:
            return True
        return peaks is not None and self.needs_peaks(score) and peaks > self.peak_threshold


@dataclass
class Calibration:
    """No-match thresholds per clip length, as stored in the manifest.

    Attributes
    ----------
    method : str
        ``leave-one-track-out`` or ``absent-music``.
    max_false_match : float
        The default target share of absent clips that match.
    bins : list of CalibrationBin
    statistic : str
        The clip score calibrated (``aligned-similarity``, see :mod:`audiosim.match.verify`).
    tracks : int
        Tracks (or files) the absent clips came from.
    conditions : str
    model_digest : str
    created : str
    shared : list of (int, int)
        Pairs of tracks found to hold the same music (not counted as false matches).
    query_speeds : tuple of float
        The speeds clips were tried at (``IndexConfig.query_speeds``).
    scoring : dict or None
        The index settings the clips were scored under (:meth:`IndexConfig.scoring`:
        query hop, search depth, verification); None in calibrations stored
        before they were recorded.
    generation : int or None
        Manifest generation the thresholds were published in (set by the index writer).
    index_tracks : int or None
        Live tracks of the index they were computed on (leave-one-track-out only).
    added_since : int or None
        Tracks added to the index since, while these thresholds were kept.
    stored : dict or None
        For a record of another statistic: the manifest's dict as found, written
        back unchanged (its bins mean nothing here, so they are not parsed).
    """

    method: str
    max_false_match: float
    bins: list[CalibrationBin]
    statistic: str = STATISTIC
    tracks: int = 0
    conditions: str = CONDITIONS
    model_digest: str = ""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    shared: list[tuple[int, int]] = field(default_factory=list)
    query_speeds: tuple[float, ...] = (1.0,)
    scoring: dict[str, Any] | None = None
    generation: int | None = None
    index_tracks: int | None = None
    added_since: int | None = None
    stored: dict[str, Any] | None = None

    def is_current(self, config: IndexConfig | None = None) -> bool:
        """Whether these thresholds are for the clip score this audiosim computes.

        Thresholds calibrated for another score (e.g. ``vote-score``, before
        verification) mean nothing for this one; trying clips at more
        speeds raises the scores of absent music, and another query hop,
        search depth or verification changes every clip's score: with
        ``config``, its ``query_speeds`` and :meth:`~IndexConfig.scoring`
        must be the calibration's too. ``audiosim index`` redoes a
        calibration that is not current.
        """
        if self.stored is not None or self.statistic != STATISTIC:
            return False
        return config is None or not self.changed_settings(config)

    def changed_settings(self, config: IndexConfig) -> list[str]:
        """The settings of ``config`` that score clips otherwise than this calibration did.

        Each as ``"name: calibrated -> now"``, ``query_speeds`` first; empty
        when the thresholds hold. A calibration made before the scoring
        settings were recorded (``scoring`` None) is compared on its speeds
        only.
        """
        changed = []
        then, now = list(speed_set(self.query_speeds)), list(speed_set(config.query_speeds))
        if then != now:
            changed.append(f"query_speeds: {then} -> {now}")
        if self.scoring is not None:
            changed += [f"{name}: {self.scoring.get(name, 'not recorded')} -> {value}"
                        for name, value in config.scoring().items() if self.scoring.get(name) != value]
        return changed

    def threshold(self, n_segments: int, max_false_match: float | None = None) -> float:
        """Threshold for a clip of ``n_segments`` audible segments.

        Linear in the number of segments between calibrated lengths; below
        the shortest, its threshold; beyond the longest, the trend of the
        last two (never decreasing).
        """
        rate = self.max_false_match if max_false_match is None else float(max_false_match)
        bins = sorted(self.bins, key=lambda b: b.segments)
        segs = np.array([b.segments for b in bins], np.float64)
        thr = np.array([b.threshold(rate) for b in bins], np.float64)
        n = float(n_segments)
        if len(bins) == 1 or n <= segs[0]:
            return float(thr[0])
        if n <= segs[-1]:
            return float(np.interp(n, segs, thr))
        slope = max(0.0, (thr[-1] - thr[-2]) / max(segs[-1] - segs[-2], 1e-9))
        return float(thr[-1] + slope * (n - segs[-1]))

    @property
    def has_peaks(self) -> bool:
        """Whether every length's absent clips have their peak agreement recorded."""
        return bool(self.bins) and all(b.peaks is not None for b in self.bins)

    def rule(self, n_segments: int, max_false_match: float | None = None, peak_share: float = 0.0,
             peak_gate: float = 1.0) -> Rule:
        """How a clip of ``n_segments`` is judged, for a target false-match rate.

        Without peaks (``peak_share`` 0, or none recorded): the score
        threshold for the rate (:meth:`threshold`). With them, the rate is
        shared: the score threshold is the one for ``rate * (1 - peak_share)``,
        and a clip under it but above ``peak_gate`` times it matches when its
        peak agreement beats the peak threshold set on the absent clips of
        that band (:meth:`CalibrationBin.peak_threshold`; between calibrated
        lengths, the stricter of the two around), so that of the absent
        clips at most the rate match either way.
        """
        rate = self.max_false_match if max_false_match is None else float(max_false_match)
        if peak_share <= 0.0 or not self.has_peaks:
            return Rule(self.threshold(n_segments, rate))
        t = self.threshold(n_segments, rate * (1.0 - peak_share))
        bins = sorted(self.bins, key=lambda b: b.segments)
        below = [b for b in bins if b.segments <= n_segments] or bins[:1]
        above = [b for b in bins if b.segments >= n_segments] or bins[-1:]
        p = max(b.peak_threshold(rate, peak_share, peak_gate) for b in (below[-1], above[0]))
        return Rule(t, peak_gate * t, p)

    def table(self, max_false_match: float | None = None, config: IndexConfig | None = None) -> list[dict[str, Any]]:
        """One row per length: seconds, segments, clips, threshold; with the
        ``config`` of an index whose calibration has peaks, the score threshold
        of :meth:`rule` and its ``peak_gate`` and ``peak_threshold`` too."""
        rate = self.max_false_match if max_false_match is None else max_false_match
        share, gate = (config.peak_share, config.peak_gate) if config is not None else (0.0, 1.0)
        rows = []
        for b in self.bins:
            rule = self.rule(b.segments, rate, share, gate)
            row = {"seconds": b.seconds, "segments": b.segments, "clips": len(b.scores),
                   "threshold": round(rule.threshold, 4)}
            if rule.checks_peaks:
                row.update(peak_gate=round(rule.gate, 4), peak_threshold=round(rule.peak_threshold, 4))
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON form (the bookkeeping keys last, those that are set)."""
        if self.stored is not None:
            d = dict(self.stored)
        else:
            d = {
                "method": self.method,
                "statistic": self.statistic,
                "max_false_match": self.max_false_match,
                "tracks": self.tracks,
                "conditions": self.conditions,
                "model_digest": self.model_digest,
                "created": self.created,
                "shared_content": [list(p) for p in self.shared],
                "query_speeds": list(self.query_speeds),
                **({} if self.scoring is None else {"scoring": dict(self.scoring)}),
                "bins": [
                    {
                        "seconds": b.seconds,
                        "segments": b.segments,
                        "clips": len(b.scores),
                        "threshold": round(b.threshold(self.max_false_match), 5),
                        "scores": [round(float(x), 5) for x in b.scores],
                        **({} if b.peaks is None else {"peaks": [round(float(x), 4) for x in b.peaks]}),
                    }
                    for b in self.bins
                ],
            }
        for key in BOOKKEEPING:
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        """Parse :meth:`to_dict`'s form; a record of another statistic keeps its dict
        as found (:attr:`stored`) and is not :meth:`is_current`."""
        marks = {k: int(d[k]) for k in BOOKKEEPING if d.get(k) is not None}
        statistic = d.get("statistic", STATISTIC)
        if statistic != STATISTIC:
            return cls(str(d.get("method", "")), float(d.get("max_false_match", 0.0)), [], str(statistic),
                       stored=dict(d), **marks)
        bins = [sorted_bin(float(b["seconds"]), int(b["segments"]), b["scores"], b.get("peaks")) for b in d["bins"]]
        return cls(d["method"], float(d["max_false_match"]), bins, statistic, int(d.get("tracks", 0)),
                   d.get("conditions", ""), d.get("model_digest", ""), d.get("created", ""),
                   [(int(a), int(b)) for a, b in d.get("shared_content", [])],
                   tuple(float(x) for x in d.get("query_speeds", [1.0])),
                   d.get("scoring"), **marks)


def sorted_bin(seconds: float, segments: int, scores: Sequence[float], peaks: Sequence[float] | None = None) -> CalibrationBin:
    """A :class:`CalibrationBin` of these scores sorted high to low (and their peaks in the same order)."""
    s = np.asarray(scores, np.float64)
    order = np.argsort(-s, kind="stable")
    p = None if peaks is None or len(peaks) != len(s) else np.asarray(peaks, np.float64)[order]
    return CalibrationBin(seconds, segments, s[order], p)


class Calibrator(Protocol):
    """Computes thresholds for an index that is about to be published.

    :func:`audiosim.index.writer.update` calls it under the writer lock, on
    the new (not yet published) shards, when :func:`~audiosim.index.writer.needs_calibration`
    says so; :func:`audiosim.match.calibrate.calibrate_leave_one_out` is the
    one audiosim uses. The settings are ``index.config``. The index package
    does not import the matcher: the caller hands the calibrator in.

    Returns
    -------
    Calibration or None
        None when the index cannot be calibrated (e.g. fewer than two
        tracks with readable audio); the thresholds are then left out.
    """

    def __call__(self, index: Index, model: Encoder, *, home: DataHome) -> Calibration | None: ...
