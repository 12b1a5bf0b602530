"""Verify vote candidates by their aligned similarity: the clip score.

Voting (:mod:`audiosim.match.voting`) proposes (track, offset) candidates from
the query segments whose nearest neighbours happen to include the right
indexed segment. Under heavy noise or reverberation most segments miss it
among their ``k`` neighbours, yet still resemble it more than they resemble
music at random. Verification therefore compares *every* query segment
with the candidate track where the candidate says it should be: a segment
at clip time ``q`` is compared with the track's indexed segments within
``window`` seconds of ``offset + q``, and keeps its best cosine similarity
(0 where the track has none there: before its start, after its end, in a
silent stretch). A candidate's score is the sum of these over the query
segments; the candidates are re-ranked by it. The track's segments include
the ones half an index hop later when the index keeps them
(``IndexConfig.half_hop_vectors``), so each query segment meets one at
most a quarter hop away.

Summing every segment, not only those whose neighbours voted, finds the
right passage in more degraded clips, and makes the scores of absent music
better behaved: leave-one-track-out calibration clips and clips of music
the catalogue does not hold score alike, where vote scores had a long tail
from related arrangements that made thresholds over-cautious
(``benchmarks/README.md`` has the figures).

:func:`cohort_scores` can then take a share of the other candidates' mean
off each score, so that a clip's score says how far its best track stands
above the music it merely resembles (``IndexConfig.cohort_weight``, off by
default).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from audiosim.match.voting import Candidate

if TYPE_CHECKING:
    from audiosim.index.reader import Index


def aligned_similarity(
    query_vectors: np.ndarray,
    query_times: np.ndarray,
    track_times: np.ndarray,
    track_vectors: np.ndarray,
    offset: float,
    window: float,
) -> np.ndarray:
    """Best similarity of each query segment with the track where it should be.

    Parameters
    ----------
    query_vectors : ndarray, shape (Q, dim)
        Unit-length embeddings of the clip's segments.
    query_times : ndarray, shape (Q,)
        Their start times (s) within the clip.
    track_times : ndarray, shape (N,)
        Start times (s) of the track's indexed segments.
    track_vectors : ndarray, shape (N, dim)
        Their unit-length embeddings.
    offset : float
        Where in the track the clip starts (s).
    window : float
        A query segment at ``q`` is compared with the track segments
        starting within ``window`` s of ``offset + q``.

    Returns
    -------
    ndarray, shape (Q,)
        Cosine similarity, 0 for segments with no track segment in reach.

    Examples
    --------
    >>> v = np.eye(3, dtype=np.float32)
    >>> aligned_similarity(v[:2], np.array([0.0, 0.5]), np.array([10.0, 10.5, 11.0]), v, 10.0, 0.25)
    array([1., 1.], dtype=float32)
    >>> aligned_similarity(v[:2], np.array([0.0, 0.5]), np.array([10.0, 10.5, 11.0]), v, 10.5, 0.25)
    array([0., 0.], dtype=float32)
    """
    best, _ = _best_aligned(query_vectors, query_times, track_times, track_vectors, offset, window)
    return np.where(np.isfinite(best), best, 0.0).astype(np.float32)


def aligned_offset(
    query_vectors: np.ndarray,
    query_times: np.ndarray,
    track_times: np.ndarray,
    track_vectors: np.ndarray,
    offset: float,
    window: float,
) -> float:
    """Where the clip starts in the track, to the grid of its indexed segments.

    The mean, over the query segments with a track segment in reach, of the
    offset implied by the most similar one (as in :func:`aligned_similarity`);
    ``offset`` itself when none is in reach. With half-hop vectors the grid
    is half the index hop, finer than the search's neighbours give.

    Examples
    --------
    >>> v = np.eye(3, dtype=np.float32)
    >>> aligned_offset(v[1:2], np.array([0.0]), np.array([10.0, 10.25, 10.5]), v, 10.1, 0.25)
    10.25
    """
    best, at = _best_aligned(query_vectors, query_times, track_times, track_vectors, offset, window)
    ok = np.isfinite(best)
    if not ok.any():
        return float(offset)
    return float(np.mean(at[ok] - np.asarray(query_times, np.float64)[ok]))


def _best_aligned(
    query_vectors: np.ndarray,
    query_times: np.ndarray,
    track_times: np.ndarray,
    track_vectors: np.ndarray,
    offset: float,
    window: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per query segment, the best similarity with a track segment in reach
    (-inf when none is) and that segment's start time."""
    q_n = len(query_times)
    if q_n == 0 or len(track_times) == 0:
        return np.full(q_n, -np.inf, np.float32), np.zeros(q_n)
    t = np.asarray(track_times, np.float64)
    target = offset + np.asarray(query_times, np.float64)
    near = np.abs(t[:, None] - target[None, :]) <= window + 1e-6
    sims = np.asarray(track_vectors, np.float32) @ np.asarray(query_vectors, np.float32).T  # (N, Q)
    sims = np.where(near, sims, -np.inf)
    pick = np.argmax(sims, axis=0)
    return sims[pick, np.arange(q_n)], t[pick]


