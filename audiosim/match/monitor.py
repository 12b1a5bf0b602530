"""Monitor a long recording: a timeline of the catalogue tracks heard in it.

A window slides over the recording; each window is scored like a clip of
its length and judged by the matcher's :class:`~audiosim.match.matcher.ThresholdPolicy`.
Every segment of the recording is embedded and searched once; each window
votes over the segments it contains. Consecutive matched windows naming the
same track are merged into one :class:`TimelineRow`, one row per continuous
stretch of the track, whatever position in the track each window finds:
looping game music jumps back to an earlier passage, and the row lists
where it did (``offsets``: a new entry whenever the track time implied by a
window moves by more than 1 s; smaller drifts are speed). A run of up to
``max_gap_windows`` unmatched windows does not break a row. Rows never
overlap: where a row's first agreeing segment comes before the end of the
row before it, the two meet half-way. Windows are scored as played:
``query_speeds`` other than 1 are not tried here (their thresholds still
apply, so monitoring only gets more cautious). A recording is one large
batch: it is embedded on torch's own thread setting, not on the
matcher's ``threads`` (which are for clips).
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
    offsets : tuple of (float, float)
        ``(seconds in the recording, seconds into the track)`` where the
        track was heard from and wherever it jumped to another passage
        within the row; the first is ``(start, offset)``.
    """

    track_id: int
    path: str | None
    title: str | None
    start: float
    end: float
    offset: float
    score: float
    windows: int
    offsets: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields; ``offsets`` as a list of ``{"at", "offset"}`` records."""
        d = asdict(self)
        d["offsets"] = [{"at": at, "offset": off} for at, off in self.offsets]
        return d


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
    """Recording time where the track would start (for the latest window)."""
    offset: float
    """Seconds into the track at ``start``."""
    scores: list[float] = field(default_factory=list)
    jumps: list[tuple[float, float]] = field(default_factory=list)
    """(recording time, track time) where the track was heard from, then each jump."""


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
        offsets = tuple((round(at, 2), round(max(0.0, float(off)), 2)) for at, off in r.jumps)
        rows.append(TimelineRow(int(r.track), track.path, track.title, round(r.start, 2), round(r.end, 2),
                                offsets[0][1], round(float(np.mean(r.scores)), 4), len(r.scores), offsets))
    return rows


def _merge(windows: list[_Window], nn: Neighbours, seg_times: np.ndarray, span: float, max_gap: int) -> list[_Run]:
    """Matched windows merged into runs: one per continuous stretch of one track.

    A run starts and ends at its agreeing segments, which locate the
    stretch more precisely than the windows do; a window that finds the
    track at another position (a loop) extends the run and records a jump.
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
        if cur is not None and cur.track == best.track and gap <= max_gap:
            if abs(cur.anchor - anchor) > SAME_POSITION_SECONDS:  # the track jumped to another passage
                at = max(a0, cur.jumps[-1][0])
                cur.jumps.append((at, at - anchor))
            cur.end = max(cur.end, a1)
            cur.scores.append(w.score.score)
            cur.anchor = anchor
        else:
            start, offset = a0, best.offset + (a0 - w.start)
            if cur is not None and start < cur.end:  # never overlap the row before: meet half-way
                boundary = max(cur.start, (start + cur.end) / 2)
                cur.end = boundary
                offset += boundary - start
                start = boundary
            runs.append(_Run(best.track, start, max(start, a1), anchor, offset, [w.score.score], [(start, offset)]))
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
