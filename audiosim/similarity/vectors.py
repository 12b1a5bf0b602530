"""Song vectors and the song-similarity index.

A song's vector is the L2-normalised mean of the embeddings of its clips:
3-second log-mel windows (the similarity encoder's segment length) every
``SimilarityConfig.clip_hop_seconds``, near-silent ones dropped, at most
``max_clips`` spread evenly over the song. The encoder is the fingerprint
architecture trained with song-level triplets (two clips of one song are
positives, clips of other songs negatives; see
:mod:`audiosim.training.similarity`), so songs that sound alike get nearby
vectors. Similarity is the cosine of two song vectors (1 = same direction).

Vectors are computed from the log-mel features stored at ingest when the
encoder reads the same log-mel (a narrow-band model), else from the file
decoded at the encoder's own rate (the shipped model listens up to 8 kHz,
twice the fingerprint features' band). They are cached by content hash
under ``<home>/cache/song-vectors/<model>-<config>/``, and
indexed with Annoy (angular) in ``<home>/index/songs/`` (beside, not
mixed with, the fingerprint shards)::

    manifest.json             model digest, configs, track ids, content hashes
    songs-<build>.ann         the Annoy file the manifest names

A new build writes a new ``.ann`` file and then replaces the manifest, so
a reader always sees a matching pair; the previous file is removed after.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from audiosim.config import (
    ConfigMismatchError,
    DecodeConfig,
    FeatureConfig,
    SimilarityConfig,
)
from audiosim.fingerprint.model import MODELS_DIR, Encoder, load_encoder
from audiosim.signal import features as F
from audiosim.store.atomic import atomic_save_npy, atomic_write_json
from audiosim.store.catalog import Catalog, normalise_path
from audiosim.store.content import FeatureStore
from audiosim.store.home import DataHome

DEFAULT_SIMILARITY_MODEL = MODELS_DIR / "similarity.pt"
MANIFEST_NAME = "manifest.json"
_SPECTRAL = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "log_floor")


# --------------------------------------------------------------------------
# Model and clips
# --------------------------------------------------------------------------


def load_similarity_model(path: str | Path | None = None) -> Encoder:
    """Load the song-similarity encoder (default ``models/similarity.pt``).

    The returned model has ``.digest`` (of the checkpoint file) and ``.card``.
    """
    return load_encoder(path or DEFAULT_SIMILARITY_MODEL)


def spectral_match(stored: FeatureConfig, model: FeatureConfig) -> bool:
    """Whether two feature settings give the same log-mel (segment length aside)."""
    return all(getattr(stored, k) == getattr(model, k) for k in _SPECTRAL)


def clip_starts(logmel: np.ndarray | torch.Tensor, features: FeatureConfig, cfg: SimilarityConfig = SimilarityConfig()) -> np.ndarray:
    """Start frames of a song's clips.

    Audible clips (``features.silence_db``) every ``cfg.clip_hop_seconds``;
    when more than ``cfg.max_clips``, an evenly spaced subset. A song with
    no audible clip uses all clips; a song shorter than one clip gets one
    start at 0 (the caller pads it).
    """
    n = int(np.shape(logmel)[-1])
    if n < features.segment_frames:
        return np.zeros(1, np.int64)
    hop = F.seconds_to_frames(cfg.clip_hop_seconds, features)
    starts = F.audible_segments(logmel, hop, features)
    if starts.size == 0:
        starts = F.segment_starts(n, hop, features)
    if starts.size > cfg.max_clips:
        starts = starts[np.linspace(0, starts.size - 1, cfg.max_clips).round().astype(np.int64)]
    return starts


def song_clips(logmel: np.ndarray | torch.Tensor, features: FeatureConfig, cfg: SimilarityConfig = SimilarityConfig()) -> torch.Tensor:
    """The clips of a song as ``(n_clips, n_mels, segment_frames)`` log-mel windows.

    Songs shorter than one clip are tiled (repeated) up to its length.
    """
    lm = torch.as_tensor(np.asarray(logmel, dtype=np.float32))
    if lm.shape[-1] == 0:
        raise ValueError("no log-mel frames")
    if lm.shape[-1] < features.segment_frames:
        reps = -(-features.segment_frames // lm.shape[-1])
        lm = lm.repeat(1, reps)[:, : features.segment_frames]
    return F.segments(lm, clip_starts(lm, features, cfg), features)


def clip_vectors(logmel: np.ndarray | torch.Tensor, model: Encoder, cfg: SimilarityConfig = SimilarityConfig()) -> np.ndarray:
    """Unit embeddings of a song's clips, shape ``(n_clips, dim)``."""
    return model.embed(song_clips(logmel, model.features, cfg)).numpy()


