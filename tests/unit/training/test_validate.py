"""Validation: fixed seeded queries against every segment of the held-out tracks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosim.config import AugmentConfig, FeatureConfig
from audiosim.fingerprint.model import Encoder
from audiosim.training.validate import build_validation, validate

FC = FeatureConfig()
CONDITIONS = ("clean", "0dB", "5dB", "10dB", "20dB", "mixed-1s", "mixed-5s")


@pytest.mark.slow
def test_the_validation_set_is_fixed_by_its_seed(toy_set):
    val = toy_set
    a = build_validation(val, FC, AugmentConfig(), n_queries=20)
    b = build_validation(val, FC, AugmentConfig(), n_queries=20)
    assert set(a.queries) == set(CONDITIONS)
    assert torch.equal(a.index_segments, b.index_segments)
    for name in CONDITIONS:
        assert torch.equal(a.queries[name][0], b.queries[name][0])
        assert np.array_equal(a.queries[name][1], b.queries[name][1])
    assert a.queries["mixed-5s"][0].shape[-1] > a.queries["mixed-1s"][0].shape[-1]
    # every indexed segment belongs to a validation track
    assert set(np.unique(a.index_emb_tracks)) <= set(range(len(val.names)))


@pytest.mark.slow
def test_every_condition_has_track_offset_and_passage_rates(toy_set):
    val = toy_set
    torch.manual_seed(0)
    rates = validate(Encoder().eval(), build_validation(val, FC, AugmentConfig(), n_queries=20))
    assert set(rates) == {f"{c}{s}" for c in CONDITIONS for s in ("", "@offset", "@passage")}
    for c in CONDITIONS:
        # right place implies right track; a repeat of the passage counts too
        assert 0 <= rates[f"{c}@offset"] <= rates[f"{c}@passage"] <= rates[c] <= 1


def voices(seconds: float = 20.0, sr: int = 8000) -> torch.Tensor:
    """A stand-in speech bank: syllable bursts of harmonic tones, unit RMS."""
    t = torch.arange(int(seconds * sr)) / sr
    x = (torch.sin(2 * np.pi * 3.0 * t) > 0).float() * torch.sin(2 * np.pi * 200.0 * t)
    return x / x.pow(2).mean().sqrt()


@pytest.mark.slow
def test_a_validation_speech_bank_adds_the_babble_conditions(toy_set):
    from audiosim.training.validate import BABBLE_CONDITIONS

    val = build_validation(toy_set, FC, AugmentConfig(), n_queries=20, speech_bank=voices())
    assert set(val.queries) == set(CONDITIONS) | set(BABBLE_CONDITIONS)
    assert val.queries["babble-5s"][0].shape[-1] == val.queries["mixed-5s"][0].shape[-1]
    # the talk is audible: babble queries differ from the clean audio at the same moments
    rates = validate(Encoder().eval(), val)
    assert {"babble-1s", "babble-5s", "chain-5s"} <= set(rates)


def test_a_models_score_averages_the_babble_conditions_when_validated_on_them():
    from audiosim.training.validate import validation_score

    assert validation_score({"mixed-1s": 0.8, "mixed-5s": 1.0}) == pytest.approx(0.9)
    assert validation_score({"mixed-1s": 0.8, "mixed-5s": 1.0, "babble-5s": 0.5, "chain-5s": 0.1}) == pytest.approx(0.6)
    assert validation_score({"babble-5s": 0.5}) is None
