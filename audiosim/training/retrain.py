"""Retraining: score a candidate encoder against the current one, promote only a better one.

The weekly retrain (``flows/pipeline.py:retrain_flow``) trains a *candidate*
model with :mod:`audiosim.training.loop` (resumable, one candidate file per ISO
week, :func:`candidate_path`), then uses this module to decide:

1. :func:`score_models` scores the candidate and the current model on the
   same held-out catalogue tracks (the validation side of the catalogue's
   track-level split, which the candidate never trained on); without
   held-out tracks it falls back to the scores in the models' cards;
2. :func:`is_better` compares the scores (a model's score is
   :func:`~audiosim.training.validate.validation_score`, the mean of its
   ``mixed`` and babble hit rates);
3. :func:`promote_model` atomically replaces the current model file (card
   first, checkpoint last) with the candidate.

:func:`decision_markdown` formats the decision for a Prefect artifact.

Example
-------
>>> from audiosim.training.retrain import is_better, validation_score
>>> is_better(validation_score({"mixed-1s": 0.8, "mixed-5s": 0.96}), 0.85)
True
"""

from __future__ import annotations

import datetime as _dt
import shutil
from pathlib import Path
from typing import Any

from audiosim.config import AugmentConfig, TrainConfig
from audiosim.fingerprint.model import load_encoder
from audiosim.store.atomic import atomic_open
from audiosim.store.home import DataHome
from audiosim.training.data import catalogue_track_refs, load_audio_set, split_tracks
from audiosim.training.validate import build_validation, validate, validation_score


def candidate_path(models_dir: str | Path, today: _dt.date | None = None) -> Path:
    """``<models_dir>/candidates/fingerprint-<ISO year>-W<week>.pt``.

    One candidate per week: a retrain interrupted and rerun in the same week
    resumes it (``<candidate>.last.pt``); next week's starts afresh.
    """
    y, w, _ = (today or _dt.date.today()).isocalendar()
    return Path(models_dir) / "candidates" / f"fingerprint-{y}-W{w:02d}.pt"


def is_better(candidate_score: float | None, current_score: float | None, min_gain: float = 0.0) -> bool:
    """True when the candidate should replace the current model.

    A missing current model (or one without a score) is always replaced by a
    scored candidate; an unscored candidate never replaces anything.
    """
    if candidate_score is None:
        return False
    if current_score is None:
        return True
    return candidate_score > current_score + min_gain


def score_models(candidate: str | Path, current: str | Path | None, home: str | Path | DataHome | None) -> dict[str, Any]:
    """Score the candidate and the current model on the same held-out tracks.

    The held-out tracks are the validation side of the catalogue's
    track-level split (:func:`audiosim.training.data.split_tracks`, the same split
    the candidate was trained with), so the candidate never saw them. The
    current model may have (it was trained on another catalogue or split),
    which can only flatter it: a candidate is promoted only when it wins
    anyway. Without held-out tracks, the scores recorded in the models'
    cards are compared instead.

    Parameters
    ----------
    candidate : str or Path
        The candidate checkpoint.
    current : str or Path, optional
        The current checkpoint; missing or None means there is none.
    home : str, Path or DataHome, optional
        Data home whose ``ok`` catalogue tracks are split.

    Returns
    -------
    dict
        ``candidate``, ``current`` (None when there is no current model),
        ``method``, ``candidate_score``, ``current_score`` and the scores
        in the cards, ``candidate_card_score`` and ``current_card_score``.
    """
    cand = load_encoder(candidate)
    cur = load_encoder(current) if current and Path(current).is_file() else None
    out: dict[str, Any] = {
        "candidate": str(candidate), "current": str(current) if cur is not None else None,
        "candidate_card_score": validation_score(cand.identity.card.get("validation")),
        "current_card_score": validation_score(cur.identity.card.get("validation")) if cur is not None else None,
    }
    card = cand.identity.card
    cfg = TrainConfig.from_dict(card["train_config"]) if "train_config" in card else TrainConfig()
    dh = DataHome.resolve(home)
    try:
        tracks = catalogue_track_refs(dh.root)
    except FileNotFoundError:  # no catalogue yet
        tracks = []
    _, held_out = split_tracks(tracks, cfg.val_fraction, cfg.seed)
    val_set = load_audio_set(held_out, cand.features, dh.cache_dir / f"wave-{cand.features.sample_rate}",
                             progress=False) if held_out else None
    if val_set is not None and len(val_set.names):
        val = build_validation(val_set, cand.features, AugmentConfig(), index_hop_seconds=0.5)
        out["method"] = f"head-to-head on {len(val_set.names)} held-out catalogue tracks"
        out["candidate_score"] = validation_score(validate(cand, val))
        out["current_score"] = validation_score(validate(cur, val)) if cur is not None else None
    else:
        out["method"] = "validation scores recorded in the model cards"
        out["candidate_score"], out["current_score"] = out["candidate_card_score"], out["current_card_score"]
    return out


def promote_model(candidate: str | Path, current: str | Path) -> str:
    """Atomically replace ``current`` (and its ``.json`` card) with a copy of ``candidate``.

    The card is written first, then the checkpoint: a reader sees the old
    model or the new one, never half a file.

    Returns
    -------
    str
        The path of the replaced model.
    """
    src, dst = Path(candidate), Path(current)
    card = src.with_suffix(".json")
    if card.is_file():
        with atomic_open(dst.with_suffix(".json"), "wb") as f, card.open("rb") as g:
            shutil.copyfileobj(g, f)
    with atomic_open(dst, "wb") as f, src.open("rb") as g:
        shutil.copyfileobj(g, f)
    return str(dst)


def decision_markdown(d: dict[str, Any]) -> str:
    """Markdown of a retrain decision (the dict of :func:`score_models` plus ``promoted``)."""

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    verdict = "**promoted**: the candidate replaced the current model" if d["promoted"] else \
        "**kept** the current model"
    return "\n".join([
        "# Retrain", "", f"Candidate `{d['candidate']}` vs current `{d['current']}`; {d['method']}.", "",
        "| | candidate | current |", "|---|---:|---:|",
        f"| score (mean of the mixed and babble hit rates) | {fmt(d['candidate_score'])} | {fmt(d['current_score'])} |",
        f"| score in the model card | {fmt(d['candidate_card_score'])} | {fmt(d['current_card_score'])} |",
        "", verdict, "",
    ])
