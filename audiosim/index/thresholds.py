"""The no-match thresholds of an index: the typed calibration record.

A clip's score grows with its number of segments, so the threshold is set
per clip length from the scores of absent clips of that length
(:class:`CalibrationBin`), interpolated on the number of segments in
between. :mod:`audiosim.match.calibrate` makes these records;
:mod:`audiosim.index.writer` stores them in the manifest, with every score,
so the false-match target can change at query time without recalibrating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from audiosim.config import IndexConfig

CONDITIONS = "half clean, half degraded with AugmentConfig() (noise 0-20 dB, reverb, EQ/phone band, gain)"
STATISTIC = "aligned-similarity"
"""Name of the clip score the thresholds apply to (see :func:`audiosim.match.matcher.clip_score`)."""


def is_current(calibration: dict[str, Any] | None, config: IndexConfig | None = None) -> bool:
    """Whether a stored calibration is for the clip score this audiosim computes.

    Thresholds calibrated for another score (e.g. ``vote-score``, before
    verification) mean nothing for this one, and trying clips at more
    speeds raises the scores of absent music: with ``config``, its
    ``query_speeds`` must be the calibration's too. ``audiosim index``
    redoes a calibration that is not current.
    """
    if not calibration or calibration.get("statistic", STATISTIC) != STATISTIC:
        return False
    if config is None:
        return True
    return speed_set(calibration.get("query_speeds", [1.0])) == speed_set(config.query_speeds)


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
    """

    seconds: float
    segments: int
    scores: np.ndarray

    def threshold(self, rate: float) -> float:
        """The score at most ``rate`` of the absent clips exceed."""
        s = self.scores
        if len(s) == 0:
            return math.inf
        m = int(math.floor(rate * len(s) + 1e-9))
        return float(s[m]) if m < len(s) else float(s[-1]) - 1e-6


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
    """Pairs of tracks found to hold the same music (not counted as false matches)."""
    query_speeds: tuple[float, ...] = (1.0,)
    """The speeds clips were tried at (``IndexConfig.query_speeds``)."""

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

    def table(self, max_false_match: float | None = None) -> list[dict[str, Any]]:
        """One row per length: seconds, segments, clips, threshold."""
        rate = self.max_false_match if max_false_match is None else max_false_match
        return [
            {"seconds": b.seconds, "segments": b.segments, "clips": len(b.scores), "threshold": round(b.threshold(rate), 4)}
            for b in self.bins
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "statistic": self.statistic,
            "max_false_match": self.max_false_match,
            "tracks": self.tracks,
            "conditions": self.conditions,
            "model_digest": self.model_digest,
            "created": self.created,
            "shared_content": [list(p) for p in self.shared],
            "query_speeds": list(self.query_speeds),
            "bins": [
                {
                    "seconds": b.seconds,
                    "segments": b.segments,
                    "clips": len(b.scores),
                    "threshold": round(b.threshold(self.max_false_match), 5),
                    "scores": [round(float(x), 5) for x in b.scores],
                }
                for b in self.bins
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        if d.get("statistic", STATISTIC) != STATISTIC:
            raise ValueError(f"calibration is for score {d.get('statistic')!r}, this audiosim uses {STATISTIC!r}: recalibrate")
        bins = [CalibrationBin(float(b["seconds"]), int(b["segments"]), np.sort(np.asarray(b["scores"], np.float64))[::-1])
                for b in d["bins"]]
        return cls(d["method"], float(d["max_false_match"]), bins, d.get("statistic", STATISTIC), int(d.get("tracks", 0)),
                   d.get("conditions", ""), d.get("model_digest", ""), d.get("created", ""),
                   [(int(a), int(b)) for a, b in d.get("shared_content", [])],
                   tuple(float(x) for x in d.get("query_speeds", [1.0])))
