"""The whole pipeline as one Prefect flow, and the weekly retrain.

``pipeline_flow`` chains the stage flows as sub-flows, each usable alone:

1. ``ingest`` (:func:`flows.ingest.ingest_flow`) over the given paths;
   unchanged files are skipped without being read;
2. ``retrain`` (:func:`retrain_flow`), only with ``train=True``;
3. ``index`` (:func:`flows.index.index_flow`): only new or changed tracks
   are embedded (into a new shard); with nothing new it publishes nothing;
4. ``playlist-report`` (:func:`flows.report.report_flow`), only when a
   playlist is given.

So a scheduled run over a folder where nothing changed costs a directory
walk, a ``stat`` per file and one catalogue/manifest comparison.

Feature extraction fans out over the task runner chosen by ``workers`` /
``dask_address`` (:mod:`audiosim.runners`): threads, a local Dask cluster
of worker processes, or an existing Dask scheduler. The index update is one
task (:func:`audiosim.index.update` embeds and publishes under the index's
writer lock), so it runs in the flow's process whatever the runner.

``retrain_flow`` trains a *candidate* model (:func:`flows.train.train_flow`,
resumable, one candidate file per ISO week), scores it and the current model
on the same held-out catalogue tracks, and only if the candidate is better:
rebuilds the index with it, then atomically replaces the current model file.

Example
-------
>>> from flows.pipeline import pipeline_flow
>>> summary = pipeline_flow(["~/Music"], home="data", workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import shutil
from pathlib import Path
from typing import Any, Sequence

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from audiosim.ingest import count_statuses
from audiosim.model import DEFAULT_FINGERPRINT_MODEL
from audiosim.runners import RunnerSpec, prefect_api_for_workers
from audiosim.store import DataHome
from flows.index import index_flow
from flows.ingest import ingest_flow
from flows.report import report_flow
from flows.train import train_flow

SCORE_KEYS = ("mixed-1s", "mixed-5s")
"""Validation hit rates whose mean is a model's score (as in :mod:`audiosim.train`)."""


# --------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------


