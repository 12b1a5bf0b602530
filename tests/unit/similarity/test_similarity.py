"""Song vectors, the song index, `similar`, and the song-level training pieces (synthetic songs only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from audiosim.config import (
    SIMILARITY_AUGMENT,
    SIMILARITY_MODEL,
    SIMILARITY_TRAIN,
    ConfigMismatchError,
    FeatureConfig,
    SimilarityConfig,
    similarity_features,
)
from audiosim.fingerprint.model import Encoder, save_encoder
from audiosim.similarity.vectors import (
    DEFAULT_SIMILARITY_MODEL,
    build_index,
    clip_starts,
    ensure_index,
    load_similarity_model,
    open_index,
    similar,
    song_clips,
    song_vector,
)
from audiosim.training.loop import AudioSet
from audiosim.training.similarity import (
    SongPairs,
    precision_at_k,
    retrieval_metrics,
    song_negatives,
    soundtrack,
    train_similarity,
)

SMALL = SimilarityConfig(clip_hop_seconds=1.0, max_clips=8, n_trees=4)


def _random_model(path: Path, seed: int = 0):
    torch.manual_seed(seed)
    save_encoder(Encoder(SIMILARITY_MODEL, similarity_features()), path, {"kind": "test"})
    return load_similarity_model(path)


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Six 8-second songbook songs at 8 kHz, ingested into a data home."""
    from audiosim.demo.songbook import write_songbook
    from audiosim.ingest.ingest import ingest_many

    root = tmp_path_factory.mktemp("sim")
    paths = write_songbook(root / "songs", n=6, seconds=8.0, sample_rate=8000)
    home = root / "home"
    results = ingest_many(paths, home)
    assert all(r.status == "added" for r in results)
    model = _random_model(root / "model.pt")
    return home, paths, model, root


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
    from audiosim.signal.audio import content_hash
    from audiosim.store.content import FeatureStore

    lm = FeatureStore.for_home(home).get(content_hash(paths[0]))
    v1, v2 = song_vector(lm, model, SMALL), song_vector(lm, model, SMALL)
    assert v1.shape == (128,) and v1.dtype == np.float32
    assert np.isclose(np.linalg.norm(v1), 1.0, atol=1e-5)
    assert np.array_equal(v1, v2)


def test_similar_excludes_query_and_ranks_by_score(songs):
    home, paths, model, _ = songs
    res = similar("1", home, k=3, model=model, cfg=SMALL)
    assert list(res["rank"]) == [1, 2, 3]
    assert 1 not in set(res["id"])
    assert list(res["score"]) == sorted(res["score"], reverse=True)
    assert res["score"].between(-1.0001, 1.0001).all()
    by_path = similar(str(paths[0]), home, k=3, model=model, cfg=SMALL)
    assert list(by_path["id"]) == list(res["id"])


def test_uncatalogued_file_is_analysed_on_the_fly(songs, tmp_path):
    import shutil

    home, paths, model, _ = songs
    copy = tmp_path / "outside.wav"
    shutil.copy(paths[2], copy)
    res = similar(str(copy), home, k=2, model=model, cfg=SMALL)
    assert 3 not in set(res["id"])  # the same content (track 3) is left out
    assert len(res) == 2


def test_vectors_come_from_stored_features_or_a_decode_at_the_model_rate(songs, tmp_path):
    """A narrow-band model reads the stored log-mel; the wide-band one decodes
    the file at its own rate; a narrow-band model made to decode gets the same
    vector as from the store."""
    from audiosim.similarity.vectors import SongVectors, catalogue_vectors
    from audiosim.store.catalog import Catalog
    from audiosim.store.home import DataHome

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
    sv.root = tmp_path / "decoded"
    decoded = sv.get(row.content_hash, row.path)
    assert np.allclose(stored, decoded, atol=1e-4)
    table = catalogue_vectors(home, wide, SMALL)
    assert len(table.vectors) == len(table.tracks) >= 6
    assert np.allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-5)


def test_unreadable_file_is_left_out_with_a_warning(songs, tmp_path):
    """A catalogued file that changed since ingest is named and skipped; the rest get vectors."""
    import shutil

    from audiosim.demo.songbook import write_songbook
    from audiosim.ingest.ingest import ingest_many
    from audiosim.similarity.vectors import catalogue_vectors

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


def test_unknown_track_is_a_lookup_error(songs):
    home, _, model, _ = songs
    with pytest.raises(LookupError, match="no track with id 999"):
        similar("999", home, model=model, cfg=SMALL)


def test_index_checks_model_and_rebuilds_when_stale(songs, tmp_path):
    home, paths, model, root = songs
    idx = build_index(home, model, SMALL)
    assert len(idx) == 6
    other = _random_model(tmp_path / "other.pt", seed=1)
    with pytest.raises(ConfigMismatchError, match=other.digest):
        open_index(home, other, SMALL)
    logs: list[str] = []
    idx2 = ensure_index(home, other, SMALL, log=logs.append)
    assert len(idx2) == 6 and "model or settings changed" in logs[0]
    ann_files = list((Path(home) / "index" / "songs").glob("songs-*.ann"))
    assert len(ann_files) == 1  # the superseded file is removed
    # a catalogue change triggers a rebuild; an unchanged one does not
    logs.clear()
    ensure_index(home, other, SMALL, log=logs.append)
    assert logs == []
    from audiosim.demo.songbook import write_songbook
    from audiosim.ingest.ingest import ingest_many

    extra = write_songbook(root / "more", n=7, seconds=8.0, sample_rate=8000)[-1:]
    ingest_many(extra, home)
    idx3 = ensure_index(home, other, SMALL, log=logs.append)
    assert len(idx3) == 7 and "catalogue changed" in logs[0]


