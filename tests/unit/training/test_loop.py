"""The training loop: schedules, pacing, and short runs on the songbook (train, fine-tune, resume)."""

from __future__ import annotations

import pytest
import torch

from audiosim.config import AugmentConfig, FeatureConfig, ModelConfig, TrainConfig
from audiosim.fingerprint.model import Encoder, load_encoder, save_encoder
from audiosim.training.loop import _replan, lr_at, mining_at, train_encoder
from audiosim.training.validate import build_validation, validate

FC = FeatureConfig()


def test_learning_rate_warms_up_then_decays_to_five_percent():
    cfg = TrainConfig(steps=1000, lr=1e-3)
    assert lr_at(0, cfg) == pytest.approx(1e-3 / 200)
    assert lr_at(199, cfg) == pytest.approx(1e-3)
    assert lr_at(200, cfg) == pytest.approx(1e-3)
    assert lr_at(600, cfg) < lr_at(400, cfg) < 1e-3
    assert lr_at(1000, cfg) == pytest.approx(5e-5)
    assert lr_at(5000, cfg) == pytest.approx(5e-5)  # past the end it stays at the floor


def test_mining_switches_from_semi_hard_to_hard():
    cfg = TrainConfig(steps=100, mining="semi_hard_then_hard", semi_hard_fraction=0.3)
    assert [mining_at(s, cfg) for s in (0, 29, 30, 99)] == ["semi_hard", "semi_hard", "batch_hard", "batch_hard"]
    assert mining_at(0, TrainConfig(mining="batch_all")) == "batch_all"


def test_replanning_only_ever_cuts_steps_to_fit_the_time():
    cfg = TrainConfig(steps=1000)
    assert _replan(cfg, 20, 60.0, 10.0).steps == 200  # 3 s a step, 10 minutes
    assert _replan(cfg, 20, 1.0, 60.0) is cfg  # fast enough: unchanged, never more steps
    assert _replan(cfg, 20, 700.0, 10.0).steps == 21  # already late: at least one more step


@pytest.mark.slow
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
    assert card["loss"] == {"name": "triplet", "formula": "max(0, d(a, p) - d(a, n) + margin)",
                            "distance": cfg.distance, "margin": cfg.margin}  # the card names its loss
    val_set = build_validation(val, FC, AugmentConfig(), n_queries=100)
    untrained = validate(Encoder(), val_set)
    trained = validate(load_encoder(tmp_path / "fp.pt"), val_set)
    # three held-out songs: chance is 1/3 for the track, far less for track and offset
    assert trained["clean"] > untrained["clean"] + 0.15
    assert trained["clean@offset"] > untrained["clean@offset"] + 0.15
    assert trained["mixed-5s@offset"] > untrained["mixed-5s@offset"]
    # a repeat of the passage counts in @passage, never less than @offset
    assert all(trained[f"{k}@passage"] >= trained[f"{k}@offset"] for k in ("clean", "mixed-1s", "mixed-5s"))


@pytest.mark.slow
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


@pytest.mark.slow
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
