"""The encoder, its checkpoints, and a short training run on the songbook."""

import numpy as np
import pytest
import torch

from audiosim.config import (
    AugmentConfig,
    ConfigMismatchError,
    FeatureConfig,
    ModelConfig,
    TrainConfig,
)
from audiosim.fingerprint.model import Encoder, load_encoder, save_encoder
from audiosim.signal import features
from audiosim.signal.features import shifted_similarity
from audiosim.training.loop import (
    TrackRef,
    build_validation,
    load_audio_set,
    negative_mask,
    split_tracks,
    train_encoder,
    validate,
)

FC = FeatureConfig()


def test_output_is_l2_normalised_and_sized():
    model = Encoder(ModelConfig(embedding_dim=64)).eval()
    x = torch.randn(5, FC.n_mels, FC.segment_frames)
    y = model(x)
    assert y.shape == (5, 64)
    assert torch.allclose(y.norm(dim=1), torch.ones(5), atol=1e-5)


def test_gain_does_not_change_the_embedding():
    model = Encoder().eval()
    wave = torch.randn(1, FC.segment_samples) * 0.1
    a = model.embed(features.log_mel(wave, FC))
    b = model.embed(features.log_mel(wave * 0.25, FC))
    assert torch.allclose(a, b, atol=1e-4)


def test_checkpoint_round_trip_and_card(tmp_path):
    model = Encoder().eval()
    path = tmp_path / "m.pt"
    save_encoder(model, path, {"note": "test"})
    again = load_encoder(path, FC)
    x = torch.randn(3, FC.n_mels, FC.segment_frames)
    assert torch.allclose(model.embed(x), again.embed(x))
    assert again.card["note"] == "test"
    assert again.card["feature_config"] == FC.to_dict()
    assert (tmp_path / "m.json").is_file()
    assert len(again.digest) == 16


def test_checkpoint_refuses_other_feature_settings(tmp_path):
    path = tmp_path / "m.pt"
    save_encoder(Encoder(), path)
    with pytest.raises(ConfigMismatchError, match="n_mels"):
        load_encoder(path, FeatureConfig(n_mels=32))


def test_split_is_by_track_and_stable():
    tracks = [TrackRef(f"t{i}.wav", f"{i:064x}") for i in range(200)]
    train, val = split_tracks(tracks, 0.2, seed=0)
    assert not {t.content_hash for t in train} & {t.content_hash for t in val}
    assert 20 < len(val) < 60
    # adding tracks never moves an existing one
    train2, val2 = split_tracks(tracks + [TrackRef("new.wav", "f" * 64)], 0.2, seed=0)
    assert {t.path for t in val} <= {t.path for t in val2}


def test_negative_mask_excludes_nearby_moments_of_the_same_track():
    m = negative_mask(np.array([0, 0, 0, 1]), np.array([10.0, 11.0, 30.0, 10.0]), 2.0)
    assert not m[0, 1] and not m[0, 0]
    assert m[0, 2] and m[0, 3]


def test_negative_mask_excludes_repeats_of_the_same_passage():
    g = torch.Generator().manual_seed(0)
    segs = torch.randn(4, 64, 60, generator=g)
    segs[1] = segs[0].roll(8, dims=-1)  # the passage again, 8 frames later (a loop)
    segs[3] = segs[2] + 0.05 * torch.randn(64, 60, generator=g)  # same sound in another track
    tracks, times = np.array([0, 0, 1, 2]), np.array([5.0, 65.0, 5.0, 5.0])
    plain = negative_mask(tracks, times, 2.0)
    assert plain[0, 1] and plain[2, 3]
    m = negative_mask(tracks, times, 2.0, segs, max_similarity=0.85, max_lag=16)
    assert not m[0, 1] and not m[1, 0] and not m[2, 3]
    assert m[0, 2] and m[1, 3]
    # a shift beyond max_lag is not forgiven
    far = negative_mask(tracks, times, 2.0, segs, max_similarity=0.85, max_lag=2)
    assert far[0, 1]


def test_shifted_similarity_finds_the_best_lag():
    x = torch.randn(2, 8, 60)
    x[1] = x[0].roll(-8, dims=-1)
    sim = shifted_similarity(x, 8, step=4)
    assert sim[0, 1] > 0.99 and torch.allclose(sim, sim.T)
    assert shifted_similarity(x, 4, step=4)[0, 1] < 0.5