def song_vector(logmel: np.ndarray | torch.Tensor, model: Encoder, cfg: SimilarityConfig = SimilarityConfig()) -> np.ndarray:
    """The song's vector: L2-normalised mean of its clip embeddings (float32, ``(dim,)``)."""
    return mean_vector(clip_vectors(logmel, model, cfg))


def mean_vector(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised mean of row vectors."""
    m = np.asarray(vectors, dtype=np.float64).mean(0)
    return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarities between the rows of ``a`` and of ``b`` (default ``a``)."""
    a = np.asarray(a, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    if b is None:
        return a @ a.T
    b = np.asarray(b, dtype=np.float64)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


# --------------------------------------------------------------------------
# Vectors of catalogue tracks (cached by content hash)
# --------------------------------------------------------------------------


def file_logmel(path: str | Path, features: FeatureConfig, decode: DecodeConfig = DecodeConfig()) -> np.ndarray:
    """Decode ``path`` at ``features.sample_rate`` and return its log-mel ``(n_mels, frames)``.

    Raises
    ------
    AudioError
        If the file cannot be decoded (the message names it).
    """
    from audiosim.ingest.ingest import compute_features

    return compute_features(path, features, decode)[0]


class SongVectors:
    """Song vectors of a data home's tracks, cached by content hash.

    Parameters
    ----------
    home : data home
    model : Encoder
        The similarity encoder (as :func:`load_similarity_model`).
    cfg : SimilarityConfig

    Attributes
    ----------
    from_store : bool
        True when the model reads the log-mel stored at ingest (same
        spectral settings); otherwise each file is decoded at the model's
        rate once, and only its vector is kept.
    """

    def __init__(self, home: "str | Path | DataHome | None", model: Encoder, cfg: SimilarityConfig = SimilarityConfig()):
        self.home = DataHome.resolve(home)
        self.model = model
        self.cfg = cfg
        self.store = _open_store(self.home)
        self.from_store = spectral_match(self.store.config, model.features)
        self.root = self.home.cache_dir / "song-vectors" / f"{model_digest(model)}-{cfg.digest()}"

    def path_for(self, content_hash: str) -> Path:
        return self.root / content_hash[:2] / f"{content_hash}.npy"

    def cached(self, content_hash: str) -> np.ndarray | None:
        """The cached vector of ``content_hash``, or None."""
        try:
            return np.load(self.path_for(content_hash)).astype(np.float32)
        except (FileNotFoundError, ValueError):
            return None

    def get(self, content_hash: str, path: str | Path | None = None) -> np.ndarray:
        """The vector of ``content_hash``, computed and cached on a miss.

        Parameters
        ----------
        content_hash : str
        path : str or Path, optional
            The file holding that content; needed on a miss unless the
            vector comes from stored features.

        Raises
        ------
        KeyError
            If the vector comes from stored features and the home has none
            for ``content_hash``.
        AudioError
            If the file cannot be decoded.
        ValueError
            If no ``path`` was given where one is needed, or the file no
            longer holds ``content_hash`` (it changed since ingest).
        """
        v = self.cached(content_hash)
        if v is not None:
            return v
        if self.from_store:
            logmel = self.store.get(content_hash)
        else:
            if path is None:
                raise ValueError(f"song vector of {content_hash[:12]}: the model decodes files, give the path")
            from audiosim.signal.audio import content_hash as hash_of

            if hash_of(path) != content_hash:
                raise ValueError(f"{path}: changed since it was ingested (run `audiosim ingest` again)")
            logmel = file_logmel(path, self.model.features)
        v = song_vector(logmel, self.model, self.cfg)
        atomic_save_npy(self.path_for(content_hash), v)
        return v

    def matrix(
        self, hashes: Sequence[str], paths: Sequence[str | Path] | None = None, progress: bool = False
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors of many tracks as a ``(n, dim)`` float32 matrix (rows in order).

        A track whose vector cannot be computed (unreadable or changed file,
        missing features) gets a zero row and a message naming it.

        Returns
        -------
        (ndarray, dict of int to str)
            The matrix, and the row and message of every track that failed.
        """
        from tqdm.auto import tqdm

        from audiosim.signal.audio import AudioError

        out = np.zeros((len(hashes), self.model.dim), np.float32)
        failed: dict[int, str] = {}
        paths = list(paths) if paths is not None else [None] * len(hashes)
        for i, (h, p) in enumerate(tqdm(list(zip(hashes, paths)), desc="song vectors", unit="song",
                                        disable=not progress)):
            try:
                out[i] = self.get(h, p)
            except (AudioError, KeyError, ValueError, OSError) as e:
                failed[i] = f"{p or h}: {e}"
        return out, failed


def _open_store(home: DataHome) -> FeatureStore:
    cfg_path = home.features_dir / FeatureStore.CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no features in {home.root} (run `audiosim ingest` first)")
    recorded = FeatureStore._read_config(cfg_path)
    return FeatureStore(home.features_dir, recorded)


def model_digest(model: Encoder) -> str:
    """The checkpoint digest of a loaded model (``"untrained"`` if it has none)."""
    return str(getattr(model, "digest", "untrained"))


def catalogue_tracks(home: "str | Path | DataHome | None") -> pd.DataFrame:
    """The ``ok`` tracks of the home's catalogue (DataFrame indexed by id)."""
    dh = DataHome.resolve(home)
    try:
        cat = Catalog(dh.catalog_path, create=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"no catalogue in {dh.root} (run `audiosim ingest` first)") from None
    with cat:
        return cat.tracks(status="ok")


@dataclass
class SongTable:
    """Catalogue tracks with their song vectors (row ``i`` of ``vectors`` is ``tracks.iloc[i]``)."""

    tracks: pd.DataFrame
    vectors: np.ndarray


def catalogue_vectors(
    home: "str | Path | DataHome | None",
    model: Encoder,
    cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool = False,
) -> SongTable:
    """Song vectors of every ``ok`` catalogue track.

    Tracks whose vector cannot be computed (see :meth:`SongVectors.matrix`)
    are left out, each with a warning naming the file.
    """
    sv = SongVectors(home, model, cfg)
    tracks = catalogue_tracks(home)
    if sv.from_store:
        tracks = tracks[[sv.store.has(h) for h in tracks["content_hash"]]]
    vectors, failed = sv.matrix(list(tracks["content_hash"]), list(tracks["path"]), progress=progress)
    if failed:
        for msg in failed.values():
            warnings.warn(f"song vector skipped: {msg}", stacklevel=2)
        keep = np.ones(len(vectors), bool)
        keep[list(failed)] = False
        tracks, vectors = tracks[keep], vectors[keep]
    return SongTable(tracks, vectors)


# --------------------------------------------------------------------------
# Annoy index of song vectors
# --------------------------------------------------------------------------


class SongIndex:
    """An Annoy (angular) index of song vectors with its manifest.

    Use :func:`build_index` to make one and :func:`open_index` /
    :func:`ensure_index` to read it.
    """

    def __init__(self, home: DataHome, manifest: dict):
        from annoy import AnnoyIndex

        self.home = home
        self.manifest = manifest
        self.track_ids = np.asarray(manifest["track_ids"], dtype=np.int64)
        self.hashes = list(manifest["content_hashes"])
        self.annoy = AnnoyIndex(int(manifest["dim"]), "angular")
        if self.track_ids.size:
            self.annoy.load(str(index_dir(home) / manifest["ann"]))
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


def index_dir(home: "str | Path | DataHome | None") -> Path:
    """Folder of the song index: ``<home>/index/songs``."""
    return DataHome.resolve(home).index_dir / "songs"


def manifest_path(home: "str | Path | DataHome | None") -> Path:
    return index_dir(home) / MANIFEST_NAME


def build_index(
    home: "str | Path | DataHome | None",
    model: Encoder,
    cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool = False,
) -> SongIndex:
    """Index the song vectors of every ``ok`` catalogue track and publish it atomically."""
    from annoy import AnnoyIndex

    dh = DataHome.resolve(home).create()
    folder = index_dir(dh)
    folder.mkdir(parents=True, exist_ok=True)
    table = catalogue_vectors(dh, model, cfg, progress=progress)
    build = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    ann_name = f"songs-{build}.ann"
    index = AnnoyIndex(model.dim, "angular")
    for i, v in enumerate(table.vectors):
        index.add_item(i, v.tolist())
    old = _read_manifest(dh)
    if len(table.vectors):
        index.build(cfg.n_trees, n_jobs=1)
        tmp = folder / f".{ann_name}.tmp"
        index.save(str(tmp))
        index.unload()
        os.replace(tmp, folder / ann_name)
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
    atomic_write_json(manifest_path(dh), manifest)
    if old and old.get("ann") and old["ann"] != ann_name:
        (folder / old["ann"]).unlink(missing_ok=True)
    return SongIndex(dh, manifest)


def _read_manifest(home: DataHome) -> dict | None:
    try:
        return json.loads(manifest_path(home).read_text())
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
        raise FileNotFoundError(f"no song index in {index_dir(dh)}")
    if manifest["model_digest"] != model_digest(model):
        raise ConfigMismatchError(
            f"song index {manifest_path(dh)} was built with similarity model {manifest['model_digest']} "
            f"but {model_digest(model)} is in use; rebuild it"
        )
    cfg.check_same(SimilarityConfig.from_dict(manifest["similarity_config"]), f"song index {manifest_path(dh)}")
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
        tracks = catalogue_tracks(dh)
        store = _open_store(dh)
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
                from audiosim.signal.audio import content_hash

                return QueryTrack(None, normalise_path(text), content_hash(text), Path(text).stem)
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
        Default :func:`load_similarity_model`.
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
    tracks = catalogue_tracks(dh)
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
