"""Scoring song vectors by soundtrack, and song-triplet negatives."""

from __future__ import annotations

import numpy as np
import torch

from audiosim.similarity.song_training import precision_at_k, song_negatives


def test_precision_at_k_is_one_for_separated_labels_and_zero_for_crossed_ones():
    vec = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=float)
    assert precision_at_k(vec, ["x", "x", "y", "y"], k=1) == 1.0
    assert precision_at_k(vec, ["x", "y", "x", "y"], k=1) == 0.0


def test_song_negatives_leave_out_the_song_and_optionally_its_group():
    songs = np.array([0, 1, 2, 0])
    plain = song_negatives(songs)
    assert not plain[0, 3] and not plain[0, 0] and plain[0, 1] and plain[1, 2]
    grouped = song_negatives(songs, np.array(["a", "a", "b"]))
    assert not grouped[0, 1] and not grouped[1, 3] and grouped[0, 2] and grouped[2, 1]
    assert torch.equal(grouped, grouped.T)
