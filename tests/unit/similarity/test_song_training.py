"""Song-level training pieces: pairs of clips, negatives, retrieval metrics, a short run, the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosim.config import (
    SIMILARITY_AUGMENT,
    SIMILARITY_TRAIN,
    SimilarityConfig,
    similarity_features,
)
from audiosim.similarity.model import DEFAULT_SIMILARITY_MODEL, load_similarity_model
from audiosim.similarity.song_training import (
    SongPairs,
    precision_at_k,
    retrieval_metrics,
    song_clip_vectors,
    song_negatives,
    train_similarity,
)
from audiosim.training.data import AudioSet

SMALL = SimilarityConfig(clip_hop_seconds=1.0, max_clips=8, n_trees=4)


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


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_SIMILARITY_MODEL.is_file(), reason="models/similarity.pt not trained yet")
def test_shipped_model_tells_songs_apart(tmp_path):
    """Two halves of a synthetic song are closer to each other than to other songs."""
    from audiosim.demo.songbook import render, songbook_specs

    model = load_similarity_model()
    assert model.features.segment_frames == 192 and model.dim == 128
    assert {"data", "train_config", "history", "hardware"} <= set(model.identity.card)
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
    assert load_similarity_model(out).identity.card["step"] == card["step"]
    # a rerun with the same config resumes from the running checkpoint (here: already finished)
    again = train_similarity(data, data, out, cfg=cfg, sim_cfg=SMALL, progress=False, log=logs.append)
    assert any("resuming from step 4" in m for m in logs) and again["history"] == card["history"]
