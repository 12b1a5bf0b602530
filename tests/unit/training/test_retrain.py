"""The retrain decision: one candidate a week, scores, promotion only of a better model."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import torch

from audiosim.fingerprint.model import Encoder, save_encoder
from audiosim.training import retrain as R


def _random_model(path: Path, score: float | None = None, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    card = {"note": "untrained, for tests"}
    if score is not None:
        card["validation"] = {"step": 1, "mixed-1s": score, "mixed-5s": score}
    save_encoder(Encoder(), path, card)
    return path


def test_candidate_path_is_one_per_iso_week(tmp_path: Path) -> None:
    assert R.candidate_path(tmp_path, dt.date(2026, 11, 23)) == tmp_path / "candidates" / "fingerprint-2026-W48.pt"
    assert R.candidate_path(tmp_path, dt.date(2027, 1, 1)).name == "fingerprint-2026-W53.pt"


def test_is_better_and_scores() -> None:
    assert R.validation_score({"mixed-1s": 0.5, "mixed-5s": 0.9}) == pytest.approx(0.7)
    assert R.validation_score({"mixed-1s": 0.5}) is None
    assert R.validation_score(None) is None
    assert R.is_better(0.8, 0.7)
    assert not R.is_better(0.7, 0.7)
    assert not R.is_better(0.75, 0.7, min_gain=0.1)
    assert R.is_better(0.1, None)  # nothing to lose
    assert not R.is_better(None, 0.1)
    assert not R.is_better(None, None)


def test_without_held_out_tracks_the_cards_scores_decide(tmp_path: Path, home) -> None:
    cand = _random_model(tmp_path / "cand.pt", 0.9, seed=1)
    cur = _random_model(tmp_path / "cur.pt", 0.5, seed=2)
    d = R.score_models(cand, cur, home)  # the home has no catalogue yet
    assert d["method"] == "validation scores recorded in the model cards"
    assert d["candidate_score"] == pytest.approx(0.9) and d["current_score"] == pytest.approx(0.5)
    none = R.score_models(cand, tmp_path / "missing.pt", home)
    assert none["current"] is None and none["current_score"] is None


def test_promotion_copies_the_candidate_and_its_card(tmp_path: Path) -> None:
    cand = _random_model(tmp_path / "cand.pt", 0.9, seed=1)
    cur = _random_model(tmp_path / "cur.pt", 0.5, seed=2)
    assert R.promote_model(cand, cur) == str(cur)
    assert cur.read_bytes() == cand.read_bytes()
    assert cur.with_suffix(".json").read_text() == cand.with_suffix(".json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cand.json", "cand.pt", "cur.json", "cur.pt"]


def test_decision_markdown_names_the_verdict_and_both_scores() -> None:
    d = {"candidate": "c.pt", "current": "m.pt", "method": "m", "candidate_score": 0.8, "current_score": None,
         "candidate_card_score": 0.75, "current_card_score": None}
    kept = R.decision_markdown({**d, "promoted": False})
    assert "**kept**" in kept and "0.8000" in kept and "| - |" in kept
    assert "**promoted**" in R.decision_markdown({**d, "promoted": True})
