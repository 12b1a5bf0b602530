"""The song-similarity index and the queries on it.

Song vectors (:mod:`audiosim.similarity.vectors`) are indexed with Annoy
(angular) in ``<home>/index/songs/``, beside, not mixed with, the
fingerprint shards::

    manifest.json             model digest, configs, track ids, content hashes
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
from audiosim.fingerprint.model import Encoder, model_digest
from audiosim.index.writer import writer_lock
from audiosim.signal import audio
from audiosim.similarity.model import load_similarity_model, song_vector
from audiosim.similarity.vectors import (
    SongVectors,
    catalogue_frame,
    catalogue_vectors,
    file_logmel,
)
from audiosim.store.atomic import atomic_path, atomic_write_json
from audiosim.store.catalog import Catalog, normalise_path
from audiosim.store.content import FeatureStore
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
    model: Encoder,
    cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool = False,
) -> SongIndex:
    """Index the song vectors of every ``ok`` catalogue track and publish it atomically.

    The build holds the song index's writer lock, so concurrent builds run
    one after the other and never remove each other's files.
    """
    dh = DataHome.resolve(home).create()
    folder = song_index_dir(dh)
    with writer_lock(folder):
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
            "feature_config": model.features.to_dict(),
            "similarity_config": cfg.to_dict(),
            "similarity_config_digest": cfg.digest(),
            "track_ids": [int(t) for t in table.tracks.index],
            "content_hashes": list(table.tracks["content_hash"]),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_json(song_manifest_path(dh), manifest)
        if old and old.get("ann") and old["ann"] != ann_name:
            (folder / old["ann"]).unlink(missing_ok=True)
    return SongIndex(dh, manifest)


def _read_manifest(home: DataHome) -> dict | None:
    try:
        return json.loads(song_manifest_path(home).read_text())
    except FileNotFoundError:
        return None


def open_index(home: "str | Path | DataHome | None", model: Encoder, cfg: SimilarityConfig = SimilarityConfig()) -> SongIndex:
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
    if manifest["model_digest"] != model_digest(model):
        raise ConfigMismatchError(
            f"song index {song_manifest_path(dh)} was built with similarity model {manifest['model_digest']} "
            f"but {model_digest(model)} is in use; rebuild it"
        )
    cfg.check_same(SimilarityConfig.from_dict(manifest["similarity_config"]), f"song index {song_manifest_path(dh)}")
    return SongIndex(dh, manifest)


def ensure_index(
    home: "str | Path | DataHome | None",
    model: Encoder,
    cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool = False,
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
        store = FeatureStore.recorded(dh)
        current = [(int(t), h) for t, h in zip(tracks.index, tracks["content_hash"]) if store.has(h)]
        if current == list(zip(map(int, idx.track_ids), idx.hashes)):
            return idx
        idx.close()
        reason = "catalogue changed"
    if log is not None:
        log(f"building song index ({reason}) ...")
    return build_index(dh, model, cfg, progress=progress)


# --------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryTrack:
    """A track named on the command line: catalogue id or path."""

    track_id: int | None
    path: str
    content_hash: str | None
    title: str


def resolve_track(track: str | int | Path, home: "str | Path | DataHome | None") -> QueryTrack:
    """Find ``track`` (a catalogue id or a file path) in the catalogue.

    A path that is not catalogued gives a :class:`QueryTrack` with
    ``track_id`` None and its content hash (its vector then comes from the
    stored features of identical content, else from the file).

    Raises
    ------
    LookupError
        If a numeric id is not in the catalogue and no such file exists, or
        the path's catalogue row is ``failed``.
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
            if row is None:
                if not Path(text).is_file():
                    raise LookupError(f"{text}: no such file, and not a catalogue id")
                return QueryTrack(None, normalise_path(text), audio.content_hash(text), Path(text).stem)
    if not row.ok:
        raise LookupError(f"track {row.id} ({row.path}) failed at ingest: {row.reason} ({row.detail})")
    return QueryTrack(row.id, row.path, row.content_hash, row.title or Path(row.path).stem)


def query_vector(q: QueryTrack, home: "str | Path | DataHome | None", model: Encoder, cfg: SimilarityConfig = SimilarityConfig()) -> np.ndarray:
    """The song vector of a resolved query track (cached, else computed and cached;
    a file without stored features is analysed on the fly)."""
    sv = SongVectors(home, model, cfg)
    if q.content_hash is not None and (not sv.from_store or sv.store.has(q.content_hash)):
        return sv.get(q.content_hash, q.path)
    return song_vector(file_logmel(q.path, model.features), model, cfg)


def similar(
    track: str | int | Path,
    home: "str | Path | DataHome | None" = None,
    k: int = 10,
    model: Encoder | None = None,
    cfg: SimilarityConfig = SimilarityConfig(),
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The ``k`` catalogue songs most similar to ``track``.

    Parameters
    ----------
    track : str, int or Path
        Catalogue id or path (a file not in the catalogue is analysed on the fly).
    home : data home
    k : int
    model : Encoder, optional
        Default :func:`~audiosim.similarity.model.load_similarity_model`.
    cfg : SimilarityConfig
    log : callable, optional
        Receives progress messages (e.g. index rebuilds).

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
    idx = ensure_index(dh, model, cfg, log=log)
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
