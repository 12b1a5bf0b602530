"""The song-similarity index and the queries on it.

Song vectors (:mod:`audiosim.similarity.vectors`) are indexed with Annoy
(angular) in ``<home>/index/songs/``, beside, not mixed with, the
fingerprint shards::

    manifest.json             song model (musicnn model, layer, pooling, digest), configs, track ids, hashes
    songs-<build>.ann         the Annoy file the manifest names
    .lock                     held by the one writer (:func:`audiosim.index.writer.writer_lock`)

A build holds the folder's writer lock, writes a new ``.ann`` file and then
replaces the manifest, both with :mod:`audiosim.store.atomic`, so a reader
always sees a matching pair; the previous file is removed after.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from annoy import AnnoyIndex

from audiosim.config import ConfigMismatchError, SimilarityConfig
from audiosim.fingerprint.model import model_digest
from audiosim.index.writer import writer_lock
from audiosim.progress import Callback
from audiosim.signal import audio
from audiosim.similarity.model import SongModel, load_similarity_model
from audiosim.similarity.vectors import (
    SongVectors,
    analyse_file,
    catalogue_frame,
    catalogue_vectors,
)
from audiosim.store.atomic import atomic_path, atomic_write_json
from audiosim.store.catalog import Catalog, normalise_path
from audiosim.store.home import DataHome

MANIFEST_NAME = "manifest.json"


class SongIndex:
    """An Annoy (angular) index of song vectors with its manifest.

    Use :func:`build_index` to make one and :func:`open_index` /
    :func:`ensure_index` to read it.
    """

    def __init__(self, home: DataHome, manifest: dict):
        self.home = home
        self.manifest = manifest
        self.track_ids = np.asarray(manifest["track_ids"], dtype=np.int64)
        self.hashes = list(manifest["content_hashes"])
        self.annoy = AnnoyIndex(int(manifest["dim"]), "angular")
        if self.track_ids.size:
            self.annoy.load(str(song_index_dir(home) / manifest["ann"]))
        self.search_k = int(manifest["similarity_config"].get("search_k", -1))

    def __len__(self) -> int:
        return int(self.track_ids.size)

    def query(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest songs: (track ids, cosine similarities), best first."""
        if not len(self):
            return np.zeros(0, np.int64), np.zeros(0)
        items, dist = self.annoy.get_nns_by_vector(
            np.asarray(vector, dtype=np.float32).tolist(), min(k, len(self)), search_k=self.search_k, include_distances=True
        )
        cos = 1.0 - np.asarray(dist, dtype=np.float64) ** 2 / 2.0  # Annoy angular = sqrt(2 - 2 cos)
        return self.track_ids[np.asarray(items, dtype=np.int64)], cos

    def close(self) -> None:
        self.annoy.unload()


def song_index_dir(home: "str | Path | DataHome | None") -> Path:
    """Folder of the song index: ``<home>/index/songs``."""
    return DataHome.resolve(home).index_dir / "songs"


def song_manifest_path(home: "str | Path | DataHome | None") -> Path:
    """The song index manifest: ``<home>/index/songs/manifest.json``."""
    return song_index_dir(home) / MANIFEST_NAME


