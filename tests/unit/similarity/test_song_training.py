"""Song triplets and the song head: scoring by soundtrack, negatives, batches, and a head that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosim.config import HeadConfig
from audiosim.similarity.song_training import (
    SongHead,
    SongSet,
    fit_head,
    precision_at_k,
    retrieval_scores,
    sample_batch,
    song_negatives,
    split_soundtracks,
)


def test_precision_at_k_is_one_for_separated_labels_and_zero_for_crossed_ones():
    vec = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=float)
    assert precision_at_k(vec, ["x", "x", "y", "y"], k=1) == 1.0
    assert precision_at_k(vec, ["x", "y", "x", "y"], k=1) == 0.0


def test_retrieval_scores_rank_all_others_and_never_the_query():
    vec = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.2, 0.8]], dtype=float)
    labels = np.array(["x", "x", "y", "x"])
    p, ap = retrieval_scores(vec, labels, np.array([0, 2]), k=1)
    assert p.tolist() == [1.0, 0.0]
    # query 2 ("y") has no same-label other: nothing to find, AP 0
    assert ap[0] == 1.0 and ap[1] == 0.0
    # query 3: its only same-label neighbours rank 2nd and 3rd behind the "y" song
    _, ap3 = retrieval_scores(vec, labels, np.array([3]))
    assert ap3[0] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_song_negatives_leave_out_the_song_and_optionally_its_group():
    songs = np.array([0, 1, 2, 0])
    plain = song_negatives(songs)
    assert not plain[0, 3] and not plain[0, 0] and plain[0, 1] and plain[1, 2]
    grouped = song_negatives(songs, np.array(["a", "a", "b"]))
    assert not grouped[0, 1] and not grouped[1, 3] and grouped[0, 2] and grouped[2, 1]
    assert torch.equal(grouped, grouped.T)


def clustered_songs(n_groups: int = 8, songs_per_group: int = 6, excerpts: int = 3, seed: int = 0,
                    noise_dims: int = 30) -> SongSet:
    """Songs whose soundtrack shows in 4 quiet dimensions, drowned for cosine by loud noisy ones."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, 4))
    rows, song_of, songs, groups = [], [], [], []
    for g in range(n_groups):
        for _ in range(songs_per_group):
            s = len(songs)
            base = np.concatenate([centres[g] * 0.3, 3 * rng.standard_normal(noise_dims)])
            ex = base + np.concatenate([0.05 * rng.standard_normal((excerpts, 4)),
                                        rng.standard_normal((excerpts, noise_dims))], axis=1)
            rows.extend(ex)
            song_of.extend([s] * excerpts)
            songs.append(ex.mean(0))
            groups.append(f"g{g}")
    return SongSet(np.array(rows, np.float32), np.array(song_of), np.array(songs, np.float32), np.array(groups))


def test_subset_renumbers_songs_and_keeps_their_excerpts():
    data = clustered_songs(n_groups=3, songs_per_group=2)
    sub = data.subset(np.array([False, True, False, False, True, True]))
    assert len(sub.songs) == 3 and sub.groups.tolist() == ["g0", "g2", "g2"]
    assert sorted(set(sub.song_of.tolist())) == [0, 1, 2] and len(sub.excerpts) == 9
    assert np.array_equal(sub.excerpts[sub.song_of == 0], data.excerpts[data.song_of == 1])


def test_a_batch_pairs_items_of_one_soundtrack_and_allows_only_other_soundtracks_as_negatives():
    data = clustered_songs()
    cfg = HeadConfig(soundtracks_per_batch=4, songs_per_soundtrack=3, soundtrack_positive=0.5)
    anchors, positives, allowed = sample_batch(data, cfg, np.random.default_rng(0))
    assert anchors.shape == positives.shape == (12, data.excerpts.shape[1])
    rows = {tuple(r): i for i, r in enumerate(data.excerpts.tolist())}
    group_of = lambda t: data.groups[data.song_of[rows[tuple(t.tolist())]]]
    for i in range(12):
        assert group_of(anchors[i]) == group_of(positives[i])
        for j in range(12):
            assert bool(allowed[i, j]) == (group_of(anchors[i]) != group_of(anchors[j]))


def test_split_soundtracks_holds_out_whole_soundtracks():
    groups = np.repeat(np.array(list("abcdefghij")), 3)
    held = split_soundtracks(groups, 0.2, seed=1)
    assert len(set(groups[held])) == 2 and not set(groups[held]) & set(groups[~held])


def test_head_vectors_are_unit_length():
    head = SongHead(10, dim=4)
    v = head.vectors(np.random.default_rng(0).standard_normal((5, 10)))
    assert v.shape == (5, 4) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_trained_head_finds_soundtracks_it_never_saw_that_cosine_on_the_raw_features_misses():
    data = clustered_songs(n_groups=24)
    seen = np.isin(data.groups, [f"g{g}" for g in range(16)])
    train, test = data.subset(seen), data.subset(~seen)
    cfg = HeadConfig(dim=8, steps=300, soundtracks_per_batch=4, songs_per_soundtrack=4, validate_every=50,
                     val_fraction=0.25, lr=1e-2, soundtrack_positive=1.0)
    head, record = fit_head(train, cfg)
    everyone = np.arange(len(test.songs))
    raw = retrieval_scores(test.songs, test.groups, everyone)[1].mean()
    learned = retrieval_scores(head.vectors(test.songs), test.groups, everyone)[1].mean()
    assert learned > raw + 0.2, (raw, learned)
    assert record["best_step"] > 0 and record["val_soundtracks"] == 4 and record["train_soundtracks"] == 12
