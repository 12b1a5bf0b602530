"""Tests of audiosim.match.verify: candidates scored by aligned similarity."""

from __future__ import annotations

import numpy as np
import pytest
from match_support import FakeIndex, clip_of, grid_track, make_neighbours

from audiosim.config import IndexConfig
from audiosim.match.scoring import score_segments
from audiosim.match.verify import aligned_similarity


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
