"""A clip's score: segment, embed, search, vote, verify, at each query speed.

A clip is cut into segments every ``query_hop_seconds`` (a whole number of
feature frames), near-silent ones are dropped, the rest are embedded and
each one's nearest indexed segments are fetched from every shard. Items of
tombstoned tracks and global hubs are never returned (see
:mod:`audiosim.index.reader`); items that one clip retrieves from too many of
its segments (local hubs, :func:`drop_local_hubs`) are ignored.
Offset-consistent voting (:func:`audiosim.match.voting.vote`) then proposes
(track, offset) candidates, and verification (:mod:`audiosim.match.verify`)
scores each by comparing every query segment with the track where the
candidate says it should be.

The best track's other passages among the votes are verified too
(``best_track_passages``): the search sees the index's 0.5 s grid only, so
a short clip's neighbours can favour a similar passage over its own one,
which the finer grid of half-hop vectors tells apart.

The clip's *score* (:func:`clip_score`) is the verified score of the best
candidate: the sum, over the clip's audible segments, of their best cosine
similarity with the track's indexed segments within ``verify_window`` s of
the aligned time (less ``cohort_weight`` times the mean of the other
candidates' sums when the clip has more than one segment, off by default:
:func:`~audiosim.match.verify.cohort_scores`). It grows with the clip's
length, so thresholds are calibrated per number of segments
(:mod:`audiosim.match.calibrate`); a one-segment (1 s) clip's score is its
similarity with the best candidate.

Why this score: the vote score alone (only the segments whose neighbours
agreed) matches fewer degraded clips at the same false-match rate, and the
margin between the best and the runner-up track is never better, is much
worse for short clips, and would refuse clips of songs the catalogue holds
twice (e.g. in two encodings); ``benchmarks/README.md`` has the figures.
A share of the mean of all the other candidates, by contrast, keeps such
clips (one copy among nine candidates moves it little) and matches more
clips of 2-3 s at the same false-match rate, but lets more absent 10 s
clips pass the thresholds the background bank sets, so it is an option.

A clip that does not match as given can be tried again as if it had been
played faster or slower (``IndexConfig.query_speeds``, :func:`unsped`);
calibration tries the same speeds, so the thresholds hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from audiosim.config import IndexConfig
from audiosim.fingerprint.model import Encoder
from audiosim.index.reader import Index, Neighbours
from audiosim.match.verify import aligned_offset, cohort_scores, verify_candidates
from audiosim.match.voting import Candidate, vote
from audiosim.signal import audio
from audiosim.signal import features as F


@dataclass(frozen=True)
class ClipScore:
    """Scored candidates for one clip, before the threshold.

    Attributes
    ----------
    candidates : list of Candidate
        Best verified score first, one per track.
    n_segments : int
        Audible query segments the clip was scored on.
    score : float
        ``candidates[0].score`` (0 without candidates), see :func:`clip_score`.
    speed : float
        The playback speed the clip was scored at (see :func:`unsped`).
    """

    candidates: list[Candidate]
    n_segments: int
    score: float
    speed: float = 1.0

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def keeping(self, keep: Callable[[int], bool]) -> "ClipScore":
        """This score with only the candidates whose track ``keep`` accepts
        (the same object when all are kept)."""
        kept = [c for c in self.candidates if keep(c.track)]
        if len(kept) == len(self.candidates):
            return self
        return ClipScore(kept, self.n_segments, clip_score(kept), self.speed)


def clip_score(candidates: Sequence[Candidate]) -> float:
    """The score thresholds apply to: the best candidate's verified score (0 if none)."""
    return float(candidates[0].score) if candidates else 0.0


# --------------------------------------------------------------------------
# Neighbours of a clip's segments
# --------------------------------------------------------------------------


def query_hop_frames(config: IndexConfig, model: Encoder) -> int:
    """``query_hop_seconds`` as a whole number of frames (at least 1)."""
    return F.seconds_to_frames(config.query_hop_seconds, model.features)


def neighbours_of(nn: Neighbours, rows: np.ndarray) -> Neighbours:
    """The neighbours of the query segments ``rows`` only (a window, a prefix)."""
    return Neighbours(nn.track[rows], nn.time[rows], nn.sim[rows], nn.item[rows])


