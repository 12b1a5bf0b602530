"""The encoder and its checkpoints."""

import pytest
import torch

from audiosim.config import ConfigMismatchError, FeatureConfig, ModelConfig
from audiosim.fingerprint.model import Encoder, load_encoder, save_encoder
from audiosim.signal import features
from audiosim.signal.features import shifted_similarity

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
    assert again.identity.card["note"] == "test"
    assert again.identity.card["feature_config"] == FC.to_dict()
    assert (tmp_path / "m.json").is_file()
    assert len(again.identity.digest) == 16 and again.identity.path == str(path.resolve())


def test_checkpoint_refuses_other_feature_settings(tmp_path):
    path = tmp_path / "m.pt"
    save_encoder(Encoder(), path)
    with pytest.raises(ConfigMismatchError, match="n_mels"):
        load_encoder(path, FeatureConfig(n_mels=32))


def test_shifted_similarity_finds_the_best_lag():
    x = torch.randn(2, 8, 60)
    x[1] = x[0].roll(-8, dims=-1)
    sim = shifted_similarity(x, 8, step=4)
    assert sim[0, 1] > 0.99 and torch.allclose(sim, sim.T)
    assert shifted_similarity(x, 4, step=4)[0, 1] < 0.5


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
