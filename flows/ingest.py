"""Prefect flow that ingests audio files into a data home.

All the work is :mod:`audiosim.ingest` (finding the files, ingesting each
one, pruning deleted ones, summarising the run); this module fans it out as
tasks and publishes what happened as artifacts (``ingest-results`` table,
``ingest-summary`` markdown).

The task runner is the flow's: :class:`~prefect.task_runners.ThreadPoolTaskRunner`
by default (one file per task), swapped with ``run_ingest(..., task_runner=...)``
(or ``ingest_flow.with_options(task_runner=...)``) for e.g. a Dask runner
(batches of files per task, see :func:`audiosim.runners.fan_out`). Only a
bounded number of tasks is in flight at once, whatever the runner, so a
million-file library does not become a million pending futures.

Retries live here, in the task declarations, and nowhere else: the library
makes one attempt per file and raises
:class:`~audiosim.ingest.ingest.TransientIngestError` for a transient error.

- A one-file task (:func:`ingest_file_task`, every task on threads) is
  retried by Prefect (``retries``, ``retry_condition_fn``) on a transient
  error only; when its retries are exhausted, the flow records the file as
  failed with reason ``error`` and goes on.
- A batch task (:func:`ingest_batch_task`, on Dask) is not retried: a
  retried batch would ingest its other files again and report them
  ``skipped``. It ingests every file once and returns the files that met a
  transient error (:class:`~audiosim.ingest.ingest.BatchResult`); after the
  batches, each of those gets a one-file task of its own, with the retries
  above.

Example
-------
>>> from flows.ingest import ingest_flow
>>> results = ingest_flow(["~/Music"], home="data", workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from audiosim.config import DecodeConfig, FeatureConfig
from audiosim.index.writer import tombstone_removed
from audiosim.ingest import ingest as lib
from audiosim.ingest.discover import discover
from audiosim.ingest.ingest import (
    BatchResult,
    IngestResult,
    PruneResult,
    TransientIngestError,
)
from audiosim.ingest.summary import results_table, summary_markdown
from audiosim.runners import batches, bounded, fan_out, one_torch_thread
from audiosim.store.errors import DiskFullError

RETRIES = 2
"""Further attempts of a one-file task after a transient error."""


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only a :class:`TransientIngestError`."""
    try:
        state.result()
    except TransientIngestError:
        return True
    except Exception:  # a permanent error: another attempt would fail the same way
        return False
    return False


def _file_run_name() -> str:
    from prefect.runtime import task_run

    return f"ingest {Path(task_run.parameters.get('path') or 'nothing').name}"


def _batch_run_name() -> str:
    from prefect.runtime import task_run

    paths = task_run.parameters.get("paths") or []
    first = Path(paths[0]).name if paths else "nothing"
    return f"ingest {first}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")


@task(
    name="ingest-file",
    task_run_name=_file_run_name,
    retries=RETRIES,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=False,
)
def ingest_file_task(
    path: Path, home: Path, feature_config: FeatureConfig, decode_config: DecodeConfig, one_thread: bool = True,
) -> IngestResult:
    """Ingest one file in one attempt (see :func:`audiosim.ingest.ingest.ingest_file`); Prefect retries it."""
    with one_torch_thread() if one_thread else contextlib.nullcontext():
        return lib.ingest_file(path, home, feature_config, decode_config)


@task(
    name="ingest-files",
    task_run_name=_batch_run_name,
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=False,
)
def ingest_batch_task(
    paths: list[Path], home: Path, feature_config: FeatureConfig, decode_config: DecodeConfig,
) -> BatchResult:
    """Ingest a batch of files with one torch thread (see :func:`audiosim.ingest.ingest.ingest_batch`)."""
    return lib.ingest_batch(paths, home, feature_config, decode_config)


def _settle(unit: list[Path], future: PrefectFuture[Any], home: Path) -> BatchResult:
    """What a finished task did; a failed task (retries exhausted) records its files as ``error``.

    A run never stops for a file.
    """
    try:
        done = future.result()
    except DiskFullError:
        raise  # the disk's fault, not the files': the run stops
    except Exception as exc:
        return BatchResult(tuple(lib.record_error(p, home, exc) for p in unit))
    return done if isinstance(done, BatchResult) else BatchResult((done,))


