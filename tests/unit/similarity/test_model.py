"""The song model: clips of a song, its vector, cosine maths."""

from __future__ import annotations

import numpy as np

from audiosim.config import SimilarityConfig, similarity_features
from audiosim.signal.audio import content_hash
from audiosim.similarity.model import (
    clip_starts,
    cosine_matrix,
    mean_vector,
    song_clips,
    song_vector,
)
from audiosim.store.content import FeatureStore

SMALL = SimilarityConfig(clip_hop_seconds=1.0, max_clips=8, n_trees=4)


def test_clip_starts_spread_and_capped():
    f = similarity_features()
    lm = np.zeros((f.n_mels, 64 * 60), np.float32)  # one minute, loud enough
    lm[:] = 2.0
    starts = clip_starts(lm, f, SimilarityConfig(clip_hop_seconds=1.0, max_clips=10))
    assert len(starts) == 10
    assert starts[0] == 0 and starts[-1] == 64 * 60 - f.segment_frames - (64 * 60 - f.segment_frames) % 64
    assert np.all(np.diff(starts) > 0)


def test_short_song_is_tiled_to_one_clip():
    f = similarity_features()
    clips = song_clips(np.random.default_rng(0).standard_normal((f.n_mels, 50)).astype(np.float32), f)
    assert clips.shape == (1, f.n_mels, f.segment_frames)


def test_song_vector_is_unit_and_deterministic(songs):
    home, paths, model, _ = songs
    lm = FeatureStore.for_home(home).get(content_hash(paths[0]))
    v1, v2 = song_vector(lm, model, SMALL), song_vector(lm, model, SMALL)
    assert v1.shape == (128,) and v1.dtype == np.float32
    assert np.isclose(np.linalg.norm(v1), 1.0, atol=1e-5)
    assert np.array_equal(v1, v2)


def test_mean_vector_is_unit_and_cosines_are_of_rows():
    v = mean_vector(np.array([[3.0, 0.0], [0.0, 4.0]]))
    assert v.dtype == np.float32 and np.isclose(np.linalg.norm(v), 1.0)
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert np.allclose(cosine_matrix(a), np.eye(2))
    assert np.allclose(cosine_matrix(a, np.array([[1.0, 1.0]])), [[2**-0.5], [2**-0.5]])
