"""Song vectors of catalogue tracks: from stored features or a decode, cached by content hash."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from audiosim.config import (
    SIMILARITY_MODEL,
    FeatureConfig,
    SimilarityConfig,
    similarity_features,
)
from audiosim.fingerprint.model import Encoder, model_digest, save_encoder
from audiosim.similarity.model import load_similarity_model
from audiosim.similarity.vectors import SongVectors, catalogue_frame, catalogue_vectors
from audiosim.store.catalog import Catalog
from audiosim.store.content import ContentStore
from audiosim.store.home import DataHome

SMALL = SimilarityConfig(clip_hop_seconds=1.0, max_clips=8, n_trees=4)


def test_vectors_come_from_stored_features_or_a_decode_at_the_model_rate(songs, tmp_path):
    """A narrow-band model reads the stored log-mel; the wide-band one decodes
    the file at its own rate; a narrow-band model made to decode gets the same
    vector as from the store."""
    home, paths, wide, _ = songs
    assert wide.features.sample_rate == 16000
    torch.manual_seed(2)
    save_encoder(Encoder(SIMILARITY_MODEL, similarity_features(FeatureConfig())), tmp_path / "narrow.pt", {"kind": "test"})
    narrow = load_similarity_model(tmp_path / "narrow.pt")
    with Catalog(DataHome.resolve(home).catalog_path) as cat:
        row = cat.get(1)
    sv = SongVectors(home, narrow, SMALL)
    assert sv.from_store and not SongVectors(home, wide, SMALL).from_store
    stored = sv.get(row.content_hash)
    sv.from_store = False
    sv.cache = ContentStore(tmp_path / "decoded", ".npy")
    decoded = sv.get(row.content_hash, row.path)
    assert np.allclose(stored, decoded, atol=1e-4)
    table = catalogue_vectors(home, wide, SMALL)
    assert len(table.vectors) == len(table.tracks) >= 6
    assert np.allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-5)


def test_vectors_are_cached_by_model_config_and_content_hash(songs):
    home, _, model, _ = songs
    sv = SongVectors(home, model, SMALL)
    h = catalogue_frame(home)["content_hash"].iloc[0]
    v = sv.get(h, catalogue_frame(home)["path"].iloc[0])
    folder = DataHome(home).cache_dir / "song-vectors" / f"{model_digest(model)}-{SMALL.digest()}"
    path = folder / h[:2] / f"{h}.npy"
    assert path.is_file() and np.array_equal(np.load(path), v)
    assert np.array_equal(sv.cached(h), v)


def test_an_unreadable_cached_vector_is_computed_again(songs, tmp_path):
    home, _, model, _ = songs
    local = tmp_path / "home"
    shutil.copytree(home, local)
    tracks = catalogue_frame(local)
    h, p = tracks["content_hash"].iloc[0], tracks["path"].iloc[0]
    sv = SongVectors(local, model, SMALL)
    v = sv.get(h, p)
    sv.cache.path_for(h).write_bytes(b"\x93NUMPY truncated")
    assert sv.cached(h) is None
    assert np.array_equal(sv.get(h, p), v)


def test_unreadable_file_is_left_out_with_a_warning(songs, tmp_path):
    """A catalogued file that changed since ingest is named and skipped; the rest get vectors."""
    from audiosim.demo.songbook import write_songbook
    from audiosim.ingest.ingest import ingest_many

    home, paths, model, _ = songs
    local = tmp_path / "home"
    shutil.copytree(home, local)
    victim = tmp_path / "victim.wav"
    shutil.copy(write_songbook(tmp_path / "more", n=7, seconds=8.0, sample_rate=8000)[-1], victim)
    ingest_many([victim], local)
    victim.write_bytes(b"not audio any more")
    with pytest.warns(UserWarning, match="victim.wav"):
        table = catalogue_vectors(local, model, SMALL)
    assert str(victim) not in set(table.tracks["path"]) and len(table.tracks) >= 6


def test_a_home_without_catalogue_or_features_is_named(tmp_path, songs):
    _, _, model, _ = songs
    with pytest.raises(FileNotFoundError, match="audiosim ingest"):
        SongVectors(tmp_path / "empty", model, SMALL)
    with pytest.raises(FileNotFoundError, match="no catalogue"):
        catalogue_frame(tmp_path / "empty")