@pytest.fixture(scope="module")
def songbook_sets(tmp_path_factory):
    from audiosim.demo.songbook import write_songbook

    folder = tmp_path_factory.mktemp("songs")
    paths = write_songbook(folder, n=10, seconds=20.0, sample_rate=8000)
    refs = [TrackRef(str(p), f"{i:064x}", p.stem) for i, p in enumerate(paths)]
    cache = tmp_path_factory.mktemp("cache")
    train = load_audio_set(refs[:7], FC, cache, progress=False)
    val = load_audio_set(refs[7:], FC, cache, progress=False)
    return train, val


def test_short_training_lowers_loss_and_beats_chance(songbook_sets, tmp_path):
    train, val = songbook_sets
    torch.manual_seed(0)
    cfg = TrainConfig(steps=60, batch_size=32, validate_every=60, checkpoint_every=30, mining="batch_hard",
                      lr=2e-3)
    logs = []
    card = train_encoder(train, val, tmp_path / "fp.pt", FC, ModelConfig(), AugmentConfig(), cfg,
                         progress=False, log=logs.append)
    hist = card["history"]
    assert hist[-1]["step"] == 60
    val_set = build_validation(val, FC, AugmentConfig(), n_queries=100)
    untrained = validate(Encoder(), val_set)
    trained = validate(load_encoder(tmp_path / "fp.pt"), val_set)
    # three held-out songs: chance is 1/3 for the track, far less for track and offset
    assert trained["clean"] > untrained["clean"] + 0.15
    assert trained["clean@offset"] > untrained["clean@offset"] + 0.15
    assert trained["mixed-5s@offset"] > untrained["mixed-5s@offset"]
    # a repeat of the passage counts in @passage, never less than @offset
    assert all(trained[f"{k}@passage"] >= trained[f"{k}@offset"] for k in ("clean", "mixed-1s", "mixed-5s"))


def test_fine_tuning_starts_from_the_given_weights(songbook_sets, tmp_path):
    train, val = songbook_sets
    start = Encoder()
    with torch.no_grad():
        for p in start.parameters():
            p.add_(0.01)
    save_encoder(start, tmp_path / "start.pt", {})
    cfg = TrainConfig(steps=2, batch_size=8, lr=1e-9, validate_every=2, checkpoint_every=2,
                      init_from=str(tmp_path / "start.pt"))
    logs = []
    train_encoder(train, val, tmp_path / "ft.pt", FC, cfg=cfg, progress=False, log=logs.append)
    tuned = dict(load_encoder(tmp_path / "ft.pt").named_parameters())
    # a learning rate of 1e-9 leaves the weights where they started (BatchNorm's
    # running statistics do move, so compare parameters, not embeddings)
    for name, p in start.named_parameters():
        assert torch.allclose(tuned[name], p, atol=1e-6), name
    assert not torch.allclose(tuned["head.2.weight"], Encoder().head[2].weight, atol=1e-3)
    assert any("starting from the weights" in m for m in logs)


def test_interrupted_training_resumes(songbook_sets, tmp_path):
    train, val = songbook_sets
    cfg = TrainConfig(steps=8, batch_size=16, validate_every=6, checkpoint_every=4)

    class Stop(Exception):
        pass

    def stop_at_first_validation(msg):
        if msg.startswith("{"):
            raise Stop

    with pytest.raises(Stop):
        train_encoder(train, val, tmp_path / "fp.pt", FC, cfg=cfg, progress=False, log=stop_at_first_validation)
    logs = []
    card = train_encoder(train, val, tmp_path / "fp.pt", FC, cfg=cfg, progress=False, log=logs.append)
    assert any("resuming from step 4" in m for m in logs)
    assert card["history"][-1]["step"] == 8


def test_inference_copy_folds_batchnorm_and_gives_the_same_embeddings():
    model = Encoder()
    with torch.no_grad():  # non-trivial running statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    fast = model.for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(16, FC.n_mels, FC.segment_frames) * 10 - 40
    assert torch.allclose(fast.embed(x), model.embed(x), atol=1e-5)