def hub_limit(config: IndexConfig, hop_seconds: float) -> int:
    """Most query segments of one clip that may retrieve the same index item.

    A true item is near the query segments within about ±0.75 s of its
    time, so ``config.hub_limit == 0`` allows the segments of 2 s.
    """
    if config.hub_limit > 0:
        return int(config.hub_limit)
    return int(math.ceil(2.0 / hop_seconds)) + 1


def drop_local_hubs(nn: Neighbours, limit: int) -> Neighbours:
    """Ignore items retrieved by more than ``limit`` distinct query segments.

    Returns a copy of ``nn`` with those entries' track set to -1 (``nn``
    itself when there are none).
    """
    q_n, k = nn.item.shape
    if q_n <= limit:
        return nn
    items = nn.item.reshape(-1)
    valid = items >= 0
    rows = np.repeat(np.arange(q_n), k)
    pairs = np.unique(np.stack([items[valid], rows[valid]]), axis=1)  # one count per (item, segment)
    uniq, counts = np.unique(pairs[0], return_counts=True)
    hubs = uniq[counts > limit]
    if len(hubs) == 0:
        return nn
    track = nn.track.copy()
    track[np.isin(nn.item, hubs)] = -1
    return Neighbours(track, nn.time, nn.sim, nn.item)


def refine_offset(nn: Neighbours, query_times: np.ndarray, track: int, offset: float, window: float) -> float:
    """A finer offset for ``track``: the mean over query segments of the
    offset implied by their most similar neighbour of that track within
    ``window`` s of ``offset``.

    Indexed segments lie on a grid (``index_hop_seconds``), so each
    segment's implied offset is off by up to half a hop; the errors of
    segments at different clip times cancel in the mean, whereas the vote's
    own estimate (the offsets falling in the winning bin) is pulled to the
    bin's centre.
    """
    off = nn.time - query_times[:, None]
    ok = (nn.track == track) & (np.abs(off - offset) <= window)
    rows = np.flatnonzero(ok.any(axis=1))
    if len(rows) == 0:
        return offset
    sims = np.where(ok[rows], nn.sim[rows], -np.inf)
    best = off[rows, np.argmax(sims, axis=1)]
    return float(np.mean(best))


def score_segments(
    index: Index,
    vectors: np.ndarray,
    query_times: np.ndarray,
    nn: Neighbours,
    config: IndexConfig,
    hop_seconds: float,
) -> ClipScore:
    """Vote over a clip's neighbours, verify the candidates, score the clip.

    Parameters
    ----------
    index : Index
    vectors : ndarray, shape (Q, dim)
        The clip's segment embeddings.
    query_times : ndarray, shape (Q,)
        Their start times (s) within the clip.
    nn : Neighbours
        Their nearest indexed segments.
    config : IndexConfig
    hop_seconds : float
        Hop between query segments.

    Returns
    -------
    ClipScore
        Candidates ranked by verified score (less the cohort's share, see
        :func:`~audiosim.match.verify.cohort_scores`); the best one's offset is
        refined with :func:`refine_offset`, then put on the grid of the
        track's indexed segments (half-hop ones included) with
        :func:`~audiosim.match.verify.aligned_offset`.
    """
    nn = drop_local_hubs(nn, hub_limit(config, hop_seconds))
    votes = vote(query_times, nn.track, nn.time, nn.sim, bin_seconds=config.index_hop_seconds,
                 top=max(1, config.verify_candidates), per_track=max(1, config.best_track_passages))
    # With half-hop vectors the track's grid is finer than the votes' offsets: try a quarter hop either way.
    quarter = config.index_hop_seconds / 4 if config.half_hop_vectors else 0.0
    shifts = (0.0, -quarter, quarter) if quarter else (0.0,)
    firsts, later, seen = [], [], set()
    for c in votes:  # a track's first candidate is its best offset
        (later if c.track in seen else firsts).append(c)
        seen.add(c.track)
    cands = verify_candidates(index, vectors, query_times, firsts, config.verify_window, shifts)
    passages = [c for c in later if cands and c.track == cands[0].track]
    if passages:  # the best track's other passages, verified alike: it keeps the best
        alt = verify_candidates(index, vectors, query_times, passages, config.verify_window, shifts)[0]
        if alt.score > cands[0].score:
            cands[0] = alt
    if len(query_times) > 1:
        cands = cohort_scores(cands, config.cohort_weight)
    if cands:
        b, off = cands[0], cands[0].offset
        if len(query_times) > 1:
            off = refine_offset(nn, query_times, b.track, off, config.index_hop_seconds)
            off = refine_offset(nn, query_times, b.track, off, 0.75 * config.index_hop_seconds)
        lo, hi = float(np.min(query_times)), float(np.max(query_times))
        times, vecs = index.track_segments(b.track, off + lo - config.verify_window, off + hi + config.verify_window)
        off = aligned_offset(vectors, query_times, times, vecs, off, config.verify_window)
        cands[0] = replace(b, offset=off)
    return ClipScore(cands, len(query_times), clip_score(cands))