def build_index(
    home: "str | Path | DataHome | None",
    model: SongModel,
    cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool | Callback | None = False,
) -> SongIndex:
    """Index the song vectors of every ``ok`` catalogue track and publish it atomically.

    The build holds the song index's writer lock, so concurrent builds run
    one after the other and never remove each other's files.
    """
    dh = DataHome.resolve(home).create()
    folder = song_index_dir(dh)
    with writer_lock(folder):
        everything = catalogue_frame(dh)
        table = catalogue_vectors(dh, model, cfg, progress=progress)
        build = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        ann_name = f"songs-{build}.ann"
        index = AnnoyIndex(model.dim, "angular")
        for i, v in enumerate(table.vectors):
            index.add_item(i, v.tolist())
        old = _read_manifest(dh)
        if len(table.vectors):
            index.build(cfg.n_trees, n_jobs=1)
            with atomic_path(folder / ann_name) as tmp:
                index.save(str(tmp))
                index.unload()
        manifest = {
            "kind": "song-similarity",
            "ann": ann_name,
            "dim": model.dim,
            "metric": "angular",
            "model_digest": model_digest(model),
            "song_model": model.describe(),
            "similarity_config": cfg.to_dict(),
            "similarity_config_digest": cfg.digest(),
            "track_ids": [int(t) for t in table.tracks.index],
            "unanalysed": [[int(t), h] for t, h in zip(everything.index, everything["content_hash"])
                           if t not in table.tracks.index],
            "content_hashes": list(table.tracks["content_hash"]),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_json(song_manifest_path(dh), manifest)
        if old and old.get("ann") and old["ann"] != ann_name:
            (folder / old["ann"]).unlink(missing_ok=True)
    return SongIndex(dh, manifest)


def _describe(song_model: dict) -> str:
    keys = ("model", "layer", "pooling")
    return ", ".join(f"{k} {song_model[k]}" for k in keys if k in song_model) or "unknown"


def _read_manifest(home: DataHome) -> dict | None:
    try:
        return json.loads(song_manifest_path(home).read_text())
    except FileNotFoundError:
        return None


def open_index(home: "str | Path | DataHome | None", model: SongModel, cfg: SimilarityConfig = SimilarityConfig()) -> SongIndex:
    """Open the song index, checking it was built with ``model`` and ``cfg``.

    Raises
    ------
    FileNotFoundError
        If there is no song index yet.
    ConfigMismatchError
        If it was built with another model or configuration (both digests named).
    """
    dh = DataHome.resolve(home)
    manifest = _read_manifest(dh)
    if manifest is None:
        raise FileNotFoundError(f"no song index in {song_index_dir(dh)}")
    if manifest.get("model_digest") != model_digest(model):
        made = manifest.get("song_model") or {"model": "an older song model"}
        raise ConfigMismatchError(
            f"song index {song_manifest_path(dh)} was built with song model {manifest.get('model_digest')} "
            f"({_describe(made)}) but {model_digest(model)} ({_describe(model.describe())}) is in use; rebuild it"
        )
    cfg.check_same(SimilarityConfig.from_dict(manifest["similarity_config"]), f"song index {song_manifest_path(dh)}")
    return SongIndex(dh, manifest)


def ensure_index(
    home: "str | Path | DataHome | None",
    model: SongModel,
    cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool | Callback | None = False,
    log: Callable[[str], None] | None = None,
) -> SongIndex:
    """The song index, (re)built first if missing, made with another model or
    config, or out of date with the catalogue (tracks added, removed or changed)."""
    dh = DataHome.resolve(home)
    reason = None
    try:
        idx = open_index(dh, model, cfg)
    except FileNotFoundError:
        reason = "no song index yet"
    except ConfigMismatchError as e:
        reason = f"model or settings changed ({e})"
    else:
        tracks = catalogue_frame(dh)
        indexed = list(zip(map(int, idx.track_ids), idx.hashes))
        current = [(int(t), h) for t, h in zip(tracks.index, tracks["content_hash"])]
        unanalysed = [(int(t), h) for t, h in idx.manifest.get("unanalysed", [])]
        if sorted(current) == sorted(indexed + unanalysed):
            return idx
        idx.close()
        reason = "catalogue changed"
    if log is not None:
        log(f"building song index ({reason}) ...")
    return build_index(dh, model, cfg, progress=progress)


# --------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------


SHOWN_CANDIDATES = 10
"""Tracks an ambiguous title lists."""


@dataclass(frozen=True)
class QueryTrack:
    """A track named on the command line: catalogue id, path or title."""

    track_id: int | None
    path: str
    content_hash: str | None
    title: str


def resolve_track(track: str | int | Path, home: "str | Path | DataHome | None") -> QueryTrack:
    """Find ``track`` (a catalogue id, a file path or a title) in the catalogue.

    In that order: digits that are not a file are an id; a catalogued path
    or an existing file is that file; anything else is a title, or a part
    of one, matched case-insensitively among the ``ok`` tracks (a whole
    title first, then a part of one), which must name exactly one track. A
    path that is not catalogued gives a :class:`QueryTrack` with
    ``track_id`` None and its content hash (its vector then comes from the
    stored features of identical content, else from the file).

    Raises
    ------
    LookupError
        If a numeric id is not in the catalogue and no such file exists;
        the text is no file, id or title; it is part of several titles (the
        message lists them, with their ids); or the track's catalogue row is
        ``failed``.
    """
    dh = DataHome.resolve(home)
    text = str(track)
    with Catalog(dh.catalog_path) as cat:
        if text.isdigit() and not Path(text).exists():
            row = cat.get(int(text))
            if row is None:
                raise LookupError(f"no track with id {text} in the catalogue {dh.catalog_path}")
        else:
            row = cat.get_by_path(text)
            if row is None and Path(text).is_file():
                return QueryTrack(None, normalise_path(text), audio.content_hash(text), Path(text).stem)
            if row is None:
                row = cat.get(track_by_title(text, cat.tracks(status="ok")))
    if not row.ok:
        raise LookupError(f"track {row.id} ({row.path}) failed at ingest: {row.reason} ({row.detail})")
    return QueryTrack(row.id, row.path, row.content_hash, row.title or Path(row.path).stem)


def track_by_title(text: str, tracks: pd.DataFrame) -> int:
    """The id of the one track whose title is ``text``, or contains it (case-insensitive).

    A whole title wins over parts (``Castle`` names "Castle" even when
    "Castle Walls" exists); untitled tracks are matched by their file's name.

    Parameters
    ----------
    text : str
    tracks : DataFrame
        Indexed by id with ``title`` and ``path`` columns
        (:meth:`audiosim.store.catalog.Catalog.tracks`).

    Raises
    ------
    LookupError
        If no title holds ``text`` or several do (listing them).
    """
    wanted = text.strip().casefold()
    titles = {int(i): _title_of(t, p) for i, t, p in zip(tracks.index, tracks["title"], tracks["path"])}
    exact = [i for i, t in titles.items() if t.casefold() == wanted]
    found = exact or [i for i, t in titles.items() if wanted and wanted in t.casefold()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise LookupError(f"{text}: no such file, and no catalogue id or title (see `audiosim catalog`)")
    listed = "; ".join(f"{i}: {titles[i]} ({tracks.at[i, 'path']})" for i in found[:SHOWN_CANDIDATES])
    more = f"; and {len(found) - SHOWN_CANDIDATES} more" if len(found) > SHOWN_CANDIDATES else ""
    raise LookupError(f"{text!r} is in {len(found)} titles; name one by id or a longer part of its title: "
                      f"{listed}{more}")


def _title_of(title: object, path: str) -> str:
    """A track's title, else its file's name without the extension."""
    return str(title) if isinstance(title, str) and title.strip() else Path(path).stem


def query_vector(q: QueryTrack, home: "str | Path | DataHome | None", model: SongModel, cfg: SimilarityConfig = SimilarityConfig()) -> np.ndarray:
    """The song vector of a resolved query track (cached, else computed and cached;
    a file outside the catalogue is analysed on the fly and cached too)."""
    if q.content_hash is None:
        return analyse_file(q.path, model, cfg).vector
    return SongVectors(home, model, cfg).get(q.content_hash, q.path)


def similar(
    track: str | int | Path,
    home: "str | Path | DataHome | None" = None,
    k: int = 10,
    model: SongModel | None = None,
    cfg: SimilarityConfig = SimilarityConfig(),
    log: Callable[[str], None] | None = None,
    progress: bool | Callback | None = False,
) -> pd.DataFrame:
    """The ``k`` catalogue songs most similar to ``track``.

    Parameters
    ----------
    track : str, int or Path
        Catalogue id, path (a file not in the catalogue is analysed on the
        fly) or title (see :func:`resolve_track`).
    home : data home
    k : int
    model : SongModel, optional
        Default :func:`~audiosim.similarity.model.load_similarity_model` (frozen MSD musicnn).
    cfg : SimilarityConfig
    log : callable, optional
        Receives progress messages (e.g. index rebuilds).
    progress : bool or callable, optional
        ``progress(stage, info)`` (:mod:`audiosim.progress`) of the song
        vectors computed when the song index is (re)built.

    Returns
    -------
    DataFrame
        Columns ``rank, id, score, title, artist, duration, path``; ``score``
        is the cosine similarity of the song vectors (1 = identical sound).
        The query itself and other copies of the same file are left out.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    dh = DataHome.resolve(home)
    model = model or load_similarity_model()
    q = resolve_track(track, dh)
    vec = query_vector(q, dh, model, cfg)
    idx = ensure_index(dh, model, cfg, progress=progress, log=log)
    skip = {h for h in [q.content_hash] if h}
    ids, scores = idx.query(vec, k + 1 + sum(1 for h in idx.hashes if h in skip))
    tracks = catalogue_frame(dh)
    rows = []
    for tid, s in zip(ids, scores):
        if int(tid) == q.track_id or tid not in tracks.index or tracks.at[tid, "content_hash"] in skip:
            continue
        t = tracks.loc[tid]
        rows.append({"rank": len(rows) + 1, "id": int(tid), "score": round(float(s), 4), "title": t["title"],
                     "artist": t["artist"], "duration": t["duration"], "path": t["path"]})
        if len(rows) == k:
            break
    idx.close()
    return pd.DataFrame(rows, columns=["rank", "id", "score", "title", "artist", "duration", "path"])
