"""Offset-consistent voting: turn per-segment neighbours into a clip answer.

Each query segment at clip time ``q`` that retrieves an indexed segment of
track ``t`` at track time ``s`` votes for "the clip starts at offset
``s - q`` in track ``t``". Segments of a true match agree on one offset;
chance neighbours scatter. A candidate's score is the sum, over query
segments, of the best similarity each gives to that (track, offset bin)
or its immediate neighbour bins, so a segment votes at most once per
candidate and small speed drifts still agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One (track, offset) hypothesis for a clip."""

    track: int
    offset: float
    """Seconds into the track where the clip starts."""
    score: float
    """Sum over agreeing query segments of their best similarity."""
    votes: int
    """How many query segments agree."""


def vote(
    query_times: np.ndarray,
    nn_tracks: np.ndarray,
    nn_times: np.ndarray,
    nn_sims: np.ndarray,
    bin_seconds: float = 0.5,
    top: int = 5,
    per_track: int = 1,
) -> list[Candidate]:
    """Rank (track, offset) candidates by how many query segments agree.

    Parameters
    ----------
    query_times : ndarray, shape (Q,)
        Start time (s) of each query segment within the clip.
    nn_tracks, nn_times, nn_sims : ndarray, shape (Q, k)
        Track id, track time (s) and similarity (higher is closer) of each
        segment's ``k`` neighbours. Entries with ``nn_tracks < 0`` are ignored.
    bin_seconds : float
        Offset resolution; neighbours within one bin either side agree.
    top : int
        How many tracks to return candidates of.
    per_track : int
        Passages (offsets) of each track to return: its best, then the next
        best ones whose offsets lie at least three bins (1.5 s at 0.5 s
        bins) from those already kept: a repeated section, or the right
        passage where a similar one drew more votes.

    Returns
    -------
    list of Candidate, best first (empty when nothing was retrieved); a
    track's first candidate is its best offset.
    """
    q_n, k = nn_tracks.shape
    if q_n == 0 or k == 0:
        return []
    q_idx = np.repeat(np.arange(q_n), k)
    tracks = nn_tracks.reshape(-1).astype(np.int64)
    offsets = (nn_times - query_times[:, None]).reshape(-1)
    sims = nn_sims.reshape(-1).astype(np.float64)
    keep = tracks >= 0
    q_idx, tracks, offsets, sims = q_idx[keep], tracks[keep], offsets[keep], sims[keep]
    if tracks.size == 0:
        return []
    bins = np.round(offsets / bin_seconds).astype(np.int64)
    # Spread each vote to the neighbouring bins, then keep one vote per (segment, track, bin).
    q3 = np.repeat(q_idx, 3)
    t3 = np.repeat(tracks, 3)
    b3 = (bins[:, None] + np.array([-1, 0, 1])[None, :]).reshape(-1)
    s3 = np.repeat(sims, 3)
    o3 = np.repeat(offsets, 3)
    exact = np.tile([False, True, False], bins.size)
    keys = np.stack([t3, b3, q3], axis=1)
    order = np.lexsort((-s3, q3, b3, t3))
    keys, s3, o3, exact = keys[order], s3[order], o3[order], exact[order]
    first = np.ones(len(keys), bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    keys, s3, o3, exact = keys[first], s3[first], o3[first], exact[first]
    cand, inv = np.unique(keys[:, :2], axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    score = np.bincount(inv, weights=s3, minlength=len(cand))
    votes = np.bincount(inv, minlength=len(cand))
    # Offset estimate: mean of the offsets voting exactly in the bin (else all).
    w = exact.astype(np.float64)
    off_sum = np.bincount(inv, weights=o3 * w, minlength=len(cand))
    off_n = np.bincount(inv, weights=w, minlength=len(cand))
    off_all = np.bincount(inv, weights=o3, minlength=len(cand)) / np.maximum(votes, 1)
    offset = np.where(off_n > 0, off_sum / np.maximum(off_n, 1e-9), off_all)
    best = np.argsort(-score, kind="stable")
    out: list[Candidate] = []
    kept: dict[int, list[float]] = {}  # track -> offsets of its candidates so far
    for i in best:
        t, o = int(cand[i, 0]), float(offset[i])
        offsets_of = kept.get(t)
        if offsets_of is None:
            if len(kept) == top:
                continue
            kept[t] = offsets_of = []
        elif len(offsets_of) == per_track or any(abs(o - h) < 3 * bin_seconds for h in offsets_of):
            continue  # enough passages of this track, or the same passage again
        offsets_of.append(o)
        out.append(Candidate(t, o, float(score[i]), int(votes[i])))
        if per_track == 1 and len(out) == top:
            break
    return out
