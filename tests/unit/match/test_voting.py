"""Tests of audiosim.match.voting: offset-consistent voting on constructed neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from audiosim.match.voting import vote

Q = np.arange(10) * 0.5  # ten query segments, 0.5 s apart


def test_segments_agreeing_on_one_offset_outvote_chance_neighbours() -> None:
    track = np.stack([np.full(10, 4), 10 + np.arange(10)], 1)  # column 1: a different track per segment
    time = np.stack([20.0 + Q, np.linspace(3.0, 90.0, 10)], 1)
    sim = np.stack([np.full(10, 0.8), np.full(10, 0.9)], 1)
    cands = vote(Q, track, time, sim, bin_seconds=0.5, top=5)
    best = cands[0]
    assert best.track == 4 and best.votes == 10
    assert best.offset == pytest.approx(20.0, abs=1e-5)
    assert best.score == pytest.approx(8.0)
    assert all(c.votes == 1 for c in cands[1:]), "each chance track has one segment's vote"
    assert len(cands) == 5


def test_each_track_is_one_candidate_at_its_best_offset() -> None:
    track = np.full((10, 2), 4)
    time = np.stack([20.0 + Q, 50.0 + Q], 1)
    sim = np.stack([np.full(10, 0.8), np.where(np.arange(10) < 4, 0.9, 0.0)], 1)
    track[4:, 1] = -1  # only four segments also hear the track at 50 s
    cands = vote(Q, track, time, sim)
    assert [c.track for c in cands] == [4]
    assert cands[0].offset == pytest.approx(20.0, abs=1e-5)


def test_a_segment_votes_once_per_candidate_even_with_two_near_neighbours() -> None:
    # Each segment retrieves the track twice, 0.4 s apart (adjacent offset bins).
    track = np.full((10, 2), 4)
    time = np.stack([20.0 + Q, 20.4 + Q], 1)
    sim = np.stack([np.full(10, 0.8), np.full(10, 0.7)], 1)
    (best,) = vote(Q, track, time, sim, bin_seconds=0.5)
    assert best.votes == 10
    assert best.score == pytest.approx(8.0), "the best similarity of each segment, counted once"
    assert abs(best.offset - 20.0) <= 0.5


def test_nothing_retrieved_gives_no_candidates() -> None:
    empty = np.full((10, 3), -1)
    assert vote(Q, empty, np.zeros((10, 3)), np.ones((10, 3))) == []
    assert vote(Q[:0], np.zeros((0, 3), int), np.zeros((0, 3)), np.zeros((0, 3))) == []


def test_more_passages_of_a_track_come_after_its_best_and_apart_from_it() -> None:
    # Track 4 is heard at 20 s by every segment, at 50 s by four and at
    # 20.9 s (the same passage, an adjacent bin) by all; track 7 by one.
    track = np.stack([np.full(10, 4), np.full(10, 4), np.full(10, 4), np.r_[7, np.full(9, -1)]], 1)
    time = np.stack([20.0 + Q, 50.0 + Q, 20.9 + Q, 3.0 + Q], 1)
    sim = np.stack([np.full(10, 0.8), np.where(np.arange(10) < 4, 0.9, 0.0), np.full(10, 0.6), np.full(10, 0.5)], 1)
    track[4:, 1] = -1
    cands = vote(Q, track, time, sim, top=2, per_track=3)
    assert [(c.track, round(c.offset)) for c in cands] == [(4, 20), (4, 50), (7, 3)]
    assert [c.track for c in vote(Q, track, time, sim, top=1, per_track=3)] == [4, 4], "top counts tracks"
    assert [(c.track, round(c.offset)) for c in vote(Q, track, time, sim, top=2)] == [(4, 20), (7, 3)]
