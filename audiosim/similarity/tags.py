"""musicnn tags of a song, ranked within the catalogue.

The two musicnn models (:mod:`audiosim.similarity.musicnn`) give each song a
probability per tag (MSD: ``rock``, ``chill``, ``happy`` ...; MTT:
``guitar``, ``quiet``, ``slow`` ...). The values are small and differ in
scale from tag to tag (a rare tag rarely reaches 0.1), so they are read
against the catalogue: a song's **percentile** for a tag is the share of
catalogue songs with a lower probability for it (ties count half; the song
itself is among them), from 0 (the least of all) to 100. "chill, 92nd
percentile" then means more chill than nine in ten songs here, whatever
the raw number.

:func:`tag_percentiles` ranks a table of probabilities;
:func:`track_tags` gives one song's top tags with their percentiles, as
``audiosim tags`` shows them; :func:`catalogue_tags` gives the catalogue's
tag table, the input of the mood scores (:mod:`audiosim.similarity.mood`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audiosim.config import SimilarityConfig
from audiosim.similarity import musicnn
from audiosim.similarity.model import SongModel
from audiosim.similarity.song_index import QueryTrack
from audiosim.similarity.vectors import (
    TAG_MODELS,
    SongAnalysis,
    SongTable,
    SongVectors,
    analyse_file,
)
from audiosim.store.home import DataHome

TAG_COLUMNS = ["model", "tag", "probability", "percentile"]
"""The columns of :func:`track_tags`."""


def tag_percentiles(probabilities: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Percentile (0-100) of each probability among the reference songs', tag by tag.

    Parameters
    ----------
    probabilities : ndarray, shape (n, n_tags)
        The songs to rank.
    reference : ndarray, shape (m, n_tags), optional
        The catalogue they are ranked in (default: ``probabilities``
        itself). A song is counted among the reference songs only if it is
        one of them.

    Returns
    -------
    ndarray, shape (n, n_tags)
        ``100 * (lower + equal / 2) / m``: lower and equal count the
        reference songs below and level with the song for that tag.
    """
    x = np.asarray(probabilities, dtype=np.float64)
    ref = x if reference is None else np.asarray(reference, dtype=np.float64)
    if len(ref) == 0:
        return np.full(x.shape, np.nan)
    s = np.sort(ref, axis=0)
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        lower = np.searchsorted(s[:, j], x[:, j], side="left")
        upper = np.searchsorted(s[:, j], x[:, j], side="right")
        out[:, j] = 100.0 * (lower + (upper - lower) / 2.0) / len(ref)
    return out


def catalogue_tags(table: SongTable) -> pd.DataFrame:
    """Probabilities and percentiles of every tag of every song of a :class:`SongTable`.

    Returns
    -------
    DataFrame
        Indexed like ``table.tracks``; columns ``msd:<tag>`` and
        ``mtt:<tag>`` (probabilities) and ``pct:msd:<tag>``,
        ``pct:mtt:<tag>`` (percentiles within the table).
    """
    parts = []
    for m in TAG_MODELS:
        names = [f"{m}:{t}" for t in musicnn.tag_names(m)]
        probs = table.tags[m]
        parts.append(pd.DataFrame(probs, index=table.tracks.index, columns=names))
        parts.append(pd.DataFrame(tag_percentiles(probs), index=table.tracks.index,
                                  columns=[f"pct:{n}" for n in names]))
    return pd.concat(parts, axis=1)


def query_analysis(q: QueryTrack, home: "str | Path | DataHome | None", model: SongModel,
                   cfg: SimilarityConfig = SimilarityConfig()) -> SongAnalysis:
    """The analysis of a resolved track (cached for catalogue content; a file outside is analysed)."""
    if q.content_hash is None:
        return analyse_file(q.path, model, cfg)
    return SongVectors(home, model, cfg).analysis(q.content_hash, q.path)


def track_tags(song: SongAnalysis, catalogue: SongTable, top: int = 5) -> pd.DataFrame:
    """A song's ``top`` most probable tags of each musicnn model, with their percentile in the catalogue.

    Parameters
    ----------
    song : SongAnalysis
    catalogue : SongTable
        The songs the percentiles are taken among (a catalogued song counts
        among them; a song from outside is ranked among them, not added).
    top : int
        Tags per model.

    Returns
    -------
    DataFrame
        :data:`TAG_COLUMNS`, MSD tags first, each model's by probability.
    """
    rows = []
    for m in TAG_MODELS:
        p = np.asarray(song.tags[m], dtype=np.float64)[None, :]
        pct = tag_percentiles(p, catalogue.tags[m])[0]
        names = musicnn.tag_names(m)
        for j in np.argsort(-p[0], kind="stable")[:top]:
            rows.append({"model": m, "tag": names[j], "probability": round(float(p[0, j]), 4),
                         "percentile": round(float(pct[j]), 1)})
    return pd.DataFrame(rows, columns=TAG_COLUMNS)
