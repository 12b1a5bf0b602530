"""Prefect flow that ingests audio files into a data home.

All the work is :func:`audiosim.ingest.ingest_file`; this module fans it
out as one task per file and publishes what happened as artifacts
(``ingest-results`` table, ``ingest-summary`` markdown).

The task runner is the flow's: :class:`~prefect.task_runners.ThreadPoolTaskRunner`
by default, swapped with ``run_ingest(..., task_runner=...)`` (or
``ingest_flow.with_options(task_runner=...)``) for e.g. a Dask runner.
At most ``workers`` files are in flight at once, whatever the runner, so a
million-file library does not become a million pending futures.

Example
-------
>>> from flows.ingest import ingest_flow
>>> results = ingest_flow(["~/Music"], home="data", workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from audiosim import ingest as lib
from audiosim.config import DecodeConfig, FeatureConfig
from audiosim.ingest import IngestResult

MAX_TABLE_ROWS = 5000
"""Rows of the ``ingest-results`` table artifact (skipped files are not listed)."""


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient I/O and lock errors."""
    try:
        state.result()
    except Exception as exc:  # the task's exception
        return lib.is_transient(exc)
    return False


@task(
    name="ingest-file",
    task_run_name="ingest {path.name}",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=False,
)
def ingest_file_task(
    path: Path, home: Path, feature_config: FeatureConfig, decode_config: DecodeConfig
) -> IngestResult:
    """Ingest one file (see :func:`audiosim.ingest.ingest_file`)."""
    return lib.ingest_file(path, home, feature_config, decode_config)


def _in_flight(
    files: Sequence[Path], workers: int, submit: Callable[[Path], PrefectFuture[IngestResult]]
) -> Iterator[tuple[Path, PrefectFuture[IngestResult]]]:
    """Submit files keeping at most ``workers`` running; yield each as it finishes."""
    todo = iter(files)
    running: dict[PrefectFuture[IngestResult], Path] = {}
    while True:
        while len(running) < workers:
            path = next(todo, None)
            if path is None:
                break
            running[submit(path)] = path
        if not running:
            return
        done = next(as_completed(list(running)))
        yield running.pop(done), done


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(), log_prints=False, persist_result=False)
def ingest_flow(
    paths: Sequence[str | Path],
    home: str | Path | None = None,
    workers: int = 1,
    feature_config: FeatureConfig | None = None,
    decode_config: DecodeConfig | None = None,
    progress: Callable[[IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest audio files, folders and path lists into a data home.

    Parameters
    ----------
    paths : sequence of str or Path
        Files, folders (searched recursively) and lists of paths; see
        :func:`audiosim.ingest.discover`.
    home : str or Path, optional
        Data home (default ``$AUDIOSIM_HOME`` or ``./data``).
    workers : int
        Files processed at once.
    feature_config, decode_config : optional
        Defaults from :mod:`audiosim.config`.
    progress : callable, optional
        Called in the flow's thread with each result as it completes.

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

    def submit(path: Path) -> PrefectFuture[IngestResult]:
        return ingest_file_task.submit(path, dh.root, fc, dc)

    results: list[IngestResult] = []
    for path, future in _in_flight(files, max(1, int(workers)), submit):
        try:
            result = future.result()
        except Exception as exc:  # retries exhausted: still never stop the batch
            result = lib.record_failure(path, dh, "error", f"{type(exc).__name__}: {exc}")
        results.append(result)
        if progress is not None:
            progress(result)
    publish_artifacts(results, dh.root, time.perf_counter() - t0)
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
        Passed to :func:`ingest_flow` (``feature_config``, ``progress``, ...).
    """
    f = ingest_flow if task_runner is None else ingest_flow.with_options(task_runner=task_runner)
    return f(paths, home=home, workers=workers, **kwargs)


def summary_markdown(results: Sequence[IngestResult], home: str | Path, wall_seconds: float) -> str:
    """Markdown summary of an ingest: counts, audio hours, failures by reason."""
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
    return "\n".join(lines) + "\n"


def publish_artifacts(results: Sequence[IngestResult], home: str | Path, wall_seconds: float) -> None:
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
        markdown=summary_markdown(results, home, wall_seconds),
        key="ingest-summary",
        description="Counts of an ingest run",
    )
