"""Prefect flow that brings the fingerprint index up to date after an ingest.

All the work is :func:`audiosim.index.update` (embed the new and changed
``ok`` tracks into a new shard, tombstone removed and changed tracks,
recalibrate the no-match thresholds, publish atomically) and optionally
:func:`audiosim.index.compact`; this module runs them as tasks and
publishes what happened as an ``index-summary`` table artifact and an
``index-thresholds`` table artifact.

Example
-------
>>> from flows.index import index_flow
>>> results = index_flow(home="data", compact=True)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from audiosim import index as lib
from audiosim.calibrate import Calibration
from audiosim.config import IndexConfig
from audiosim.index import UpdateResult
from audiosim.store import DataHome


@task(name="index-update", cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def update_task(
    home: Path, model: str | None, config: IndexConfig | None, rebuild: bool, calibrate: bool
) -> UpdateResult:
    """Embed new/changed tracks into a new shard (see :func:`audiosim.index.update`)."""
    return lib.update(home, model, config, rebuild=rebuild, calibrate=calibrate)


@task(name="index-compact", cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def compact_task(home: Path, model: str | None, calibrate: bool) -> UpdateResult:
    """Merge all shards into one (see :func:`audiosim.index.compact`)."""
    return lib.compact(home, model=model, calibrate=calibrate)


@flow(name="index", log_prints=False, persist_result=False)
def index_flow(
    home: str | Path | None = None,
    model: str | Path | None = None,
    compact: bool = False,
    rebuild: bool = False,
    calibrate: bool = True,
    config: IndexConfig | None = None,
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
        Recalibrate thresholds when tracks were added.
    config : IndexConfig, optional

    Returns
    -------
    list of UpdateResult
        The update, then the compaction if asked for.

    Raises
    ------
    ConfigMismatchError
        If the index was built with another model or settings (use ``rebuild``).
    """
    dh = DataHome.resolve(home)
    m = None if model is None else str(model)
    results = [update_task(dh.root, m, config, rebuild, calibrate)]
    if compact:
        results.append(compact_task(dh.root, m, False))
    publish_artifacts(results, dh.root)
    return results


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
        manifest = lib.Manifest.load(DataHome.resolve(home).index_dir)
    except FileNotFoundError:
        return
    if manifest.calibration:
        cal = Calibration.from_dict(manifest.calibration)
        create_table_artifact(
            table=cal.table(), key="index-thresholds",
            description=(f"No-match thresholds per clip length ({cal.method}, at most "
                         f"{cal.max_false_match:.1%} of absent clips match)."),
        )
