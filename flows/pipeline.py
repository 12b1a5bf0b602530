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
of worker processes (started once, shared by ingest and index:
:func:`audiosim.runners.shared_cluster`), or an existing Dask scheduler.
On Dask the index's embedding fans out too (batches of tracks embedded
into files of the data home); the shard build, calibration and publishing
are one task (:func:`audiosim.index.writer.update`, under the index's writer
lock) in the flow's process whatever the runner.

``retrain_flow`` trains a *candidate* model (:func:`flows.train.train_flow`,
resumable, one candidate file per ISO week), scores it and the current model
on the same held-out catalogue tracks, and only if the candidate is better:
rebuilds the index with it, then atomically replaces the current model file.
The scoring, the decision and the promotion are :mod:`audiosim.training.retrain`.

Example
-------
>>> from flows.pipeline import pipeline_flow
>>> summary = pipeline_flow(["~/Music"], home="data", workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from audiosim.fingerprint.model import DEFAULT_FINGERPRINT_MODEL
from audiosim.ingest.ingest import count_statuses
from audiosim.runners import RunnerSpec, prefect_api_for_workers, shared_cluster
from audiosim.store.home import DataHome
from audiosim.training import retrain as R
from flows.index import index_flow, run_index
from flows.ingest import ingest_flow
from flows.report import report_flow
from flows.run_lines import RUN_LINE_HOOKS
from flows.train import train_flow

# --------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------


@flow(name="pipeline", log_prints=False, persist_result=False, **RUN_LINE_HOOKS)
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
    prune: bool = False,
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
        Existing Dask scheduler (``tcp://host:8786``) to fan ingest and
        index embedding out to.
    prune : bool
        After the ingest, mark catalogue tracks under the given folders
        whose file was deleted as missing, so the index update tombstones
        them (folders that do not exist or hold no audio are left alone;
        see :func:`audiosim.ingest.ingest.prune_missing`).

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

    with prefect_api_for_workers(spec), shared_cluster(spec) as running:  # one cluster for ingest and index
        ingest = ingest_flow.with_options(task_runner=running.task_runner())
        results = ingest(list(paths), home=root, workers=running.in_flight(), prune=prune,
                         on_prune=lambda p: summary.update(pruned=[path for _, path in p.pruned]))
        summary["ingest"] = count_statuses(results)
        logger.info("ingest (%s): %s", spec.describe(), summary["ingest"])

        if train:
            summary["train"] = retrain_flow(home=root, steps=train_steps)

        if index:
            steps = run_index(running.task_runner(), home=root, model=model, calibrate=calibrate,
                              workers=running.in_flight())
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
    if summary.get("pruned") is not None:
        lines.append(f"| prune | {len(summary['pruned'])} tracks whose file was deleted marked missing |")
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


@task(name="score-models", cache_policy=NO_CACHE, persist_result=False)
def score_models_task(candidate: str, current: str | None, home: str) -> dict[str, Any]:
    """Score the candidate and the current model on the same held-out tracks
    (see :func:`audiosim.training.retrain.score_models`)."""
    return R.score_models(candidate, current, home)


@task(name="promote-model", cache_policy=NO_CACHE, persist_result=False)
def promote_model_task(candidate: str, current: str) -> str:
    """Atomically replace the current model with the candidate (see :func:`audiosim.training.retrain.promote_model`)."""
    return R.promote_model(candidate, current)


@flow(name="retrain", log_prints=False, persist_result=False, **RUN_LINE_HOOKS)
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
    candidate = R.candidate_path(current.parent)
    train_kwargs: dict[str, Any] = {"home": root, "out": str(candidate), "noise": list(noise), "resume": True}
    if steps is not None:
        train_kwargs["steps"] = int(steps)
    train_flow(**train_kwargs)
    decision = score_models_task(str(candidate), str(current), root)
    decision["promoted"] = R.is_better(decision["candidate_score"], decision["current_score"], min_gain)
    logger.info("candidate %s: %s", candidate, decision)
    if decision["promoted"]:
        if reindex and (DataHome.resolve(root).index_dir / "manifest.json").is_file():
            decision["index"] = [r.to_dict() for r in index_flow(home=root, model=str(candidate), rebuild=True)]
        decision["model"] = promote_model_task(str(candidate), str(current))
    create_markdown_artifact(key="retrain-decision", markdown=R.decision_markdown(decision),
                             description="Weekly retrain: candidate vs current model")
    return decision
