"""Prefect flow that ingests audio files into a data home.

All the work is :func:`audiosim.ingest.ingest.ingest_batch` (and, with
``prune=True``, :func:`audiosim.ingest.ingest.prune_missing`); this module fans it
out as tasks of a few files each and publishes what happened as artifacts
(``ingest-results`` table, ``ingest-summary`` markdown).

The task runner is the flow's: :class:`~prefect.task_runners.ThreadPoolTaskRunner`
by default (one file per task), swapped with ``run_ingest(..., task_runner=...)``
(or ``ingest_flow.with_options(task_runner=...)``) for e.g. a Dask runner
(batches of files per task, see :mod:`audiosim.runners`). Only a bounded
number of tasks is in flight at once, whatever the runner, so a
million-file library does not become a million pending futures.

Example
-------
>>> from flows.ingest import ingest_flow
>>> results = ingest_flow(["~/Music"], home="data", workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
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
from audiosim.ingest.ingest import IngestResult, PruneResult
from audiosim.runners import batch_size as batch_size_for
from audiosim.runners import batches, bounded, flow_uses_threads, one_torch_thread

MAX_TABLE_ROWS = 5000
"""Rows of the ``ingest-results`` table artifact (skipped files are not listed)."""


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient I/O and lock errors."""
    try:
        state.result()
    except Exception as exc:  # the task's exception
        return lib.is_transient(exc)
    return False


def _batch_run_name() -> str:
    from prefect.runtime import task_run

    paths = task_run.parameters.get("paths") or []
    first = Path(paths[0]).name if paths else "nothing"
    return f"ingest {first}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")


@task(
    name="ingest-files",
    task_run_name=_batch_run_name,
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=False,
)
def ingest_batch_task(
    paths: list[Path], home: Path, feature_config: FeatureConfig, decode_config: DecodeConfig,
    one_thread: bool = True,
) -> list[IngestResult]:
    """Ingest a batch of files, by default with one torch thread (see :func:`audiosim.ingest.ingest.ingest_batch`)."""
    return lib.ingest_batch(paths, home, feature_config, decode_config, one_thread)


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
        :func:`audiosim.ingest.ingest.discover`.
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
        (Dask) about four tasks per worker (:func:`audiosim.runners.batch_size`),
        with twice ``workers`` tasks in flight so no worker waits.
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
        never exceptions.

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
    files = lib.discover(paths)
    dh = lib.prepare(home, fc)
    workers = max(1, int(workers))
    threads = flow_uses_threads()
    size = int(batch_size) if batch_size else (1 if threads else batch_size_for(len(files), workers))
    in_flight = workers if threads else 2 * workers
    alone = threads and workers == 1  # then torch may use every core

    def submit(batch: list[Path]) -> PrefectFuture[list[IngestResult]]:
        return ingest_batch_task.submit(batch, dh.root, fc, dc, not alone)

    results: list[IngestResult] = []
    with contextlib.nullcontext() if alone else one_torch_thread():
        for batch, future in bounded(batches(files, size), in_flight, submit):
            try:
                done = future.result()
            except Exception as exc:  # retries exhausted: still never stop the run
                done = [lib.record_failure(p, dh, "error", f"{type(exc).__name__}: {exc}") for p in batch]
            for result in done:
                results.append(result)
                if progress is not None:
                    progress(result)
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


def summary_markdown(
    results: Sequence[IngestResult], home: str | Path, wall_seconds: float, pruned: PruneResult | None = None
) -> str:
    """Markdown summary of an ingest: counts, audio hours, failures by reason, what was pruned."""
    counts = lib.count_statuses(results)
    hours = sum(r.duration or 0.0 for r in results if r.status != "failed") / 3600
    lines = [
        "# Ingest summary",
        "",
        f"Data home: `{home}`",
        "",
        "| files | added | updated | skipped | failed | audio hours | wall seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(results)} | {counts['added']} | {counts['updated']} | {counts['skipped']} "
        f"| {counts['failed']} | {hours:.2f} | {wall_seconds:.1f} |",
    ]
    reasons = Counter(r.reason for r in results if r.status == "failed")
    if reasons:
        lines += ["", "## Failures by reason", "", "| reason | files |", "|---|---:|"]
        lines += [f"| {reason} | {n} |" for reason, n in reasons.most_common()]
        lines += ["", "Run `audiosim catalog --failed` for the files and details."]
    if pruned is not None:
        lines += ["", "## Pruned (files deleted)", "", pruned.describe().replace("\n", "  \n")]
        lines += [f"- `{path}` (track {tid})" for tid, path in pruned.pruned[:MAX_TABLE_ROWS]]
    return "\n".join(lines) + "\n"


def publish_artifacts(
    results: Sequence[IngestResult], home: str | Path, wall_seconds: float, pruned: PruneResult | None = None
) -> None:
    """Create the ``ingest-results`` table and ``ingest-summary`` markdown artifacts."""
    order = {"failed": 0, "updated": 1, "added": 2}
    rows = sorted((r for r in results if r.status != "skipped"), key=lambda r: (order[r.status], r.path))
    table = [
        {k: v for k, v in r.to_dict().items() if k != "seconds"} | {"seconds": round(r.seconds, 3)}
        for r in rows[:MAX_TABLE_ROWS]
    ]
    more = f" (first {MAX_TABLE_ROWS} of {len(rows)})" if len(rows) > MAX_TABLE_ROWS else ""
    create_table_artifact(
        table=table,
        key="ingest-results",
        description=f"Files added, updated or failed{more}; skipped files are only counted in ingest-summary.",
    )
    create_markdown_artifact(
        markdown=summary_markdown(results, home, wall_seconds, pruned),
        key="ingest-summary",
        description="Counts of an ingest run",
    )
