"""Prefect flow that brings the fingerprint index up to date after an ingest.

All the work is :func:`audiosim.index.writer.update` (embed the new and changed
``ok`` tracks into a new shard, tombstone removed and changed tracks,
recalibrate the no-match thresholds with
:func:`audiosim.match.background.self_calibrate` (against the model's
background bank, else leave-one-track-out), publish atomically)
and optionally :func:`audiosim.index.writer.compact`. With ``absent`` files,
the thresholds come from :func:`audiosim.match.calibrate.calibrate` on that
music instead, published by :func:`audiosim.index.writer.store_calibration`.
On a Dask task runner (:func:`run_index`) the embedding fans out first:
batches of tracks are embedded by :func:`audiosim.fingerprint.embed.embed_tracks`
on the workers, into files of the data home, and the update builds the shard
from them. This module runs these steps as tasks and publishes what happened
as an ``index-summary`` table artifact and an ``index-thresholds`` table
artifact.

Example
-------
>>> from flows.index import index_flow
>>> results = index_flow(home="data", compact=True)  # doctest: +SKIP
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Sequence

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner

from audiosim.config import IndexConfig
from audiosim.fingerprint.embed import EmbedJob, embed_tracks
from audiosim.index import writer as lib
from audiosim.index.manifest import Manifest
from audiosim.index.writer import UpdateResult
from audiosim.match.background import self_calibrate
from audiosim.match.calibrate import calibrate
from audiosim.progress import Callback
from audiosim.runners import batch_size as batch_size_for
from audiosim.runners import batches, bounded, flow_uses_threads
from audiosim.store.home import DataHome
from flows.run_lines import RUN_LINE_HOOKS


@task(name="index-update", cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def update_task(
    home: Path, model: str | None, config: IndexConfig | None, rebuild: bool, calibrate: bool,
    progress: Callback | None = None,
) -> UpdateResult:
    """Embed new/changed tracks into a new shard (see :func:`audiosim.index.writer.update`);
    with ``calibrate``, recalibrate when needed (:func:`~audiosim.match.background.self_calibrate`)."""
    calibrator = partial(self_calibrate, progress=progress) if calibrate else None
    return lib.update(home, model, config, rebuild=rebuild, calibrate=calibrator, progress=progress)


@task(name="plan-embedding", cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def plan_embedding_task(
    home: Path, model: str | None, config: IndexConfig | None, rebuild: bool
) -> EmbedJob:
    """The tracks to embed ahead of the update (see :func:`audiosim.index.writer.plan_embedding`)."""
    return lib.plan_embedding(home, model, config, rebuild=rebuild)


@task(name="embed-tracks", task_run_name="embed {n} tracks", cache_policy=NO_CACHE, persist_result=False,
      log_prints=False, retries=1, retry_delay_seconds=1)
def embed_batch_task(home: Path, job: EmbedJob, tracks: list[tuple[int, str]], n: int) -> list[tuple[int, int]]:
    """Embed a batch of tracks into files of the data home (see :func:`audiosim.fingerprint.embed.embed_tracks`)."""
    return embed_tracks(home, job, tracks)


@task(name="index-compact", cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def compact_task(home: Path, model: str | None, calibrate: bool, progress: Callback | None = None) -> UpdateResult:
    """Merge all shards into one (see :func:`audiosim.index.writer.compact`)."""
    calibrator = partial(self_calibrate, progress=progress) if calibrate else None
    return lib.compact(home, model=model, calibrate=calibrator, progress=progress)


@task(name="absent-calibration", cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def absent_calibration_task(home: Path, absent: list[str], model: str | None,
                            progress: Callback | None = None) -> int:
    """Calibrate on music known to be absent and publish the thresholds; returns the generation.

    See :func:`audiosim.match.calibrate.calibrate` and
    :func:`audiosim.index.writer.store_calibration`.
    """
    return lib.store_calibration(home, calibrate(home, absent, model=model, progress=progress))


@flow(name="index", log_prints=False, persist_result=False, **RUN_LINE_HOOKS)
def index_flow(
    home: str | Path | None = None,
    model: str | Path | None = None,
    compact: bool = False,
    rebuild: bool = False,
    calibrate: bool = True,
    config: IndexConfig | None = None,
    workers: int = 1,
    batch_size: int | None = None,
    absent: list[str] | None = None,
    progress: Callback | None = None,
) -> list[UpdateResult]:
    """Update the index of a data home from its catalogue, optionally compacting it.

    Parameters
    ----------
    home : str or Path, optional
        Data home (default ``$AUDIOSIM_HOME`` or ``./data``).
    model : str or Path, optional
        Encoder checkpoint (default: the index's own, else ``models/fingerprint.pt``).
    compact : bool
        Merge all shards into one afterwards, dropping tombstoned tracks.
    rebuild : bool
        Re-embed everything (to change the model or the index settings).
    calibrate : bool
        Recalibrate thresholds when needed
        (:func:`audiosim.index.writer.needs_calibration`), against the
        model's background bank (:func:`audiosim.match.background.self_calibrate`).
    config : IndexConfig, optional
    workers : int
        With a task runner other than threads (Dask, see
        :func:`run_index`): the workers; the new tracks are embedded in
        batches as tasks on them first (twice ``workers`` in flight), each
        writing its embeddings to the data home, and the update then builds
        the shard from those files in this process. On threads the update
        embeds the tracks itself (torch already uses every core).
    batch_size : int, optional
        Tracks per embedding task (default: about four tasks per worker,
        :func:`audiosim.runners.batch_size`).
    absent : list of str, optional
        Music files known not to be in the catalogue: the index is then
        updated without the background calibration, and the thresholds
        are calibrated on clips of these files and published (a generation
        of their own).
    progress : callable, optional
        ``progress(stage, info)`` (:mod:`audiosim.progress`): embedding and
        calibration in this process report through it.

    Returns
    -------
    list of UpdateResult
        The update, then the compaction if asked for.

    Raises
    ------
    ConfigMismatchError
        If the index was built with another model or settings (use ``rebuild``).
    ValueError
        If none of the ``absent`` files could be decoded.
    """
    dh = DataHome.resolve(home)
    m = None if model is None else str(model)
    if not flow_uses_threads():
        job = plan_embedding_task(dh.root, m, config, rebuild)
        size = int(batch_size) if batch_size else batch_size_for(len(job.tracks), workers)
        for _, future in bounded(batches(job.tracks, size), 2 * max(1, int(workers)),
                                 lambda b: embed_batch_task.submit(dh.root, job, b, len(b))):
            future.result()  # an error here is an error of the update too
    results = [update_task(dh.root, m, config, rebuild, calibrate and not absent, progress)]
    if compact:
        results.append(compact_task(dh.root, m, False, progress))
    if absent:
        absent_calibration_task(dh.root, [str(p) for p in absent], m, progress)
    publish_artifacts(results, dh.root)
    return results


def run_index(task_runner: TaskRunner | None = None, **kwargs: Any) -> list[UpdateResult]:
    """Run :func:`index_flow`, optionally with another task runner.

    Parameters
    ----------
    task_runner : prefect TaskRunner, optional
        E.g. :meth:`audiosim.runners.RunnerSpec.task_runner` of ``--workers
        N`` or ``--dask ADDRESS``: embedding then fans out over it.
    **kwargs
        Passed to :func:`index_flow`.
    """
    f = index_flow if task_runner is None else index_flow.with_options(task_runner=task_runner)
    return f(**kwargs)


def summary_rows(results: Sequence[UpdateResult]) -> list[dict]:
    """One table row per step run."""
    return [
        {
            "action": r.action, "generation": r.generation, "shard": r.shard or "", "added tracks": r.added_tracks,
            "tombstoned tracks": r.tombstoned_tracks, "items": r.items, "audio hours": round(r.audio_seconds / 3600, 3),
            "segments/s": round(r.segments_per_second), "calibrated": r.calibrated,
            "seconds": round(r.total_seconds, 1), "shards after": r.shards, "index items": r.index_items,
            "tracks without features": r.missing_features,
        }
        for r in results
    ]


def publish_artifacts(results: Sequence[UpdateResult], home: str | Path) -> None:
    """Create the ``index-summary`` and ``index-thresholds`` table artifacts."""
    create_table_artifact(
        table=summary_rows(results), key="index-summary",
        description=f"Index update of data home {home}: what was embedded, tombstoned and published.",
    )
    try:
        manifest = Manifest.load(DataHome.resolve(home).index_dir)
    except FileNotFoundError:
        return
    cal = manifest.calibration
    if cal is not None and cal.is_current():
        create_table_artifact(
            table=cal.table(config=manifest.config), key="index-thresholds",
            description=(f"No-match thresholds per clip length ({cal.method}, at most "
                         f"{cal.max_false_match:.1%} of absent clips match; a score above peak_gate "
                         "matches when its spectral peaks beat peak_threshold)."),
        )
