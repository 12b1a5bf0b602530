"""The encoder and its checkpoints."""

import io
import os
from pathlib import Path

import pytest
import torch

from audiosim.config import (
    ConfigMismatchError,
    FeatureConfig,
    IndexConfig,
    ModelConfig,
    TrainConfig,
)
from audiosim.fingerprint.model import (
    DEFAULT_FINGERPRINT_MODEL,
    CheckpointError,
    Encoder,
    UnsafeCheckpointError,
    load_checkpoint,
    load_encoder,
    save_encoder,
)
from audiosim.index.manifest import Manifest
from audiosim.match.matcher import Matcher
from audiosim.signal import features
from audiosim.signal.features import shifted_similarity
from audiosim.store.home import DataHome
from audiosim.training.loop import TripletTask, fit_triplets

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


# --------------------------------------------------------------------------
# Checkpoints are user-reachable files: tensors and plain data only
# --------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this creates a marker file (as a crafted ``.pt`` could run anything)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted_checkpoint(path: Path, marker: Path) -> Path:
    """A ``.pt`` shaped like an audiosim checkpoint whose card runs code when unpickled."""
    buf = io.BytesIO()
    torch.save({"state_dict": Encoder().state_dict(), "card": _RunsCode(marker)}, buf)
    path.write_bytes(buf.getvalue())
    return path


def test_the_shipped_model_loads_as_plain_data():
    path = DEFAULT_FINGERPRINT_MODEL
    assert set(torch.load(path, map_location="cpu", weights_only=True)) == {"state_dict", "card"}
    assert load_encoder(path).identity.digest


def test_a_crafted_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    evil = _crafted_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pt: refused.*could run code.*posix\.system"):
        load_encoder(evil)
    assert not marker.exists()
    assert issubclass(UnsafeCheckpointError, ValueError)


def test_a_file_that_is_no_checkpoint_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable model checkpoint"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match=r"plain\.pt: not an audiosim model checkpoint"):
        load_encoder(plain)


def test_an_index_whose_manifest_names_a_crafted_model_is_refused(tmp_path):
    """A copied data home cannot run code at the next identify through ``model.path``."""
    marker = tmp_path / "ran"
    evil = _crafted_checkpoint(tmp_path / "evil.pt", marker)
    enc = Encoder()
    home = DataHome(tmp_path / "home")
    home.index_dir.mkdir(parents=True)
    Manifest(model_digest="0123456789abcdef", model_path=str(evil), model_step=None, feature_config=enc.features,
             config=IndexConfig(), dim=enc.dim, generation=1).save(home.index_dir)
    with pytest.raises(UnsafeCheckpointError, match="evil.pt"):
        Matcher(home)
    assert not marker.exists()


@pytest.mark.slow
def test_a_crafted_resume_file_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    out = tmp_path / "fp.pt"
    _crafted_checkpoint(tmp_path / "fp.last.pt", marker)

    def never(*args):
        raise AssertionError("training must not start")

    task = TripletTask(sample=never, validate=never, score=never)
    with pytest.raises(UnsafeCheckpointError, match=r"fp\.last\.pt"):
        fit_triplets(Encoder(), task, out, TrainConfig(steps=1), torch.Generator(), {}, progress=False)
    assert not marker.exists()


def test_a_resume_checkpoint_holds_only_plain_data(tmp_path):
    """Optimiser state, RNG states and counters: all load with ``weights_only=True``."""
    model = Encoder()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, FC.n_mels, FC.segment_frames)).sum().backward()
    opt.step()
    g = torch.Generator().manual_seed(3)
    path = tmp_path / "fp.last.pt"
    save_encoder(model, path, {"train_config": TrainConfig().to_dict()}, optimizer=opt.state_dict(),
                 generator=g.get_state(), torch_rng=torch.get_rng_state(), step=4, history=[{"step": 4}],
                 best=0.5, elapsed=1.5)
    ck = load_checkpoint(path)
    assert ck["step"] == 4 and torch.equal(ck["generator"], g.get_state())
    opt.load_state_dict(ck["optimizer"])


def test_saving_refuses_what_loading_would_refuse(tmp_path):
    with pytest.raises(TypeError, match="pathlib"):
        save_encoder(Encoder(), tmp_path / "m.pt", {"data": Path("/music")})
    assert not (tmp_path / "m.pt").exists()
