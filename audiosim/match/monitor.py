"""Monitor a long recording: a timeline of the catalogue tracks heard in it.

A window slides over the recording; each window is scored like a clip of
its length and judged by the matcher's :class:`~audiosim.match.matcher.ThresholdPolicy`.
Every segment of the recording is embedded and searched once; each window
votes over the segments it contains. Consecutive matched windows naming the
same track at a consistent position (track time minus recording time within
1 s, so small speed drifts are tolerated) are merged into one
:class:`TimelineRow`; a run of up to ``max_gap_windows`` unmatched windows
between them does not break the row. Windows are scored as played:
``query_speeds`` other than 1 are not tried here (their thresholds still
apply, so monitoring only gets more cautious).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiosim.fingerprint.embed import embed_logmel
from audiosim.fingerprint.model import Encoder
from audiosim.index.reader import Index, Neighbours
from audiosim.match.clips import Clip, recording_logmel
from audiosim.match.matcher import Matcher, ThresholdPolicy, shared_matcher
from audiosim.match.scoring import ClipScore, neighbours_of, score_segments
from audiosim.store.home import DataHome

AGREE_SECONDS = 0.75
"""A segment agrees with a window's answer when one of its neighbours is of
that track within this many seconds of where the answer puts it."""

SAME_POSITION_SECONDS = 1.0
"""Windows name the same stretch of a track when the track's start in the
recording they imply is this close."""


@dataclass(frozen=True)
class TimelineRow:
    """A stretch of a recording identified as one track.

    Attributes
    ----------
    track_id : int
    path, title : str or None
    start, end : float
        Seconds in the recording (from the first to the last agreeing segment).
    offset : float
        Seconds into the track at ``start``.
    score : float
        Mean score of the windows merged.
    windows : int
        Windows merged into the row.
    """

    track_id: int
    path: str | None
    title: str | None
    start: float
    end: float
    offset: float
    score: float
    windows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Window:
    """One window's answer: its span (s), its score, whether it matched, and
    the recording's segments it holds (indices)."""

    start: float
    end: float
    score: ClipScore
    matched: bool
    segments: np.ndarray


@dataclass
class _Run:
    """Matched windows merged so far into one row."""

    track: int
    start: float
    end: float
    anchor: float
    """Recording time where the track would start."""
    offset: float
    """Seconds into the track at ``start``."""
    scores: list[float] = field(default_factory=list)


def timeline(
    matcher: Matcher,
    recording: Clip,
    sr: int | None = None,
    window: float = 5.0,
    hop: float = 2.5,
    max_gap_windows: int = 1,
    policy: ThresholdPolicy | None = None,
) -> list[TimelineRow]:
    """Identify a sliding window over a long recording and merge the answers.

    Parameters
    ----------
    matcher : Matcher
    recording : str, Path or ndarray
        A file (decoded block by block) or samples with ``sr``.
    window, hop : float
        Window length and hop in seconds.
    max_gap_windows : int
        Unmatched windows a row may span.
    policy : ThresholdPolicy, optional
        Default ``matcher.policy``.

    Returns
    -------
    list of TimelineRow
        In recording order.
    """
    judge = policy or matcher.policy
    f = matcher.model.features
    lm = recording_logmel(recording, f, sr)
    fps = f.frames_per_second
    vecs, starts = embed_logmel(matcher.model, lm, matcher.query_hop)
    if len(vecs) == 0:
        return []
    nn = matcher.index.search(vecs, matcher.config.neighbours)
    seg_times = starts / fps
    total = lm.shape[1] / fps
    span = f.segment_samples / f.sample_rate  # audio a segment covers: a window holds the segments a clip would
    windows = []
    w0 = 0.0
    while True:
        w1 = w0 + window
        sel = np.flatnonzero((seg_times >= w0 - 1e-6) & (seg_times + span <= w1 + 1e-6))
        if len(sel):
            cs = matcher.current(score_segments(matcher.index, vecs[sel], seg_times[sel] - w0, neighbours_of(nn, sel),
                                                matcher.config, matcher.query_hop / fps))
            windows.append(_Window(w0, min(w1, total), cs, cs.best is not None and judge.matches(cs), sel))
        if w1 >= total:
            break
        w0 += hop
    runs = _merge(windows, nn, seg_times, span, max_gap_windows)
    rows = []
    for r in runs:
        track = matcher.tracks.info(r.track)
        rows.append(TimelineRow(int(r.track), track.path, track.title, round(r.start, 2), round(r.end, 2),
                                round(float(r.offset), 2), round(float(np.mean(r.scores)), 4), len(r.scores)))
    return rows


def _merge(windows: list[_Window], nn: Neighbours, seg_times: np.ndarray, span: float, max_gap: int) -> list[_Run]:
    """Matched windows merged into runs of one track at one position.

    A run starts and ends at its agreeing segments, which locate the
    stretch more precisely than the windows do.
    """
    runs: list[_Run] = []
    gap = 0
    for w in windows:
        if not w.matched:
            gap += 1
            continue
        best = w.score.best
        anchor = w.start - best.offset
        sel = w.segments
        agree = sel[
            np.any((nn.track[sel] == best.track)
                   & (np.abs(nn.time[sel] - (seg_times[sel][:, None] - w.start + best.offset)) <= AGREE_SECONDS),
                   axis=1)
        ]
        a0 = float(seg_times[agree].min()) if len(agree) else w.start
        a1 = float(seg_times[agree].max() + span) if len(agree) else w.end
        cur = runs[-1] if runs else None
        if (cur is not None and cur.track == best.track and abs(cur.anchor - anchor) <= SAME_POSITION_SECONDS
                and gap <= max_gap):
            cur.end = max(cur.end, a1)
            cur.scores.append(w.score.score)
            cur.anchor = anchor
        else:
            runs.append(_Run(best.track, a0, a1, anchor, best.offset + (a0 - w.start), [w.score.score]))
        gap = 0
    return runs


def monitor(
    recording: Clip,
    sr: int | None = None,
    index: Index | str | Path | DataHome | None = None,
    model: Encoder | str | Path | None = None,
    *,
    window: float = 5.0,
    hop: float = 2.5,
    threshold: float | None = None,
    max_false_match: float | None = None,
) -> list[TimelineRow]:
    """Timeline of the catalogue tracks heard in a long recording.

    See :func:`timeline`; the other parameters are as in
    :func:`audiosim.match.matcher.identify`.
    """
    m = shared_matcher(index, model)
    return timeline(m, recording, sr, window=window, hop=hop, policy=m.policy.overridden(threshold, max_false_match))
