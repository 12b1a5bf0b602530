"""Prefect flow that writes a playlist report.

All the work is in :mod:`audiosim.report`; this flow, when asked to
(``ingest``), ingests the playlist's files that are not catalogued yet and
lie under the allowed folders (as the ``ingest`` sub-flow, with its own
artifacts; other paths are listed in the report and never opened, so a
playlist given to a deployment cannot make a worker read arbitrary files),
builds and writes the report, and publishes its summary as artifacts: ``playlist-report-summary`` (Markdown, the same summary as
``summary.md`` beside the HTML) and the tables ``playlist-report-tracks``,
``playlist-report-order``, ``playlist-report-additions`` and, when some
entries could not be analysed, ``playlist-report-missing``.

Example
-------
>>> from flows.report import report_flow
>>> html = report_flow("road-trip.m3u", home="data")  # doctest: +SKIP
"""

from __future__ import annotations

import json

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from audiosim.format import markdown_code
from audiosim.report.analysis import PlaylistReport, build_report
from audiosim.report.playlist import allowed_folders, read_playlist, uncatalogued
from audiosim.report.write import summary_markdown, write_report
from audiosim.similarity.model import load_similarity_model
from audiosim.store.home import DataHome
from flows.ingest import ingest_flow
from flows.run_lines import RUN_LINE_HOOKS

TRACK_COLUMNS = ["position", "id", "title", "tempo_bpm", "key", "mode", "loudness_db", "mood", "valence", "arousal",
                 "mean_similarity", "closest", "outlier", "outlier_why"]


@task(name="build-report", cache_policy=NO_CACHE, persist_result=False)
def build_report_task(
    playlist: str, home: str, n_additions: int, model: str | None, allow: list[str] | None = None,
) -> PlaylistReport:
    """Analyse the playlist (see :func:`audiosim.report.analysis.build_report`); files are ingested already."""
    return build_report(playlist, home, model=load_similarity_model(model), ingest=False, allow=allow,
                        n_additions=n_additions)


@task(name="write-report", cache_policy=NO_CACHE, persist_result=False)
def write_report_task(report: PlaylistReport, out: str | None) -> str:
    """Draw the figures, write the HTML, CSV and Markdown files (see :func:`audiosim.report.write.write_report`)."""
    return str(write_report(report, out))


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))  # NaN -> null


def publish_artifacts(report: PlaylistReport, html: str) -> None:
    """Create the summary Markdown artifact and the table artifacts."""
    md = summary_markdown(report) + f"\nFull report: {markdown_code(html)}\n"
    create_markdown_artifact(key="playlist-report-summary", markdown=md, description=f"Playlist report {report.name}")
    t = report.tracks
    create_table_artifact(key="playlist-report-tracks", table=_records(t[[c for c in TRACK_COLUMNS if c in t]]),
                          description="Playlist songs with descriptors, mood, similarity and outlier flags")
    create_table_artifact(key="playlist-report-order", table=_records(report.order),
                          description="Suggested order (smoother transitions)")
    create_table_artifact(key="playlist-report-additions", table=_records(report.additions),
                          description="Catalogue songs suggested as additions")
    if len(report.missing):
        create_table_artifact(key="playlist-report-missing", table=_records(report.missing),
                              description="Playlist entries that could not be analysed")


@flow(name="playlist-report", log_prints=False, persist_result=False, **RUN_LINE_HOOKS)
def report_flow(
    playlist: str,
    home: str | None = None,
    out: str | None = None,
    ingest: bool = False,
    n_additions: int = 10,
    model: str | None = None,
    allow: list[str] | None = None,
) -> str:
    """Write a playlist report and publish its summary as artifacts.

    Parameters
    ----------
    playlist : str
        M3U, text or CSV list of paths or catalogue ids, or a folder.
    home : str, optional
        Data home (default ``$AUDIOSIM_HOME`` or ``./data``).
    out : str, optional
        Output folder (default ``<home>/reports/<playlist name>/``).
    ingest : bool
        Ingest the playlist files under the ``allow`` folders that are not
        catalogued yet (else the report lists them as not in the catalogue).
    n_additions : int
        Number of suggested additions.
    model : str, optional
        Song-model weights (default: the shipped MSD musicnn weights, ``models/musicnn/msd_musicnn.pt``).
    allow : list of str, optional
        Folders whose files the playlist may name beyond the catalogue
        (default: the playlist's own folder). Anything else is listed in the
        report and never opened.

    Returns
    -------
    str
        Path of ``report.html``.
    """
    root = str(DataHome.resolve(home).root)
    folders = allowed_folders(playlist, allow)
    if ingest:
        pending = uncatalogued(read_playlist(playlist), root, folders)
        if pending:
            ingest_flow(pending, home=root)
    report = build_report_task(playlist, root, n_additions, model, [str(f) for f in folders])
    html = write_report_task(report, out)
    publish_artifacts(report, html)
    return html
