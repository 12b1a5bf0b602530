"""The song model: frozen musicnn features pooled into a unit vector, named by a digest."""

from __future__ import annotations

import numpy as np
import pytest

from audiosim.config import SimilarityConfig
from audiosim.similarity.model import (
    DEFAULT_SIMILARITY_MODEL,
    SongModel,
    cosine_matrix,
    fit_one_patch,
    load_similarity_model,
    mean_vector,
)
from audiosim.similarity.musicnn import MIDLEVEL_DIM, MIN_SAMPLES, PENULTIMATE_DIM


def test_default_song_model_is_the_msd_midlevel_layer_mean_pooled():
    m = load_similarity_model()
    assert m.describe()["model"] == "msd" and m.dim == MIDLEVEL_DIM
    assert m.identity.card["layer"] == "midlevel" and m.identity.card["pooling"] == "mean"
    assert "licence" in m.identity.card and "loss" in m.identity.card
    assert DEFAULT_SIMILARITY_MODEL.is_file()


def test_layer_and_model_change_the_digest():
    digests = {SongModel(SimilarityConfig(model=n, layer=la)).identity.digest
               for n in ("msd", "mtt") for la in ("midlevel", "penultimate")}
    assert len(digests) == 4
    assert SongModel(SimilarityConfig(layer="penultimate")).dim == PENULTIMATE_DIM


def test_only_the_shipped_weights_are_a_song_model(tmp_path):
    with pytest.raises(ValueError, match="not a song model"):
        load_similarity_model(tmp_path / "similarity.pt")
    assert load_similarity_model(DEFAULT_SIMILARITY_MODEL).dim == MIDLEVEL_DIM


def test_song_vector_is_unit_and_deterministic():
    rng = np.random.default_rng(0)
    waves = [0.1 * rng.standard_normal(16000 * 4).astype(np.float32) for _ in range(2)]
    m = load_similarity_model()
    v = m.song_vector(waves)
    assert v.shape == (MIDLEVEL_DIM,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(v, m.song_vector(waves))


def test_a_wave_shorter_than_one_patch_is_tiled():
    assert fit_one_patch(np.ones(1000, np.float32)).size >= MIN_SAMPLES
    with pytest.raises(ValueError, match="no audio"):
        fit_one_patch(np.zeros(0, np.float32))


def test_mean_vector_is_unit_and_cosines_are_of_rows():
    v = mean_vector(np.array([[3.0, 0.0], [3.0, 0.0]]))
    assert np.allclose(v, [1.0, 0.0])
    c = cosine_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    assert np.allclose(c, np.eye(2))