@task(name="prune-missing", cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def prune_task(paths: list[str], home: Path) -> PruneResult:
    """Mark deleted files missing, then tombstone them in the index (if there is one)."""
    result = lib.prune_missing(paths, home)
    if result.pruned:
        tombstone_removed(home)
    return result


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(), log_prints=False, persist_result=False)
def ingest_flow(
    paths: Sequence[str | Path],
    home: str | Path | None = None,
    workers: int = 1,
    feature_config: FeatureConfig | None = None,
    decode_config: DecodeConfig | None = None,
    progress: Callable[[IngestResult], None] | None = None,
    batch_size: int | None = None,
    prune: bool = False,
    on_prune: Callable[[PruneResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest audio files, folders and path lists into a data home.

    Parameters
    ----------
    paths : sequence of str or Path
        Files, folders (searched recursively) and lists of paths; see
        :func:`audiosim.ingest.discover.discover`.
    home : str or Path, optional
        Data home (default ``$AUDIOSIM_HOME`` or ``./data``).
    workers : int
        Tasks processed at once (worker threads or Dask workers).
    feature_config, decode_config : optional
        Defaults from :mod:`audiosim.config`.
    progress : callable, optional
        Called in the flow's thread with each result as it completes.
    batch_size : int, optional
        Files per task. Default: 1 on threads; on another task runner
        (Dask) about four tasks per worker, with twice ``workers`` tasks in
        flight so no worker waits (:func:`audiosim.runners.fan_out`).
    prune : bool
        Afterwards, mark the catalogue tracks under the given folders whose
        file is gone as missing and tombstone them in the index
        (:func:`audiosim.ingest.ingest.prune_missing`; folders that do not exist or
        hold no audio file are left alone). The result is in the
        ``ingest-summary`` artifact and is passed to ``on_prune``.
    on_prune : callable, optional
        Called with the :class:`~audiosim.ingest.ingest.PruneResult` (with ``prune``).

    Returns
    -------
    list of IngestResult
        One per file, in completion order. Bad files are ``failed`` results,
        never exceptions; so are files whose transient errors outlasted
        the retries (reason ``error``).

    Raises
    ------
    FileNotFoundError
        If a path given does not exist.
    ConfigMismatchError
        If the data home was made with other feature settings.
    """
    t0 = time.perf_counter()
    fc = feature_config or FeatureConfig()
    dc = decode_config or DecodeConfig()
    files = discover(paths)
    dh = lib.prepare(home, fc)
    plan = fan_out(len(files), workers, batch_size)

    def submit(unit: list[Path]) -> PrefectFuture[Any]:
        if len(unit) == 1:
            return ingest_file_task.submit(unit[0], dh.root, fc, dc, plan.one_thread)
        return ingest_batch_task.submit(unit, dh.root, fc, dc)

    results: list[IngestResult] = []
    transient: list[str] = []

    def run(units: Sequence[list[Path]]) -> None:
        for unit, future in bounded(units, plan.in_flight, submit):
            done = _settle(unit, future, dh.root)
            transient.extend(done.transient)
            for result in done.results:
                results.append(result)
                if progress is not None:
                    progress(result)

    with one_torch_thread() if plan.one_thread else contextlib.nullcontext():
        run(batches(files, plan.batch_size))
        run([[Path(p)] for p in transient])  # batch files that met a transient error: a retried task each
    pruned = prune_task(list(map(str, paths)), dh.root) if prune else None
    if pruned is not None and on_prune is not None:
        on_prune(pruned)
    publish_artifacts(results, dh.root, time.perf_counter() - t0, pruned)
    return results


def run_ingest(
    paths: Sequence[str | Path],
    home: str | Path | None = None,
    workers: int = 1,
    task_runner: TaskRunner | None = None,
    **kwargs: Any,
) -> list[IngestResult]:
    """Run :func:`ingest_flow`, optionally with another task runner.

    Parameters
    ----------
    task_runner : prefect TaskRunner, optional
        E.g. a ``prefect_dask.DaskTaskRunner``; default: threads.
    **kwargs
        Passed to :func:`ingest_flow` (``feature_config``, ``progress``,
        ``batch_size``, ``prune``, ...).
    """
    f = ingest_flow if task_runner is None else ingest_flow.with_options(task_runner=task_runner)
    return f(paths, home=home, workers=workers, **kwargs)


def publish_artifacts(
    results: Sequence[IngestResult], home: str | Path, wall_seconds: float, pruned: PruneResult | None = None
) -> None:
    """Create the ``ingest-results`` table and ``ingest-summary`` markdown artifacts."""
    table, description = results_table(results)
    create_table_artifact(table=table, key="ingest-results", description=description)
    create_markdown_artifact(
        markdown=summary_markdown(results, home, wall_seconds, pruned),
        key="ingest-summary",
        description="Counts of an ingest run",
    )
