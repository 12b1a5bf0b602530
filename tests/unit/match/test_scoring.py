"""Tests of audiosim.match.scoring: a clip's score at its speeds.

Hub and voting logic run on constructed arrays; the speed tests need the
trained model and the songbook index (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
from match_support import FakeIndex, clip_of, grid_track, make_neighbours, unit_vectors

from audiosim.config import IndexConfig
from audiosim.match.matcher import Matcher
from audiosim.match.scoring import (
    ClipScore,
    clip_score,
    drop_local_hubs,
    hub_limit,
    neighbours_of,
    score_segments,
    score_wave,
    unsped,
)
from audiosim.match.voting import Candidate
from audiosim.signal import audio


def test_clip_score_is_the_best_candidates_verified_score() -> None:
    assert clip_score([]) == 0.0
    assert clip_score([Candidate(1, 0.0, 3.0, 4), Candidate(2, 1.0, 1.25, 2)]) == pytest.approx(3.0)


def test_a_clip_score_keeps_the_candidates_asked_for_and_rescores() -> None:
    cs = ClipScore([Candidate(1, 0.0, 3.0, 4), Candidate(2, 1.0, 1.25, 2)], 10, 3.0, speed=1.05)
    assert cs.keeping(lambda t: True) is cs
    kept = cs.keeping(lambda t: t != 1)
    assert [c.track for c in kept.candidates] == [2]
    assert (kept.score, kept.n_segments, kept.speed) == (1.25, 10, 1.05)
    assert cs.keeping(lambda t: False).score == 0.0 and cs.keeping(lambda t: False).best is None


def test_neighbours_of_some_segments_keep_their_rows() -> None:
    nn = make_neighbours(np.arange(6).reshape(3, 2), np.ones((3, 2)), np.ones((3, 2)), np.arange(6).reshape(3, 2))
    sub = neighbours_of(nn, np.array([0, 2]))
    assert sub.track.tolist() == [[0, 1], [4, 5]] and sub.item.tolist() == [[0, 1], [4, 5]]


def test_local_hub_is_dropped_and_true_match_kept() -> None:
    # 40 query segments 0.1 s apart. Neighbour 0: track 7 at a consistent
    # offset of 12 s (a true match; each item near 2 s of segments at most).
    # Neighbour 1: item 999 of track 3, retrieved by every segment (a hub).
    q = np.arange(40) * 0.1
    t_true = np.round((12.0 + q) / 0.5) * 0.5
    item_true = 1000 + (t_true / 0.5).astype(int)
    track = np.stack([np.full(40, 7), np.full(40, 3)], 1)
    time = np.stack([t_true, np.full(40, 5.0)], 1)
    sim = np.stack([np.full(40, 0.8), np.full(40, 0.95)], 1)
    item = np.stack([item_true, np.full(40, 999)], 1)
    nn = make_neighbours(track, time, sim, item)
    limit = hub_limit(IndexConfig(), 0.1)
    assert limit == 21
    cleaned = drop_local_hubs(nn, limit)
    assert (cleaned.track[:, 1] == -1).all(), "the hub item is ignored"
    assert (cleaned.track[:, 0] == 7).all(), "items of the true match are kept"
    rng = np.random.default_rng(1)
    true = grid_track(rng, 60.0)
    qv = clip_of(true, 12.0, q)
    index = FakeIndex({7: true, 3: (np.array([5.0], np.float32), qv[:1])})
    cs = score_segments(index, qv, q, nn, IndexConfig(), 0.1)
    assert [c.track for c in cs.candidates] == [7], "the hub's track is not even a candidate"
    assert abs(cs.best.offset - 12.0) <= 0.25
    assert cs.best.votes == 40
    # Each segment is compared with the items within 0.5 s of where it should be, its own among them.
    assert cs.score == pytest.approx(40.0, abs=1e-4) and cs.score == pytest.approx(cs.best.score)


def test_hub_limit_respects_config() -> None:
    assert hub_limit(IndexConfig(hub_limit=5), 0.1) == 5
    nn = make_neighbours(np.zeros((3, 1)), np.zeros((3, 1)), np.ones((3, 1)), np.zeros((3, 1)))
    assert drop_local_hubs(nn, 5) is nn  # fewer segments than the limit: untouched


def test_scattered_votes_lose_to_consistent_ones() -> None:
    rng = np.random.default_rng(0)
    q = np.arange(30) * 0.1
    track = rng.integers(0, 50, (30, 5))
    time = rng.uniform(0, 100, (30, 5))
    sim = rng.uniform(0.5, 0.7, (30, 5))
    item = rng.integers(0, 10**6, (30, 5))
    track[::2, 0], time[::2, 0], sim[::2, 0] = 77, 30.0 + q[::2], 0.6  # half the segments agree
    item[::2, 0] = np.arange(15) + 5 * 10**6
    tracks = {t: grid_track(rng, 120.0) for t in range(50)}
    tracks[77] = grid_track(rng, 60.0)
    qv = clip_of(tracks[77], 30.0, q)
    cs = score_segments(FakeIndex(tracks), qv, q, make_neighbours(track, time, sim, item), IndexConfig(), 0.1)
    assert cs.best.track == 77 and abs(cs.best.offset - 30.0) < 0.3
    assert cs.score == pytest.approx(30.0, abs=1e-4)
    assert all(c.score < 15.0 for c in cs.candidates[1:]), "chance tracks resemble the clip far less"


def test_the_best_tracks_other_passage_is_verified_too() -> None:
    # A 1 s clip of 10.25 s into a track whose segments lie every 0.25 s
    # (half-hop vectors). The search, on the 0.5 s grid, finds a similar
    # passage at 30 s closer than the clip's own one at 10.5 s.
    rng = np.random.default_rng(7)
    times = np.arange(0.0, 40.0, 0.25)
    vecs = unit_vectors(rng, len(times))
    own = int(10.25 / 0.25)
    similar = vecs[own] + 0.6 * unit_vectors(rng, 1)[0]
    vecs[int(30.0 / 0.25)] = similar / np.linalg.norm(similar)
    index = FakeIndex({1: (times, vecs)})
    q = np.array([0.0])
    nn = make_neighbours(np.array([[1, 1]]), np.array([[30.0, 10.5]]), np.array([[0.9, 0.7]]), np.array([[60, 21]]))
    one = score_segments(index, vecs[own][None], q, nn, IndexConfig(best_track_passages=1), 1.0)
    two = score_segments(index, vecs[own][None], q, nn, IndexConfig(best_track_passages=2), 1.0)
    assert abs(one.best.offset - 30.0) < 0.3 and one.score < 0.95
    assert two.best.offset == pytest.approx(10.25) and two.score == pytest.approx(1.0, abs=1e-5)
    assert [c.track for c in two.candidates] == [1], "still one candidate per track"


def _played_fast(x: np.ndarray, sr: int, speed: float) -> np.ndarray:
    """``x`` played ``speed`` times too fast (pitch and tempo up), at rate ``sr``."""
    return audio.resample(x, int(round(sr * speed)), sr)


def test_unsped_undoes_a_speed_change() -> None:
    sr = 8000
    t = np.arange(2 * sr) / sr
    x = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    fast = _played_fast(x, sr, 1.06)
    assert len(fast) == pytest.approx(len(x) / 1.06, abs=2)

    def peak(y: np.ndarray) -> float:
        return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(np.abs(np.fft.rfft(y)))])

    assert peak(fast) == pytest.approx(440.0 * 1.06, abs=2)
    back = unsped(fast, sr, 1.06)
    assert peak(back) == pytest.approx(440.0, abs=2) and len(back) == pytest.approx(len(x), abs=2)
    assert unsped(x, sr, 1.0) is not None and np.array_equal(unsped(x, sr, 1.0), x)


@pytest.mark.slow
def test_a_copy_played_fast_matches_at_that_speed(songbook_index) -> None:
    home, paths, model = songbook_index
    x, sr = sf.read(paths[5], dtype="float32")
    start = 9.0
    clip = _played_fast(x[int(start * sr) : int((start + 5.3) * sr)], sr, 1.06)  # about 5 s, 6 % fast
    with Matcher(home, model) as m:
        as_given = score_wave(m.index, m.model, clip)
        cfg = dataclasses.replace(m.config, query_speeds=(0.95, 1.0, 1.05))
        tried = score_wave(m.index, m.model, clip, config=cfg)
        assert tried.speed == 1.05 and tried.best.track == as_given.best.track
        assert abs(tried.best.offset - start) <= 0.3, tried.best
        assert tried.score > as_given.score + 2.0, (tried.score, as_given.score)
        # A clip that is good enough as given is not tried at other speeds.
        calls = []
        orig = m.index.search
        m.index.search = lambda *a, **k: calls.append(1) or orig(*a, **k)
        try:
            plain = x[int(start * sr) : int((start + 5) * sr)]
            done = score_wave(m.index, m.model, plain, config=cfg, enough=lambda cs: cs.score > 10.0)
        finally:
            m.index.search = orig
        assert done.speed == 1.0 and len(calls) == 1