# --------------------------------------------------------------------------
# Query speeds
# --------------------------------------------------------------------------


def unsped(wave: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """The clip as it sounds at normal speed, if it was played ``speed`` times too fast.

    Playing faster raises pitch and tempo together; resampling by ``speed``
    undoes both. ``speed=1.0`` returns the clip as given.

    Examples
    --------
    >>> len(unsped(np.zeros(8000, np.float32), 8000, 1.05))
    8400
    """
    if speed == 1.0:
        return np.asarray(wave, np.float32)
    return audio.resample(np.asarray(wave, np.float32), sample_rate, int(round(sample_rate * speed)))


def speeds_to_try(config: IndexConfig) -> list[float]:
    """``config.query_speeds``, the speed nearest 1.0 (the clip as given) first."""
    return sorted({float(x) for x in config.query_speeds}, key=lambda x: (abs(x - 1.0), x))


def clip_at_speeds(
    model: Encoder, wave: np.ndarray, config: IndexConfig, hop: int
) -> list[tuple[float, torch.Tensor, np.ndarray]]:
    """``(speed, log-mel, audible segment starts)`` of the clip unsped at each
    query speed (:func:`speeds_to_try` order); speeds at which it has no
    audible segment are left out."""
    f = model.features
    out = []
    with torch.inference_mode():
        for speed in speeds_to_try(config):
            lm = F.log_mel(torch.from_numpy(unsped(wave, f.sample_rate, speed)), f)
            starts = F.audible_segments(lm, hop, f)
            if len(starts):
                out.append((speed, lm, starts))
    return out


def common_count(counts: Sequence[int]) -> int:
    """Segments every speed is scored on: the fewest any speed has (speeds
    with none are skipped; 0 when none has any).

    >>> common_count([43, 41, 0, 45])
    41
    """
    have = [int(c) for c in counts if c]
    return min(have) if have else 0


def score_wave(
    index: Index,
    model: Encoder,
    wave: np.ndarray | torch.Tensor,
    exclude_tracks: Sequence[int] | int | None = None,
    config: IndexConfig | None = None,
    enough: Callable[[ClipScore], bool] | None = None,
) -> ClipScore:
    """Segment, embed, search and score one clip at the model's sample rate.

    With several ``config.query_speeds`` the clip is scored at each (see
    :func:`unsped`), every speed on the same number of segments (the fewest
    any speed gives; a speed at which the clip is too short for a segment
    is skipped), and the best score wins. The clip as given comes
    first; the other speeds are embedded and searched only while ``enough``
    says no (the clip is under its threshold, so another speed could still
    change the decision).

    Parameters
    ----------
    exclude_tracks : int or sequence of int, optional
        Ignore these tracks' items (leave-one-track-out calibration).
    config : IndexConfig, optional
        Default ``index.config``.
    enough : callable, optional
        ``enough(clip_score) -> bool``, asked after each speed.
    """
    cfg = config or index.config
    f = model.features
    hop = query_hop_frames(cfg, model)
    x = np.asarray(wave.numpy() if isinstance(wave, torch.Tensor) else wave, np.float32)
    clips = clip_at_speeds(model, x, cfg, hop)  # log-mels are cheap: all of them, to know the common count
    n = common_count([len(starts) for *_, starts in clips])
    if n == 0:
        return ClipScore([], 0, 0.0)
    best: ClipScore | None = None
    for speed, lm, starts in clips:
        starts = starts[:n]
        vecs = model.embed(F.segments(lm, starts, f)).numpy()
        times = starts / f.frames_per_second
        nn = index.search(vecs, cfg.neighbours, exclude_tracks=exclude_tracks)
        cs = replace(score_segments(index, vecs, times, nn, cfg, hop / f.frames_per_second), speed=speed)
        if best is None or cs.score > best.score:
            best = cs
        if enough is not None and enough(best):
            break
    assert best is not None
    return best