def verify_candidates(
    index: "Index",
    query_vectors: np.ndarray,
    query_times: np.ndarray,
    candidates: Sequence[Candidate],
    window: float,
    shifts: Sequence[float] = (0.0,),
) -> list[Candidate]:
    """Score candidates by aligned similarity and rank them by it.

    A vote's offset is only as fine as the search's grid; ``shifts`` tries
    each candidate a little earlier or later as well and keeps the best.

    Parameters
    ----------
    index : Index
        Gives each candidate track's indexed segments
        (:meth:`~audiosim.index.reader.Index.track_segments`).
    query_vectors, query_times : ndarray
        The clip's segments, as in :func:`aligned_similarity`.
    candidates : sequence of Candidate
        From :func:`audiosim.match.voting.vote`.
    window : float
        See :func:`aligned_similarity`.
    shifts : sequence of float
        Seconds added to each candidate's offset before scoring it; of
        equal scores the first shift wins.

    Returns
    -------
    list of Candidate
        The same candidates with ``score`` replaced by the sum of the
        aligned similarities at the best shift, and ``offset`` shifted by
        it, best first (``votes`` still counts the segments that voted).
    """
    if not len(query_times):
        return []
    lo = float(np.min(query_times)) - window + min(shifts)
    hi = float(np.max(query_times)) + window + max(shifts)
    out = []
    for c in candidates:
        times, vectors = index.track_segments(c.track, c.offset + lo, c.offset + hi)
        tried = [(float(aligned_similarity(query_vectors, query_times, times, vectors, c.offset + d, window).sum()),
                  c.offset + d) for d in shifts]
        score, offset = max(tried, key=lambda t: t[0])  # the first of equal scores
        out.append(replace(c, score=score, offset=offset))
    out.sort(key=lambda c: -c.score)
    return out


def cohort_scores(candidates: Sequence[Candidate], weight: float) -> list[Candidate]:
    """Each candidate's score less ``weight`` times the mean of the others'.

    Verified scores of one clip rise and fall together: a clip that
    resembles music in general (a busy texture, heavy noise) scores high
    against every candidate, and absent music's best candidate rises with
    the rest. Subtracting part of the cohort's mean keeps what sets the
    best candidate apart from the others.
    The order is unchanged (the adjusted score grows with the verified one).

    Parameters
    ----------
    candidates : sequence of Candidate
        Verified candidates of one clip (:func:`verify_candidates`).
    weight : float
        Share of the others' mean to subtract; 0 (or fewer than two
        candidates) returns them as given.

    Examples
    --------
    >>> cs = [Candidate(0, 0.0, 9.0, 5), Candidate(1, 0.0, 6.0, 2), Candidate(2, 0.0, 4.0, 1)]
    >>> [round(c.score, 2) for c in cohort_scores(cs, 0.5)]
    [6.5, 2.75, 0.25]
    """
    if weight == 0 or len(candidates) < 2:
        return list(candidates)
    scores = np.array([c.score for c in candidates], np.float64)
    others = (scores.sum() - scores) / (len(scores) - 1)
    return [replace(c, score=float(s - weight * o)) for c, s, o in zip(candidates, scores, others)]
