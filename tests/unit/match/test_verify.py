"""Tests of audiosim.match.verify: candidates scored by aligned similarity."""

from __future__ import annotations

import numpy as np
import pytest
from match_support import FakeIndex, clip_of, grid_track, make_neighbours, unit_vectors

from audiosim.config import IndexConfig
from audiosim.match.scoring import score_segments
from audiosim.match.verify import (
    aligned_offset,
    aligned_similarity,
    cohort_scores,
    verify_candidates,
)
from audiosim.match.voting import Candidate


def test_aligned_similarity_compares_each_segment_where_it_should_be() -> None:
    rng = np.random.default_rng(3)
    times, vecs = grid_track(rng, 20.0)
    qt = np.arange(5) * 0.5
    qv = clip_of((times, vecs), 10.0, qt)
    assert aligned_similarity(qv, qt, times, vecs, 10.0, 0.25) == pytest.approx(np.ones(5), abs=1e-5)
    shifted = aligned_similarity(qv, qt, times, vecs, 13.0, 0.25)
    assert shifted.max() < 0.9, "at another offset the segments meet other music"
    # Beyond the track's end there is nothing to compare with: 0, not a penalty.
    tail = aligned_similarity(qv, qt, times, vecs, 18.5, 0.25)
    assert (tail[-2:] == 0).all()


def test_verification_outranks_a_louder_vote() -> None:
    # Track 5 gets more votes (a repeated passage its segments retrieved), but
    # track 9 holds the clip where it says: verification ranks 9 first.
    rng = np.random.default_rng(2)
    q = np.arange(30) * 0.1
    index = FakeIndex({5: grid_track(rng, 60.0), 9: grid_track(rng, 30.0)})
    qv = clip_of(index.tracks[9], 8.0, q)
    track = np.full((30, 2), -1)
    time = np.zeros((30, 2))
    sim = np.zeros((30, 2))
    item = np.full((30, 2), -1)
    track[:, 0], time[:, 0], sim[:, 0], item[:, 0] = 5, np.round((40.0 + q) / 0.5) * 0.5, 0.9, 100 + np.arange(30)
    track[::3, 1], time[::3, 1], sim[::3, 1], item[::3, 1] = 9, np.round((8.0 + q[::3]) / 0.5) * 0.5, 0.7, 200 + np.arange(10)
    cs = score_segments(index, qv, q, make_neighbours(track, time, sim, item), IndexConfig(), 0.1)
    assert [c.track for c in cs.candidates] == [9, 5]
    assert cs.candidates[0].votes < cs.candidates[1].votes
    assert abs(cs.best.offset - 8.0) < 0.3


def test_the_offset_lands_on_the_grid_of_the_tracks_segments() -> None:
    # A track with segments every 0.25 s (an index with half-hop vectors) and
    # a clip that starts at 10.25 s; the search's neighbours (on the 0.5 s
    # grid) put it at 10.35.
    rng = np.random.default_rng(4)
    times = np.arange(0.0, 20.0, 0.25)
    vecs = rng.normal(size=(len(times), 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    qt = np.array([0.0, 0.28, 0.56, 0.84])
    qv = vecs[np.round((10.25 + qt) / 0.25).astype(int)]
    assert aligned_offset(qv, qt, times, vecs, 10.35, 0.25) == pytest.approx(10.25 + np.mean(
        np.round((10.25 + qt) / 0.25) * 0.25 - 10.25 - qt), abs=1e-6)
    assert abs(aligned_offset(qv, qt, times, vecs, 10.35, 0.25) - 10.25) < 0.07
    # Nothing in reach (past the track's end): the offset stays as given.
    assert aligned_offset(qv, qt, times, vecs, 30.0, 0.25) == 30.0


def test_a_candidate_is_verified_a_little_earlier_or_later_when_its_vote_is_coarse() -> None:
    # The track has segments every 0.25 s (half-hop vectors); the clip starts
    # at 10.25 s, but its vote, on the 0.5 s grid of the search, said 10.55.
    rng = np.random.default_rng(5)
    times = np.arange(0.0, 20.0, 0.25)
    index = FakeIndex({3: (times, unit_vectors(rng, len(times)))})
    qt = np.array([0.0, 0.5, 1.0, 1.5])
    qv = index.tracks[3][1][np.round((10.25 + qt) / 0.25).astype(int)]
    vote = [Candidate(3, 10.55, 1.0, 2)]
    (fixed,) = verify_candidates(index, qv, qt, vote, 0.25)
    (shifted,) = verify_candidates(index, qv, qt, vote, 0.25, (-0.125, 0.0, 0.125))
    assert shifted.score == pytest.approx(4.0, abs=1e-5) and shifted.offset == pytest.approx(10.425)
    assert fixed.score < 3.0, "from 10.55 every segment's own passage lies out of reach"


def test_the_cohort_score_keeps_what_sets_the_best_candidate_apart() -> None:
    # Two clips whose best candidates verify alike (9.0): in the first the
    # other tracks stay far below, in the second (speech over everything)
    # every track resembles the clip about as much.
    clear = [Candidate(1, 0.0, 9.0, 6), Candidate(2, 3.0, 4.0, 1), Candidate(3, 5.0, 3.5, 1)]
    crowded = [Candidate(1, 0.0, 9.0, 2), Candidate(2, 3.0, 8.5, 2), Candidate(3, 5.0, 8.0, 1)]
    a, b = cohort_scores(clear, 0.3), cohort_scores(crowded, 0.3)
    assert a[0].score == pytest.approx(9.0 - 0.3 * 3.75) and b[0].score == pytest.approx(9.0 - 0.3 * 8.25)
    assert a[0].score > b[0].score
    assert [c.track for c in b] == [1, 2, 3], "the order is the verified one"
    assert [c.offset for c in b] == [0.0, 3.0, 5.0] and [c.votes for c in b] == [2, 2, 1]
    assert cohort_scores(crowded, 0.0) == crowded
    assert cohort_scores(crowded[:1], 0.3) == crowded[:1], "a lone candidate has no cohort"


def test_a_one_segment_clip_keeps_its_verified_score_under_a_cohort_weight() -> None:
    # One segment gives one similarity per candidate, no spread to compare:
    # the cohort applies from two segments on.
    rng = np.random.default_rng(6)
    index = FakeIndex({1: grid_track(rng, 20.0), 2: grid_track(rng, 20.0)})
    cfg = IndexConfig(half_hop_vectors=False, cohort_weight=0.5)
    for q in (np.array([0.0]), np.array([0.0, 0.5, 1.0])):
        qv = clip_of(index.tracks[1], 4.0, q)
        track = np.tile([1, 2], (len(q), 1))
        time = np.stack([np.round((4.0 + q) / 0.5) * 0.5, np.full(len(q), 9.0)], axis=1)
        nn = make_neighbours(track, time, np.full((len(q), 2), 0.8), np.arange(2 * len(q)).reshape(-1, 2))
        plain = score_segments(index, qv, q, nn, IndexConfig(half_hop_vectors=False), 0.5)
        cohort = score_segments(index, qv, q, nn, cfg, 0.5)
        assert plain.best.track == cohort.best.track == 1
        if len(q) == 1:
            assert cohort.score == pytest.approx(plain.score)
        else:
            other = plain.candidates[1].score
            assert cohort.score == pytest.approx(plain.score - 0.5 * other, abs=1e-5)
