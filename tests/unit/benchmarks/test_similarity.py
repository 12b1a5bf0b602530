"""benchmarks/similarity.py: soundtrack labels, the track sample, and the leave-soundtrack-out scores."""

from __future__ import annotations

import numpy as np

from benchmarks.similarity import (
    identity,
    leave_soundtrack_out,
    ranking_scores,
    round_robin,
    soundtrack,
)


def test_a_debian_tracks_soundtrack_is_its_game_or_package_folder() -> None:
    assert soundtrack("/usr/share/games/hedgewars/Data/Music/x.ogg") == "hedgewars"
    assert soundtrack("/usr/share/scummvm/drascula/audio/1.ogg") == "drascula"
    assert soundtrack("/usr/share/freedroidrpg/data/sound/music/a.ogg") == "freedroidrpg"
    assert soundtrack("/home/me/album/song.ogg") == "album"


def test_a_limited_sample_takes_tracks_in_turn_from_soundtracks_big_enough() -> None:
    paths = [f"/x/a/{i}.ogg" for i in range(6)] + [f"/x/b/{i}.ogg" for i in range(3)] + ["/x/c/0.ogg"]
    sample = round_robin(paths, 4, min_tracks=2)
    assert sorted(soundtrack(p) for p in sample) == ["a", "a", "b", "b"]
    assert all(soundtrack(p) != "c" for p in round_robin(paths, None, min_tracks=2))


def test_precision_and_average_precision_of_a_known_ranking() -> None:
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.5, 0.5]])
    labels = np.array(["a", "a", "b", "b"])
    p, ap = ranking_scores(x, labels, np.array([0]), k=1)
    assert p.tolist() == [1.0] and ap.tolist() == [1.0]
    p, ap = ranking_scores(x, labels, np.array([2]), k=1)  # nearest of 2 is 3 (b), then 1, then 0
    assert p.tolist() == [1.0] and ap.tolist() == [1.0]
    p, ap = ranking_scores(x, labels, np.array([3]), k=2)  # 3 ranks 1 (a), 0 (a) / 2 (b) tied below
    assert p[0] == 0.0 or p[0] == 0.5
    assert 0 < ap[0] < 1


def test_a_fitted_method_never_sees_the_soundtrack_it_is_scored_on() -> None:
    x = np.random.default_rng(0).normal(size=(9, 3))
    labels = np.array(list("aaabbbccc"))
    seen = []

    def fit(train):
        seen.append(len(train))
        return lambda v: v

    p, ap = leave_soundtrack_out(x, labels, fit, k=2)
    assert seen == [6, 6, 6]
    p2, _ = leave_soundtrack_out(x, labels, identity, k=2)
    assert np.array_equal(p, p2) and p.shape == ap.shape == (9,)
