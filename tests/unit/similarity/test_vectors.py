"""Song analysis of catalogue tracks: one decode of the excerpts gives vector, tags and descriptors, cached."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from audiosim.config import DescriptorConfig
from audiosim.similarity import musicnn
from audiosim.similarity.vectors import (
    SongVectors,
    analyse_file,
    catalogue_frame,
    catalogue_vectors,
    song_analysis_dir,
)
from tests.unit.similarity.conftest import SMALL

# Every test here builds an index or runs a model over songs: seconds each.
pytestmark = pytest.mark.slow


def test_catalogue_tracks_get_a_unit_vector_both_models_tags_and_descriptors(songs):
    home, paths, model, _ = songs
    table = catalogue_vectors(home, model, SMALL)
    assert len(table.tracks) == 6 and table.vectors.shape == (6, model.dim)
    assert np.allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-5)
    for name in ("msd", "mtt"):
        assert table.tags[name].shape == (6, len(musicnn.tag_names(name)))
        assert ((table.tags[name] > 0) & (table.tags[name] < 1)).all()
    assert list(table.descriptors.index) == list(table.tracks.index)
    assert table.descriptors["tempo_bpm"].gt(0).all()


def test_analysis_is_cached_by_model_settings_and_content_hash(songs):
    home, _, model, _ = songs
    tracks = catalogue_frame(home)
    h, p = tracks["content_hash"].iloc[0], tracks["path"].iloc[0]
    sv = SongVectors(home, model, SMALL)
    a = sv.analysis(h, p)
    assert sv.cache.path_for(h).is_file()
    assert sv.cache.root == song_analysis_dir(home, model, SMALL, DescriptorConfig())
    assert model.identity.digest in sv.cache.root.name and SMALL.vector_digest() in sv.cache.root.name
    again = sv.cached(h)
    assert np.array_equal(again.vector, a.vector) and again.descriptors == a.descriptors
    assert np.array_equal(again.tags["mtt"], a.tags["mtt"])
    assert np.allclose(analyse_file(p, model, SMALL).vector, a.vector, atol=1e-6)


def test_an_unreadable_cached_entry_is_computed_again(songs, tmp_path):
    home, _, model, _ = songs
    local = tmp_path / "home"
    shutil.copytree(home, local)
    tracks = catalogue_frame(local)
    h, p = tracks["content_hash"].iloc[0], tracks["path"].iloc[0]
    sv = SongVectors(local, model, SMALL)
    v = sv.get(h, p)
    sv.cache.path_for(h).write_bytes(b"PK truncated")
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
    assert len(table.descriptors) == len(table.tracks) == len(table.vectors)


def test_a_home_without_catalogue_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no catalogue"):
        catalogue_frame(tmp_path / "empty")


def test_songs_analysed_in_one_batch_get_what_each_gets_alone(songs):
    from audiosim.similarity.excerpts import read_excerpts
    from audiosim.similarity.vectors import analyse_batch, analyse_excerpts

    _, paths, model, _ = songs
    excerpts = [read_excerpts(p, DescriptorConfig().sample_rate, SMALL) for p in paths[:3]]
    together = analyse_batch(excerpts, model)
    for ex, a in zip(excerpts, together):
        alone = analyse_excerpts(ex, model)
        assert np.allclose(a.vector, alone.vector, atol=1e-5)
        for m in ("msd", "mtt"):
            assert np.allclose(a.tags[m], alone.tags[m], atol=1e-5)
        assert a.descriptors == alone.descriptors
    assert analyse_batch([], model) == []


def test_the_tag_only_model_hears_just_the_middle_excerpt(songs):
    from audiosim.config import SimilarityConfig
    from audiosim.similarity.excerpts import Excerpts
    from audiosim.similarity.vectors import analyse_excerpts, tag_excerpt

    _, _, model, _ = songs
    sr = DescriptorConfig().sample_rate
    rng = np.random.default_rng(0)
    waves = [rng.normal(0, 0.1, 4 * sr).astype(np.float32) for _ in range(3)]
    a = analyse_excerpts(Excerpts(waves, sr, 60.0), model)
    middle = analyse_excerpts(Excerpts([waves[tag_excerpt(3)]], sr, 60.0), model)
    assert np.allclose(a.tags["mtt"], middle.tags["mtt"], atol=1e-5)
    assert not np.allclose(a.tags["msd"], middle.tags["msd"], atol=1e-5)  # the song model hears all three
    assert tag_excerpt(3) == 1 and tag_excerpt(1) == 0 and SimilarityConfig().excerpt_positions[1] == 0.5


def test_threads_analyse_the_same_songs_the_same_way(songs, tmp_path):
    home, _, model, _ = songs
    tracks = catalogue_frame(home)
    hashes, paths = list(tracks["content_hash"]), list(tracks["path"])
    one, _ = SongVectors(tmp_path / "a", model, SMALL).many(hashes, paths, workers=1)
    two, failed = SongVectors(tmp_path / "b", model, SMALL).many(hashes, paths, workers=2)
    assert not failed and sorted(one) == sorted(two) == list(range(len(paths)))
    for i in one:
        assert np.allclose(one[i].vector, two[i].vector, atol=1e-5)


def test_a_bad_file_in_a_batch_is_named_and_the_rest_of_its_batch_is_analysed(songs, tmp_path):
    home, _, model, _ = songs
    tracks = catalogue_frame(home)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really")
    hashes = list(tracks["content_hash"])[:3] + ["0" * 64]
    paths = list(tracks["path"])[:3] + [str(bad)]
    done, failed = SongVectors(tmp_path / "h", model, SMALL).many(hashes, paths)
    assert sorted(done) == [0, 1, 2] and list(failed) == [3] and "broken.wav" in failed[3]