def _toy_audio_set(n_songs: int = 4, seconds: float = 20.0, sr: int | None = None) -> AudioSet:
    sr = sr or similarity_features().sample_rate
    rng = np.random.default_rng(0)
    waves = [torch.from_numpy((0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32)) for _ in range(n_songs)]
    lengths = np.array([len(w) for w in waves])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    block = sr // 4
    audible = [np.arange(0, len(w) - block + 1, block) for w in waves]
    clean = torch.cat(waves)
    return AudioSet(clean, clean.clone(), starts, lengths, [f"s{i}" for i in range(n_songs)], audible, sr)


def test_song_pairs_draw_two_distant_clips_of_distinct_songs():
    data = _toy_audio_set()
    pairs = SongPairs(data, similarity_features(), SIMILARITY_AUGMENT)
    g = torch.Generator().manual_seed(0)
    tr, pos = pairs.positions(4, g)
    assert sorted(tr) == [0, 1, 2, 3]
    assert np.all(np.abs(pos[0] - pos[1]) >= pairs.length - data.sample_rate // 4)
    a, p, tr2 = pairs(4, g)
    f = similarity_features()
    assert a.shape == p.shape == (4, f.n_mels, f.segment_frames)
    assert torch.isfinite(a).all() and torch.isfinite(p).all()
    with pytest.raises(ValueError, match="8000 Hz"):
        SongPairs(_toy_audio_set(sr=8000), f, SIMILARITY_AUGMENT)


def test_retrieval_metrics_perfect_and_chance():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((5, 16))
    clips = [c + 0.01 * rng.standard_normal((10, 16)) for c in centres]
    m = retrieval_metrics(clips, labels=["a", "a", "b", "b", "c"], k=1)
    assert m["half_top1"] == 1.0 and m["clip_top1"] == 1.0
    vec = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=float)
    assert precision_at_k(vec, ["x", "x", "y", "y"], k=1) == 1.0
    assert precision_at_k(vec, ["x", "y", "x", "y"], k=1) == 0.0


def test_soundtrack_labels():
    assert soundtrack("/usr/share/games/hedgewars/Data/Music/x.ogg") == "hedgewars"
    assert soundtrack("/usr/share/scummvm/drascula/audio/1.ogg") == "drascula"
    assert soundtrack("/usr/share/freedroidrpg/data/sound/music/a.ogg") == "freedroidrpg"
    assert soundtrack("/home/me/album/song.ogg") == "album"


@pytest.mark.skipif(not DEFAULT_SIMILARITY_MODEL.is_file(), reason="models/similarity.pt not trained yet")
def test_shipped_model_tells_songs_apart(tmp_path):
    """Two halves of a synthetic song are closer to each other than to other songs."""
    from audiosim.demo.songbook import render, songbook_specs
    from audiosim.training.similarity import song_clip_vectors

    model = load_similarity_model()
    assert model.features.segment_frames == 192 and model.dim == 128
    assert {"data", "train_config", "history", "hardware"} <= set(model.card)
    sr = model.features.sample_rate
    waves = [torch.from_numpy(render(s, sr)) for s in songbook_specs(n=10, seconds=24.0, seed=3)]
    lengths = np.array([len(w) for w in waves])
    data = AudioSet(torch.cat(waves), torch.cat(waves), np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths,
                    [str(i) for i in range(10)], [], sr)
    m = retrieval_metrics(song_clip_vectors(data, model, SimilarityConfig(clip_hop_seconds=1.0)))
    assert m["half_top1"] >= 0.8, m


def test_song_negatives_leave_out_the_song_and_optionally_its_group():
    songs = np.array([0, 1, 2, 0])
    plain = song_negatives(songs)
    assert not plain[0, 3] and not plain[0, 0] and plain[0, 1] and plain[1, 2]
    grouped = song_negatives(songs, np.array(["a", "a", "b"]))
    assert not grouped[0, 1] and not grouped[1, 3] and grouped[0, 2] and grouped[2, 1]
    assert torch.equal(grouped, grouped.T)


def test_short_song_training_keeps_the_best_checkpoint_and_resumes(tmp_path):
    from audiosim.config import TrainConfig

    data = _toy_audio_set(n_songs=4, seconds=12.0)
    cfg = TrainConfig.from_dict({**SIMILARITY_TRAIN.to_dict(), "steps": 4, "batch_size": 4, "validate_every": 2,
                                 "checkpoint_every": 2})
    out = tmp_path / "sim.pt"
    logs: list[str] = []
    card = train_similarity(data, data, out, cfg=cfg, sim_cfg=SMALL, train_groups=["a", "a", "b", "b"],
                            progress=False, log=logs.append)
    assert [h["step"] for h in card["history"]] == [2, 4]
    assert card["selection"]["step"] == card["step"] and "half_top1" in card["selection"]
    assert "another soundtrack" in card["negatives"]
    assert load_similarity_model(out).card["step"] == card["step"]
    # a rerun with the same config resumes from the running checkpoint (here: already finished)
    again = train_similarity(data, data, out, cfg=cfg, sim_cfg=SMALL, progress=False, log=logs.append)
    assert any("resuming from step 4" in m for m in logs) and again["history"] == card["history"]