@flow(name="pipeline", log_prints=False, persist_result=False)
def pipeline_flow(
    paths: Sequence[str] = ("music",),
    home: str | None = None,
    train: bool = False,
    train_steps: int | None = None,
    index: bool = True,
    model: str | None = None,
    calibrate: bool = True,
    playlist: str | None = None,
    workers: int = 1,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Ingest, optionally retrain, update the index, optionally report.

    Parameters
    ----------
    paths : list of str
        Files, folders (searched recursively) and path lists to ingest; a
        watched folder for the scheduled deployment.
    home : str, optional
        Data home (default ``$AUDIOSIM_HOME`` or ``./data``).
    train : bool
        Run :func:`retrain_flow` after the ingest (the model is replaced
        only if the new one validates better).
    train_steps : int, optional
        Training steps for ``train`` (default: ``TrainConfig().steps``).
    index : bool
        Update the fingerprint index (embeds only new or changed tracks).
    model : str, optional
        Encoder checkpoint for the index (default: the index's own, else
        ``models/fingerprint.pt``).
    calibrate : bool
        Recalibrate the no-match thresholds when the index gained tracks.
    playlist : str, optional
        Write the playlist report of this playlist (M3U, text or CSV list,
        or folder) at the end.
    workers : int
        1: ingest with one thread; N > 1: a local Dask cluster of N worker
        processes; with ``dask_address``, tracks in flight (default: twice
        the scheduler's worker threads).
    dask_address : str, optional
        Existing Dask scheduler (``tcp://host:8786``) to fan ingest out to.

    Returns
    -------
    dict
        ``ingest`` (counts), ``train`` (the retrain decision or None),
        ``index`` (one dict per index step, or None), ``report`` (path of
        the HTML report or None), ``runner`` (where ingest ran).
    """
    logger = get_run_logger()
    root = str(DataHome.resolve(home).root)
    spec = RunnerSpec(workers=workers, dask=dask_address)
    summary: dict[str, Any] = {"home": root, "runner": spec.describe(), "train": None, "index": None, "report": None}

    ingest = ingest_flow.with_options(task_runner=spec.task_runner())
    with prefect_api_for_workers(spec):
        results = ingest(list(paths), home=root, workers=spec.in_flight())
    summary["ingest"] = count_statuses(results)
    logger.info("ingest (%s): %s", spec.describe(), summary["ingest"])

    if train:
        summary["train"] = retrain_flow(home=root, steps=train_steps)

    if index:
        steps = index_flow(home=root, model=model, calibrate=calibrate)
        summary["index"] = [r.to_dict() for r in steps]

    if playlist:
        summary["report"] = report_flow(playlist, home=root)

    create_markdown_artifact(key="pipeline-summary", markdown=summary_markdown(summary),
                             description=f"Pipeline run over {', '.join(map(str, paths))}")
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    """Markdown of what each stage of a pipeline run did."""
    c = summary.get("ingest") or {}
    lines = [
        "# Pipeline run", "", f"Data home: `{summary['home']}`; ingest on {summary['runner']}.", "",
        "| stage | result |", "|---|---|",
        f"| ingest | {c.get('added', 0)} added, {c.get('updated', 0)} updated, "
        f"{c.get('skipped', 0)} skipped, {c.get('failed', 0)} failed |",
    ]
    t = summary.get("train")
    if t is not None:
        verdict = "promoted" if t.get("promoted") else "kept the current model"
        lines.append(f"| train | candidate {t.get('candidate_score')} vs current {t.get('current_score')}: {verdict} |")
    for step in summary.get("index") or []:
        lines.append(
            f"| index {step['action']} | generation {step['generation']}, +{step['added_tracks']} tracks, "
            f"{step['tombstoned_tracks']} tombstoned, {step['shards']} shards, {step['index_items']} items |"
        )
    if summary.get("report"):
        lines.append(f"| report | `{summary['report']}` |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Retrain: train a candidate, keep it only if it validates better
# --------------------------------------------------------------------------


def candidate_path(models_dir: str | Path, today: _dt.date | None = None) -> Path:
    """``<models_dir>/candidates/fingerprint-<ISO year>-W<week>.pt``.

    One candidate per week: a retrain interrupted and rerun in the same week
    resumes it (``<candidate>.last.pt``); next week's starts afresh.
    """
    y, w, _ = (today or _dt.date.today()).isocalendar()
    return Path(models_dir) / "candidates" / f"fingerprint-{y}-W{w:02d}.pt"


def validation_score(metrics: dict[str, float] | None) -> float | None:
    """Mean of the ``mixed-1s`` and ``mixed-5s`` hit rates (None if missing)."""
    if not metrics or any(k not in metrics for k in SCORE_KEYS):
        return None
    return float(sum(metrics[k] for k in SCORE_KEYS) / len(SCORE_KEYS))


@task(name="score-models", cache_policy=NO_CACHE, persist_result=False)
def score_models_task(candidate: str, current: str | None, home: str) -> dict[str, Any]:
    """Score the candidate and the current model on the same held-out tracks.

    The held-out tracks are the validation side of the catalogue's
    track-level split (:func:`audiosim.train.split_tracks`, the same split
    the candidate was trained with), so the candidate never saw them. The
    current model may have (it was trained on another catalogue or split),
    which can only flatter it: a candidate is promoted only when it wins
    anyway. Without held-out tracks, the scores recorded in the models'
    cards are compared instead.
    """
    from audiosim import train as T
    from audiosim.config import AugmentConfig, TrainConfig
    from audiosim.model import load_encoder

    cand = load_encoder(candidate)
    cur = load_encoder(current) if current and Path(current).is_file() else None
    out: dict[str, Any] = {
        "candidate": candidate, "current": current if cur is not None else None,
        "candidate_card_score": validation_score(cand.card.get("validation")),
        "current_card_score": validation_score(cur.card.get("validation")) if cur is not None else None,
    }
    cfg = TrainConfig.from_dict(cand.card["train_config"]) if "train_config" in cand.card else TrainConfig()
    try:
        tracks = T.catalogue_tracks(home)
    except FileNotFoundError:  # no catalogue yet
        tracks = []
    _, held_out = T.split_tracks(tracks, cfg.val_fraction, cfg.seed)
    dh = DataHome.resolve(home)
    val_set = T.load_audio_set(held_out, cand.features, dh.cache_dir / f"wave-{cand.features.sample_rate}",
                               progress=False) if held_out else None
    if val_set is not None and len(val_set.names):
        val = T.build_validation(val_set, cand.features, AugmentConfig(), index_hop_seconds=0.5)
        out["method"] = f"head-to-head on {len(val_set.names)} held-out catalogue tracks"
        out["candidate_score"] = validation_score(T.validate(cand, val))
        out["current_score"] = validation_score(T.validate(cur, val)) if cur is not None else None
    else:
        out["method"] = "validation scores recorded in the model cards"
        out["candidate_score"], out["current_score"] = out["candidate_card_score"], out["current_card_score"]
    return out


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


@task(name="promote-model", cache_policy=NO_CACHE, persist_result=False)
def promote_model_task(candidate: str, current: str) -> str:
    """Atomically replace ``current`` (and its ``.json`` card) with a copy of ``candidate``.

    The card is written first, then the checkpoint: a reader sees the old
    model or the new one, never half a file.
    """
    from audiosim.store import atomic_open

    src, dst = Path(candidate), Path(current)
    card = src.with_suffix(".json")
    if card.is_file():
        with atomic_open(dst.with_suffix(".json"), "wb") as f, card.open("rb") as g:
            shutil.copyfileobj(g, f)
    with atomic_open(dst, "wb") as f, src.open("rb") as g:
        shutil.copyfileobj(g, f)
    return str(dst)


@flow(name="retrain", log_prints=False, persist_result=False)
def retrain_flow(
    home: str | None = None,
    model: str = str(DEFAULT_FINGERPRINT_MODEL),
    steps: int | None = None,
    noise: Sequence[str] = (),
    min_gain: float = 0.0,
    reindex: bool = True,
) -> dict[str, Any]:
    """Train a candidate encoder; replace ``model`` only if the candidate is better.

    Parameters
    ----------
    home : str, optional
        Data home whose ``ok`` catalogue tracks are trained on.
    model : str
        The current model file (replaced only on promotion).
    steps : int, optional
        Training steps (default: ``TrainConfig().steps``).
    noise : list of str
        Background-noise recordings for training (see ``train_flow``).
    min_gain : float
        How much higher the candidate's score must be (0: any improvement).
    reindex : bool
        On promotion, rebuild the index (if there is one) with the new model
        *before* replacing the model file, so the index never refers to a
        model it was not built with. The old index answers until the new
        manifest is published.

    Returns
    -------
    dict
        Scores, method, ``promoted`` and the candidate path.
    """
    logger = get_run_logger()
    root = str(DataHome.resolve(home).root)
    current = Path(model)
    candidate = candidate_path(current.parent)
    train_kwargs: dict[str, Any] = {"home": root, "out": str(candidate), "noise": list(noise), "resume": True}
    if steps is not None:
        train_kwargs["steps"] = int(steps)
    train_flow(**train_kwargs)
    decision = score_models_task(str(candidate), str(current), root)
    decision["promoted"] = is_better(decision["candidate_score"], decision["current_score"], min_gain)
    logger.info("candidate %s: %s", candidate, decision)
    if decision["promoted"]:
        if reindex and (DataHome.resolve(root).index_dir / "manifest.json").is_file():
            decision["index"] = [r.to_dict() for r in index_flow(home=root, model=str(candidate), rebuild=True)]
        decision["model"] = promote_model_task(str(candidate), str(current))
    create_markdown_artifact(key="retrain-decision", markdown=_decision_markdown(decision),
                             description="Weekly retrain: candidate vs current model")
    return decision


def _decision_markdown(d: dict[str, Any]) -> str:
    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    verdict = "**promoted**: the candidate replaced the current model" if d["promoted"] else \
        "**kept** the current model"
    return "\n".join([
        "# Retrain", "", f"Candidate `{d['candidate']}` vs current `{d['current']}`; {d['method']}.", "",
        "| | candidate | current |", "|---|---:|---:|",
        f"| score (mean of mixed-1s, mixed-5s) | {fmt(d['candidate_score'])} | {fmt(d['current_score'])} |",
        f"| score in the model card | {fmt(d['candidate_card_score'])} | {fmt(d['current_card_score'])} |",
        "", verdict, "",
    ])
