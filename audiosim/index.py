"""The fingerprint index: Annoy shards, id maps and a manifest.

Layout of ``<home>/index/``::

    manifest.json            the source of truth (see :class:`Manifest`)
    shard-0001.ann           Annoy forest of one build batch (angular metric)
    shard-0001.ids.npy       item -> (track id, time in s), structured array
    shard-0001.hub.npy       item -> hub score (k-occurrence / expected), float16
    shard-0001.json          dim, metric, trees, items, model and feature digests
    .lock                    held by writers (``filelock``), never by readers

Shards are immutable: :func:`update` embeds the catalogue's new or changed
tracks into a *new* shard and records removed or changed tracks as
tombstones (their items never match again); :func:`compact` merges every
shard into one, dropping tombstoned items. Shard names are never reused.

Publishing is atomic. Shard files are written to temporary files, fsynced
and renamed into place while no manifest refers to them yet; the manifest
that lists them is written last, atomically, under the writer lock. A
writer killed at any moment therefore leaves the previous manifest and
every file it lists untouched. Readers (:meth:`Index.open`) read the
manifest once and memory-map the shards it lists; a reader that races with
a compaction deleting superseded shards simply re-reads the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from annoy import AnnoyIndex
from filelock import FileLock

from . import features as F
from .config import ConfigMismatchError, FeatureConfig, IndexConfig
from .model import DEFAULT_FINGERPRINT_MODEL, Encoder, load_encoder
from .store import DataHome, FeatureStore, atomic_open, atomic_save_npy, atomic_write_json, clean_temp_files

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
IDS_DTYPE = np.dtype([("track", "<i4"), ("time", "<f4")])
"""Id map row: the catalogue track id and the segment start time (s)."""
SHARD_SUFFIXES = (".ann", ".ids.npy", ".hub.npy", ".json")

Progress = Callable[[str, dict], None]
"""``progress(stage, info)``: stages are ``plan``, ``embed`` (once per
track), ``built``, ``shard-files`` (shard files renamed into place, manifest
not yet written), ``calibrate`` and ``published``."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _quiet(stage: str, info: dict) -> None:
    pass


# --------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardInfo:
    """One shard as the manifest records it.

    Attributes
    ----------
    name : str
        ``shard-XXXX``; files are ``<name>.ann``, ``.ids.npy``, ``.hub.npy``, ``.json``.
    items : int
        Annoy items, numbered densely ``0 .. items-1``.
    tracks : tuple of (int, str)
        The (track id, content hash) pairs embedded in the shard.
    track_seconds : tuple of float
        Audio duration of each of those tracks.
    n_trees : int
    built : str
        ISO time of the build.
    """

    name: str
    items: int
    tracks: tuple[tuple[int, str], ...]
    track_seconds: tuple[float, ...]
    n_trees: int
    built: str

    @property
    def audio_seconds(self) -> float:
        return float(sum(self.track_seconds))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "items": self.items,
            "n_trees": self.n_trees,
            "built": self.built,
            "audio_seconds": round(self.audio_seconds, 3),
            "tracks": [[int(t), h, round(float(s), 3)] for (t, h), s in zip(self.tracks, self.track_seconds)],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ShardInfo":
        tracks = tuple((int(e[0]), str(e[1])) for e in d["tracks"])
        seconds = tuple(float(e[2]) if len(e) > 2 else 0.0 for e in d["tracks"])
        return cls(d["name"], int(d["items"]), tracks, seconds, int(d["n_trees"]), d["built"])


@dataclass(frozen=True)
class Tombstone:
    """A (track, content) pair that must never match again.

    ``reason`` is ``removed`` (no longer an ``ok`` catalogue track) or
    ``changed`` (the file's content changed; the new content is indexed anew).
    """

    track_id: int
    content_hash: str
    reason: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Manifest:
    """``index/manifest.json``: what the index holds and how it was made.

    Attributes
    ----------
    model_digest : str
        :func:`audiosim.model.file_digest` of the encoder checkpoint.
    model_path : str
        Where that checkpoint was loaded from (a hint for readers).
    model_step : int or None
        Training step of the checkpoint, from its card.
    feature_config : FeatureConfig
    config : IndexConfig
        Build settings (hop, metric, trees) and the default query settings.
    dim : int
        Embedding dimension (Annoy needs it to open a shard).
    shards : list of ShardInfo
    tombstones : list of Tombstone
    calibration : dict or None
        See :class:`audiosim.calibrate.Calibration`.
    generation : int
        Increases with every publish.
    next_shard : int
        Number of the next shard (names are never reused).
    """

    model_digest: str
    model_path: str
    model_step: int | None
    feature_config: FeatureConfig
    config: IndexConfig
    dim: int
    shards: list[ShardInfo] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    generation: int = 0
    next_shard: int = 1
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)

    @property
    def metric(self) -> str:
        return self.config.metric

    def indexed_pairs(self) -> set[tuple[int, str]]:
        """Every (track id, content hash) present in some shard."""
        return {p for s in self.shards for p in s.tracks}

    def dead_pairs(self) -> set[tuple[int, str]]:
        """The tombstoned (track id, content hash) pairs."""
        return {(t.track_id, t.content_hash) for t in self.tombstones}

    def live_tracks(self) -> dict[int, str]:
        """Track id -> content hash of the tracks that can match."""
        dead = self.dead_pairs()
        return {t: h for t, h in sorted(self.indexed_pairs()) if (t, h) not in dead}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "generation": self.generation,
            "created": self.created,
            "updated": self.updated,
            "model": {"digest": self.model_digest, "path": self.model_path, "step": self.model_step},
            "feature_config": self.feature_config.to_dict(),
            "feature_digest": self.feature_config.digest(),
            "index_config": self.config.to_dict(),
            "metric": self.metric,
            "dim": self.dim,
            "n_trees": self.config.n_trees,
            "items": sum(s.items for s in self.shards),
            "audio_seconds": round(sum(s.audio_seconds for s in self.shards), 3),
            "next_shard": self.next_shard,
            "shards": [s.to_dict() for s in self.shards],
            "tombstones": [t.to_dict() for t in self.tombstones],
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        if int(d.get("format", 0)) > FORMAT_VERSION:
            raise ValueError(f"index format {d.get('format')} is newer than this audiosim ({FORMAT_VERSION})")
        return cls(
            model_digest=d["model"]["digest"],
            model_path=d["model"].get("path", ""),
            model_step=d["model"].get("step"),
            feature_config=FeatureConfig.from_dict(d["feature_config"]),
            config=IndexConfig.from_dict(d["index_config"]),
            dim=int(d["dim"]),
            shards=[ShardInfo.from_dict(s) for s in d["shards"]],
            tombstones=[Tombstone(**t) for t in d.get("tombstones", [])],
            calibration=d.get("calibration"),
            generation=int(d.get("generation", 0)),
            next_shard=int(d.get("next_shard", 1)),
            created=d.get("created", ""),
            updated=d.get("updated", ""),
        )

    @classmethod
    def load(cls, directory: str | Path) -> "Manifest":
        """Read ``<directory>/manifest.json``.

        Raises
        ------
        FileNotFoundError
            When there is no index in ``directory`` (the message says how to build one).
        ValueError
            When the manifest is unreadable.
        """
        path = Path(directory) / MANIFEST_NAME
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"no index at {directory} (no {MANIFEST_NAME}); build one with `audiosim index`") from None
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: unreadable index manifest ({e})") from e

    def save(self, directory: str | Path) -> None:
        """Write the manifest atomically (the publishing step)."""
        atomic_write_json(Path(directory) / MANIFEST_NAME, self.to_dict())


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def model_digest(model: Encoder | str) -> str:
    """The digest identifying an encoder: its checkpoint digest when it was
    loaded from a file, else a hash of its weights; a string is taken as a digest."""
    if isinstance(model, str):
        return model
    d = getattr(model, "digest", None)
    if d:
        return str(d)
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return "w" + h.hexdigest()[:15]


def check_compatible(
    manifest: Manifest, where: str | Path, model: Encoder | str | None = None, features: FeatureConfig | None = None
) -> None:
    """Refuse a model or feature config other than the ones the index was built with.

    Raises
    ------
    ConfigMismatchError
        Naming both model digests (or both feature config digests and the
        differing fields).
    """
    if model is not None:
        given = model_digest(model)
        if given != manifest.model_digest:
            path = getattr(model, "path", None) or ""
            raise ConfigMismatchError(
                f"index {where} was built with model {manifest.model_digest} ({manifest.model_path}) but model "
                f"{given}{f' ({path})' if path else ''} is in use; rebuild the index with this model "
                "(`audiosim index --rebuild --model PATH`) or use the model it was built with"
            )
        if isinstance(model, Encoder):
            model.features.check_same(manifest.feature_config, f"index {where}")
    if features is not None:
        features.check_same(manifest.feature_config, f"index {where}")


def _check_build_config(recorded: IndexConfig, given: IndexConfig, where: Path) -> None:
    for name in ("index_hop_seconds", "metric"):
        a, b = getattr(given, name), getattr(recorded, name)
        if a != b:
            raise ConfigMismatchError(
                f"index {where} was built with {name}={b!r} but {a!r} is asked for; rebuild the index "
                "(`audiosim index --rebuild`) to change it"
            )


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


@dataclass
class Neighbours:
    """Nearest indexed segments of ``Q`` query vectors, best first.

    Attributes
    ----------
    track, time, sim, item : ndarray, shape (Q, k)
        Track id (-1 where fewer than ``k`` were found), segment start time
        (s), cosine similarity, and a key unique to the item within the
        opened index (``shard base + item id``).
    """

    track: np.ndarray
    time: np.ndarray
    sim: np.ndarray
    item: np.ndarray


class Shard:
    """An opened shard: a memory-mapped Annoy forest and its id map."""

    def __init__(self, directory: Path, info: ShardInfo, dim: int, metric: str, base: int):
        self.info = info
        self.base = base
        ids = np.load(directory / f"{info.name}.ids.npy", mmap_mode="r", allow_pickle=False)
        hub_path = directory / f"{info.name}.hub.npy"
        self.hub = np.load(hub_path, allow_pickle=False) if hub_path.exists() else np.zeros(info.items, np.float16)
        self.ann = AnnoyIndex(dim, metric)
        self.ann.load(str(directory / f"{info.name}.ann"))  # memory-mapped, not read
        if self.ann.get_n_items() != info.items or len(ids) != info.items:
            raise ValueError(
                f"{directory / info.name}: {self.ann.get_n_items()} Annoy items and {len(ids)} ids, "
                f"manifest says {info.items}"
            )
        self.track = np.asarray(ids["track"], dtype=np.int64)
        self.time = np.asarray(ids["time"], dtype=np.float32)
        self.usable = np.ones(info.items, bool)
        self._by_track: np.ndarray | None = None

    def mask(self, dead_tracks: Iterable[int], hub_ratio: float) -> None:
        """Mark items of tombstoned tracks and hub items as unusable."""
        dead = np.fromiter(dead_tracks, dtype=np.int64)
        self.usable = ~np.isin(self.track, dead)
        if hub_ratio > 0:
            self.usable &= ~(self.hub.astype(np.float32) > hub_ratio)

    def vector(self, item: int) -> np.ndarray:
        return np.asarray(self.ann.get_item_vector(int(item)), dtype=np.float32)

    def segments(self, track: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Usable items of ``track`` starting within [start, end] s: (times, vectors), by time."""
        if self._by_track is None:  # items ordered by (track, time), built on first use
            self._by_track = np.lexsort((self.time, self.track))
        order = self._by_track
        keys = self.track[order]
        a, b = np.searchsorted(keys, track, "left"), np.searchsorted(keys, track, "right")
        items = order[a:b]
        times = self.time[items]
        items = items[(times >= start - 1e-6) & (times <= end + 1e-6)]
        items = items[self.usable[items]]
        vecs = np.zeros((len(items), self.ann.f), np.float32)
        for row, i in enumerate(items):
            vecs[row] = self.ann.get_item_vector(int(i))
        return self.time[items], vecs

    def close(self) -> None:
        self.ann.unload()


def index_dir(home: str | Path | DataHome | None = None) -> Path:
    """The index folder of a data home; a folder holding ``manifest.json`` is taken as is."""
    if home is not None and not isinstance(home, DataHome) and (Path(home) / MANIFEST_NAME).is_file():
        return Path(home)
    return DataHome.resolve(home).index_dir


class Index:
    """A read-only view of a published index: one manifest, its shards memory-mapped.

    Open with :meth:`Index.open`. Queries never see later publishes; open
    again (or call :meth:`reopen`) to see them.

    Attributes
    ----------
    directory : Path
    manifest : Manifest
    shards : list of Shard
    config : IndexConfig
        The query settings (the manifest's unless overridden at open).
    """

    def __init__(self, directory: Path, manifest: Manifest, config: IndexConfig | None = None):
        self.directory = Path(directory)
        self.manifest = manifest
        self.config = config or manifest.config
        self.shards: list[Shard] = []
        base = 0
        try:
            for info in manifest.shards:
                self.shards.append(Shard(self.directory, info, manifest.dim, manifest.metric, base))
                base += info.items
        except BaseException:
            self.close()
            raise
        self._apply_masks()

    def _apply_masks(self) -> None:
        dead = self.manifest.dead_pairs()
        for s in self.shards:
            s.mask([t for t, h in s.info.tracks if (t, h) in dead], self.config.hub_ratio)

    @classmethod
    def open(
        cls,
        home: str | Path | DataHome | None = None,
        *,
        model: Encoder | str | None = None,
        features: FeatureConfig | None = None,
        config: IndexConfig | None = None,
        retries: int = 5,
    ) -> "Index":
        """Open the published index of a data home.

        Parameters
        ----------
        home : str, Path or DataHome, optional
            Data home (default ``$AUDIOSIM_HOME`` or ``./data``), or the index
            folder itself.
        model : Encoder or str, optional
            The encoder (or its digest) queries will be embedded with; any
            other than the index's raises :class:`ConfigMismatchError`.
        features : FeatureConfig, optional
            Checked the same way.
        config : IndexConfig, optional
            Query settings to use instead of the manifest's (``search_k``,
            ``neighbours``, ``hub_ratio``, ...). Build settings must match.
        retries : int
            Times to re-read the manifest when a shard it lists vanished
            (a compaction published meanwhile).

        Raises
        ------
        FileNotFoundError
            If no index was built.
        ConfigMismatchError
            See ``model`` and ``features``.
        """
        directory = index_dir(home)
        for attempt in range(retries + 1):
            manifest = Manifest.load(directory)
            check_compatible(manifest, directory, model, features)
            if config is not None:
                _check_build_config(manifest.config, config, directory)
            try:
                return cls(directory, manifest, config)
            except (FileNotFoundError, OSError) as e:
                if attempt == retries or Manifest.load(directory).generation == manifest.generation:
                    raise FileNotFoundError(f"index {directory} generation {manifest.generation} is damaged: {e}") from e
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def reopen(self) -> "Index":
        """This index as now published (a new object; this one stays valid)."""
        return Index.open(self.directory, model=self.manifest.model_digest, config=self.config)

    def is_current(self) -> bool:
        """False once a newer manifest has been published."""
        try:
            return Manifest.load(self.directory).generation == self.manifest.generation
        except (FileNotFoundError, ValueError):
            return False

    def close(self) -> None:
        """Unmap the shards."""
        for s in self.shards:
            s.close()
        self.shards = []

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts -------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def n_items(self) -> int:
        return sum(s.info.items for s in self.shards)

    @property
    def audio_seconds(self) -> float:
        return sum(s.info.audio_seconds for s in self.shards)

    def live_tracks(self) -> dict[int, str]:
        """Track id -> content hash of every track that can match."""
        return self.manifest.live_tracks()

    def disk_bytes(self) -> int:
        """Bytes of the shard files (Annoy forests, id maps, hub scores)."""
        return sum(
            (self.directory / f"{s.info.name}{suf}").stat().st_size for s in self.shards for suf in SHARD_SUFFIXES
            if (self.directory / f"{s.info.name}{suf}").exists()
        )

    # -- search ------------------------------------------------------------

    def search(
        self,
        vectors: np.ndarray | torch.Tensor,
        k: int | None = None,
        search_k: int | None = None,
        exclude_tracks: Sequence[int] | int | None = None,
        use_masks: bool = True,
    ) -> Neighbours:
        """The ``k`` nearest usable indexed segments of each vector, over all shards.

        Items of tombstoned tracks and hub items are skipped (unless
        ``use_masks`` is False); more neighbours are fetched from a shard
        when skipped ones left fewer than ``k``.

        Parameters
        ----------
        vectors : array, shape (Q, dim)
            Unit-length query embeddings.
        k : int, optional
            Neighbours per query (default ``config.neighbours``).
        search_k : int, optional
            Annoy nodes inspected per query and shard (default
            ``config.search_k``; -1 lets Annoy pick ``n_trees * k``).
        exclude_tracks : int or sequence of int, optional
            Tracks whose items are skipped, for every query
            (leave-one-track-out calibration).
        use_masks : bool

        Returns
        -------
        Neighbours
        """
        v = np.asarray(vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else vectors, np.float32)
        k = int(k or self.config.neighbours)
        q_n = v.shape[0]
        sk = self.config.search_k if search_k is None else int(search_k)
        excl = None if exclude_tracks is None else np.atleast_1d(np.asarray(exclude_tracks, np.int64))
        out_t = np.full((q_n, k), -1, np.int64)
        out_time = np.zeros((q_n, k), np.float32)
        out_s = np.full((q_n, k), -np.inf, np.float32)
        out_i = np.full((q_n, k), -1, np.int64)
        extra = 0 if exclude_tracks is None else 4 * k
        for qi in range(q_n):
            cand_i, cand_s = [], []
            for s in self.shards:
                n = min(k + extra, s.info.items)
                while n > 0:
                    ids, dist = s.ann.get_nns_by_vector(v[qi], n, _search_k(sk, n, s.info.n_trees, k), True)
                    ids = np.asarray(ids, np.int64)
                    ok = np.ones(len(ids), bool) if excl is None else ~np.isin(s.track[ids], excl)
                    if use_masks:
                        ok &= s.usable[ids]
                    if ok.sum() >= k or len(ids) < n or n >= s.info.items:
                        break
                    n = min(4 * n, s.info.items)
                ids = ids[ok]
                d = np.asarray(dist, np.float32)[ok]
                cand_i.append(ids + s.base)
                cand_s.append(1.0 - 0.5 * d * d if self.manifest.metric == "angular" else d)
            if not cand_i:
                continue
            items = np.concatenate(cand_i)
            sims = np.concatenate(cand_s)
            top = np.argsort(-sims, kind="stable")[:k]
            n_top = len(top)
            out_i[qi, :n_top] = items[top]
            out_s[qi, :n_top] = sims[top]
        found = out_i >= 0
        if found.any():
            tr, tm = self.lookup(out_i[found])
            out_t[found] = tr
            out_time[found] = tm
        out_s[~found] = 0.0
        return Neighbours(out_t, out_time, out_s, out_i)

    def track_segments(self, track: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Usable indexed segments of ``track`` starting within [start, end] s.

        Returns
        -------
        (ndarray, ndarray)
            Start times ``(n,)`` in time order and unit-length vectors
            ``(n, dim)``; empty for a track the index does not hold.
        """
        parts = [s.segments(track, start, end) for s in self.shards]
        parts = [p for p in parts if len(p[0])]
        if not parts:
            return np.zeros(0, np.float32), np.zeros((0, self.dim), np.float32)
        times = np.concatenate([p[0] for p in parts])
        vecs = np.concatenate([p[1] for p in parts])
        order = np.argsort(times, kind="stable")
        return times[order], vecs[order]

    def lookup(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Track ids and times of global item keys (as in :attr:`Neighbours.item`)."""
        items = np.asarray(items, np.int64)
        bases = np.array([s.base for s in self.shards], np.int64)
        which = np.searchsorted(bases, items, side="right") - 1
        tracks = np.empty(len(items), np.int64)
        times = np.empty(len(items), np.float32)
        for si in np.unique(which):
            sel = which == si
            s = self.shards[si]
            tracks[sel] = s.track[items[sel] - s.base]
            times[sel] = s.time[items[sel] - s.base]
        return tracks, times

    def iter_usable(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """For each shard: (shard number, usable item ids, their tracks, their times)."""
        for si, s in enumerate(self.shards):
            ids = np.flatnonzero(s.usable)
            yield si, ids, s.track[ids], s.time[ids]


def _search_k(search_k: int, n: int, n_trees: int, k: int) -> int:
    # The tuned search_k is for k neighbours; asking for more must not search less.
    if search_k is None or search_k < 0:
        return -1
    return max(search_k * n // max(k, 1), n_trees * n) if n > k else max(search_k, n_trees * n)


# --------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------


def embed_logmel(
    model: Encoder, logmel: np.ndarray | torch.Tensor, hop_frames: int, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Embed the audible segments of a log-mel spectrogram.

    Parameters
    ----------
    model : Encoder
    logmel : array, shape (n_mels, frames)
    hop_frames : int
        Hop between segment starts.
    chunk : int
        Segments cut and embedded at once (bounds memory for long tracks).

    Returns
    -------
    (ndarray, ndarray)
        Float32 vectors ``(n, dim)`` and the segments' start frames ``(n,)``.
    """
    f = model.features
    lm = torch.as_tensor(np.asarray(logmel), dtype=torch.float32)
    starts = F.audible_segments(lm, hop_frames, f)
    out = []
    for i in range(0, len(starts), chunk):
        segs = F.segments(lm, starts[i : i + chunk], f)
        out.append(model.embed(segs).numpy())
    vecs = np.concatenate(out) if out else np.zeros((0, model.dim), np.float32)
    return vecs.astype(np.float32, copy=False), starts


# --------------------------------------------------------------------------
# Embeddings computed ahead, by other processes (Dask workers)
# --------------------------------------------------------------------------

EMBEDDINGS = "embeddings"
"""Folder of ``<home>/cache/`` where workers leave per-track embeddings."""


def embeddings_dir(home: str | Path | DataHome, model_digest: str, features: FeatureConfig, hop_frames: int) -> Path:
    """``<home>/cache/embeddings/<model>-<features>-hop<N>/``: the embeddings of one
    model, feature config and index hop, one ``<content hash>.npz`` per track."""
    dh = home if isinstance(home, DataHome) else DataHome(Path(home))
    return dh.cache_dir / EMBEDDINGS / f"{model_digest}-{features.digest()}-hop{int(hop_frames)}"


def save_embedding(path: Path, vectors: np.ndarray, starts: np.ndarray) -> None:
    """Write a track's segment vectors and start frames atomically (``.npz``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        np.savez(f, vectors=np.asarray(vectors, np.float32), starts=np.asarray(starts, np.int64))


def load_embedding(path: Path, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A track's (vectors, start frames) from :func:`save_embedding`, or None if
    the file is missing or unusable (then the track is embedded again)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            vecs, starts = np.asarray(z["vectors"], np.float32), np.asarray(z["starts"], np.int64)
    except (OSError, ValueError, KeyError):
        return None
    if vecs.ndim != 2 or (len(vecs) and vecs.shape[1] != dim) or len(vecs) != len(starts):
        return None
    return vecs, starts


@dataclass(frozen=True)
class EmbedJob:
    """Tracks to embed ahead of an :func:`update`, and with what.

    Attributes
    ----------
    model_path : str
        Checkpoint every worker loads.
    model_digest : str
        Its digest; a worker that finds another file there refuses.
    hop_frames : int
        Hop between indexed segments.
    directory : str
        Where the ``<content hash>.npz`` files go (:func:`embeddings_dir`).
    tracks : tuple of (int, str)
        (track id, content hash) still to embed.
    """

    model_path: str
    model_digest: str
    hop_frames: int
    directory: str
    tracks: tuple[tuple[int, str], ...]


def plan_embedding(
    home: str | Path | DataHome | None = None,
    model: str | Path | None = None,
    config: IndexConfig | None = None,
    *,
    rebuild: bool = False,
) -> EmbedJob:
    """The tracks the next :func:`update` would embed, minus those already embedded.

    Read-only (no lock): a track added or removed meanwhile is simply
    embedded by :func:`update` itself, or embedded for nothing.

    Raises
    ------
    ConfigMismatchError
        As :func:`update` would.
    ValueError
        If the model is not a checkpoint file (workers load it by path).
    """
    dh = DataHome.resolve(home)
    st = _state(dh, model, config, rebuild)
    path = getattr(st.model, "path", None)
    if not path or not Path(path).is_file():
        raise ValueError("embedding on workers needs the model as a checkpoint file")
    hop = F.seconds_to_frames(st.config.index_hop_seconds, st.model.features)
    directory = embeddings_dir(dh, model_digest(st.model), st.model.features, hop)
    todo = tuple((t, h) for t, h in st.plan.add if not (directory / f"{h}.npz").is_file())
    return EmbedJob(str(path), model_digest(st.model), hop, str(directory), todo)


_worker_models: dict[tuple[str, str], Encoder] = {}


def _worker_model(path: str, digest: str, features: FeatureConfig | None = None) -> Encoder:
    """The encoder at ``path``, loaded once per process; refuses another digest."""
    key = (path, digest)
    if key not in _worker_models:
        enc = load_encoder(path, features).for_inference()
        if model_digest(enc) != digest:
            raise ConfigMismatchError(
                f"{path}: model {model_digest(enc)} found but the index update planned with model {digest}; "
                "the checkpoint was replaced meanwhile, run the index update again"
            )
        _worker_models.clear()  # one model per process is enough
        _worker_models[key] = enc
    return _worker_models[key]


def embed_tracks(
    home: str | Path | DataHome | None, job: EmbedJob, tracks: Sequence[tuple[int, str]] | None = None
) -> list[tuple[int, int]]:
    """Embed tracks of ``job`` into their ``.npz`` files (one torch thread).

    The unit of work of a Dask fan-out: the vectors go to the data home,
    only (track id, segments) pairs are returned. A file already there is
    not recomputed.

    Parameters
    ----------
    home : str, Path or DataHome, optional
    job : EmbedJob
        From :func:`plan_embedding`.
    tracks : sequence of (int, str), optional
        A batch of ``job.tracks`` (default: all of them).

    Returns
    -------
    list of (int, int)
        (track id, segments embedded; -1 when the file already existed).
    """
    from .runners import one_torch_thread

    dh = DataHome.resolve(home)
    directory = Path(job.directory)
    out = []
    with one_torch_thread():
        enc = _worker_model(job.model_path, job.model_digest)
        store = FeatureStore(dh.features_dir, enc.features)
        for tid, h in job.tracks if tracks is None else tracks:
            path = directory / f"{h}.npz"
            if path.is_file():
                out.append((int(tid), -1))
                continue
            vecs, starts = embed_logmel(enc, store.get(h), job.hop_frames)
            save_embedding(path, vecs, starts)
            out.append((int(tid), len(vecs)))
    return out


def _drop_embeddings(directory: Path, hashes: Iterable[str]) -> None:
    """Delete the embedding files an update consumed (they are in a shard now)."""
    for h in hashes:
        (directory / f"{h}.npz").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()  # only when empty


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What an update will do.

    Attributes
    ----------
    add : list of (int, str)
        (track id, content hash) to embed into a new shard.
    tombstone : list of Tombstone
        Indexed tracks to stop matching.
    missing_features : list of (int, str)
        ``ok`` catalogue tracks without stored features (skipped; re-ingest them).
    duplicates : list of (int, int)
        (track id, track id it duplicates): same content, indexed once.
    """

    add: list[tuple[int, str]]
    tombstone: list[Tombstone]
    missing_features: list[tuple[int, str]]
    duplicates: list[tuple[int, int]]


def catalogue_tracks(home: DataHome) -> tuple[dict[int, str], list[tuple[int, int]], dict[int, float]]:
    """Content hash of each ``ok`` track, deduplicated by content (lowest id kept).

    Returns
    -------
    (dict, list, dict)
        Track id -> hash; (duplicate id, kept id) pairs; track id -> duration.
    """
    from .catalog import Catalog

    if not home.catalog_path.exists():
        return {}, [], {}
    tracks: dict[int, str] = {}
    durations: dict[int, float] = {}
    by_hash: dict[str, int] = {}
    dups: list[tuple[int, int]] = []
    with Catalog(home.catalog_path, create=False) as cat:
        for t in cat.iter_tracks(status="ok"):
            if not t.content_hash:
                continue
            if t.content_hash in by_hash:
                dups.append((t.id, by_hash[t.content_hash]))
                continue
            by_hash[t.content_hash] = t.id
            tracks[t.id] = t.content_hash
            durations[t.id] = float(t.duration or 0.0)
    return tracks, dups, durations


def plan_update(
    manifest: Manifest | None, catalogue: dict[int, str], store: FeatureStore, duplicates: Sequence[tuple[int, int]] = ()
) -> Plan:
    """Compare the catalogue with the index: what to add and what to tombstone.

    A track is added when its (id, hash) is not live in the index; a live
    (id, hash) is tombstoned as ``changed`` when the catalogue has another
    hash for the id, as ``removed`` when the id is gone (or no longer ``ok``).
    """
    live = manifest.live_tracks() if manifest else {}
    now = _now()
    tomb = [
        Tombstone(t, h, "changed" if t in catalogue else "removed", now)
        for t, h in sorted(live.items())
        if catalogue.get(t) != h
    ]
    add, missing = [], []
    for t, h in sorted(catalogue.items()):
        if live.get(t) == h:
            continue
        (add if store.has(h) else missing).append((t, h))
    return Plan(add, tomb, missing, list(duplicates))


@dataclass
class UpdateResult:
    """What :func:`update` or :func:`compact` did.

    Attributes
    ----------
    action : str
        ``update``, ``rebuild``, ``compact`` or ``nothing``.
    generation : int
        Manifest generation after the run.
    shard : str or None
        The shard written.
    added_tracks, tombstoned_tracks : int
    items : int
        Items in the shard written.
    audio_seconds : float
        Audio embedded (or merged).
    embed_seconds, build_seconds, calibrate_seconds, total_seconds : float
    segments_per_second : float
        Embedding throughput.
    shards : int
        Shards in the index afterwards.
    index_items : int
        Items in the index afterwards.
    missing_features : int
        Tracks skipped for lack of features.
    calibrated : bool
    """

    action: str
    generation: int
    shard: str | None = None
    added_tracks: int = 0
    tombstoned_tracks: int = 0
    items: int = 0
    audio_seconds: float = 0.0
    embed_seconds: float = 0.0
    build_seconds: float = 0.0
    calibrate_seconds: float = 0.0
    total_seconds: float = 0.0
    segments_per_second: float = 0.0
    shards: int = 0
    index_items: int = 0
    missing_features: int = 0
    calibrated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def writer_lock(directory: Path, timeout: float = -1) -> Iterator[None]:
    """Hold ``<index>/.lock``: one writer at a time (readers never lock).

    The lock is an OS file lock, released if the writer dies.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / LOCK_NAME), timeout=timeout):
        yield


def resolve_model(
    model: Encoder | str | Path | None, manifest: Manifest | None = None, features: FeatureConfig | None = None
) -> Encoder:
    """An :class:`Encoder`: the one given, loaded from the path given, the
    index's own checkpoint when it still exists, or the shipped default."""
    if isinstance(model, Encoder):
        return model
    if model is None:
        path = DEFAULT_FINGERPRINT_MODEL
        if manifest is not None and manifest.model_path and Path(manifest.model_path).is_file():
            path = Path(manifest.model_path)
    else:
        path = Path(model)
    enc = load_encoder(path, features).for_inference()
    enc.path = str(Path(path).resolve())  # type: ignore[attr-defined]
    return enc


def _temp_path(final: Path) -> Path:
    # Named like audiosim.store's temp files, so clean_temp_files removes a
    # dead writer's leftovers.
    from .store import temp_prefix

    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), suffix=".tmp", dir=final.parent)
    os.close(fd)
    return Path(tmp)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ShardWriter:
    """Builds one shard into temporary files, then renames them into place."""

    def __init__(self, directory: Path, name: str, dim: int, config: IndexConfig):
        self.directory = directory
        self.name = name
        self.dim = dim
        self.config = config
        self.final_ann = directory / f"{name}.ann"
        self.tmp_ann = _temp_path(self.final_ann)
        self.ann = AnnoyIndex(dim, config.metric)
        self.ann.on_disk_build(str(self.tmp_ann))  # items live in the file, not in memory
        self.n = 0
        self.ids: list[np.ndarray] = []
        self.tracks: list[tuple[int, str]] = []
        self.seconds: list[float] = []

    def add(self, track_id: int, content_hash: str, vectors: np.ndarray, times: np.ndarray, seconds: float) -> None:
        """Add one track's segment vectors (ids continue densely)."""
        for v in vectors:
            self.ann.add_item(self.n, v)
            self.n += 1
        rows = np.zeros(len(vectors), IDS_DTYPE)
        rows["track"] = track_id
        rows["time"] = times
        self.ids.append(rows)
        self.tracks.append((int(track_id), content_hash))
        self.seconds.append(float(seconds))

    def build(self) -> None:
        self.ann.build(self.config.n_trees, n_jobs=1)

    def id_map(self) -> np.ndarray:
        return np.concatenate(self.ids) if self.ids else np.zeros(0, IDS_DTYPE)

    def vector(self, item: int) -> np.ndarray:
        return np.asarray(self.ann.get_item_vector(int(item)), dtype=np.float32)

    def publish_files(self, hub: np.ndarray, model_digest: str, features: FeatureConfig) -> ShardInfo:
        """fsync and rename the shard's files into place (the Annoy file last).

        No manifest lists them yet, so readers cannot see them.
        """
        from .store import fsync_dir

        built = _now()
        atomic_save_npy(self.directory / f"{self.name}.ids.npy", self.id_map())
        atomic_save_npy(self.directory / f"{self.name}.hub.npy", hub.astype(np.float16))
        sidecar = {
            "name": self.name, "dim": self.dim, "metric": self.config.metric, "n_trees": self.config.n_trees,
            "items": self.n, "model_digest": model_digest, "feature_digest": features.digest(),
            "index_hop_seconds": self.config.index_hop_seconds, "built": built,
        }
        atomic_write_json(self.directory / f"{self.name}.json", sidecar)
        self.ann.unload()
        _fsync_path(self.tmp_ann)
        os.replace(self.tmp_ann, self.final_ann)
        fsync_dir(self.directory)
        return ShardInfo(self.name, self.n, tuple(self.tracks), tuple(self.seconds), self.config.n_trees, built)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.ann.unload()
        self.tmp_ann.unlink(missing_ok=True)


def hub_scores(
    ann: AnnoyIndex,
    item_tracks: np.ndarray,
    query_vectors: np.ndarray,
    query_tracks: np.ndarray,
    k: int,
    search_k: int = -1,
) -> np.ndarray:
    """k-occurrence of each item of ``ann`` over queries from other tracks,
    divided by its expected value (``Q * k / items``).

    A score near 1 is an ordinary item; hubs, which sit close to a great
    deal of unrelated music, score far above (see ``IndexConfig.hub_ratio``).
    A query never counts items of its own track, so it behaves like music
    that is not in the index.

    Parameters
    ----------
    ann : AnnoyIndex
        A built forest.
    item_tracks : ndarray, shape (items,)
        Track id of each item.
    query_vectors : ndarray, shape (Q, dim)
    query_tracks : ndarray, shape (Q,)
    k : int
        Neighbours counted per query.
    search_k : int

    Returns
    -------
    ndarray, shape (items,), float32
    """
    n = len(item_tracks)
    counts = np.zeros(n, np.float64)
    if n == 0 or len(query_vectors) == 0:
        return np.zeros(n, np.float32)
    ask = min(n, 4 * k)
    used = 0
    for v, t in zip(query_vectors, query_tracks):
        ids = np.asarray(ann.get_nns_by_vector(v, ask, search_k), np.int64)
        ids = ids[item_tracks[ids] != t][:k]
        if len(ids):
            counts[ids] += 1
            used += 1
    expected = max(used * k / n, 1e-9)
    return (counts / expected).astype(np.float32)


Pool = tuple[Callable[[int], np.ndarray], np.ndarray, np.ndarray]
"""(vector of item, item ids, their track ids): where hub queries are drawn from."""


def _sample_queries(pools: Sequence[Pool], n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of item vectors (and their tracks) across ``pools``."""
    sizes = np.array([len(ids) for _, ids, _ in pools], np.int64)
    total = int(sizes.sum())
    if total == 0:
        return np.zeros((0, 1), np.float32), np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(n_queries, total), replace=False))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    vecs, tracks = [], []
    for (vector, ids, trk), lo, hi in zip(pools, bounds[:-1], bounds[1:]):
        sel = pick[(pick >= lo) & (pick < hi)] - lo
        if len(sel):
            vecs.append(np.stack([vector(int(i)) for i in ids[sel]]))
            tracks.append(trk[sel])
    return np.concatenate(vecs).astype(np.float32), np.concatenate(tracks).astype(np.int64)


def _finish_shard(
    writer: _ShardWriter, others: Sequence[Pool], manifest: Manifest, features: FeatureConfig, progress: Progress
) -> tuple[ShardInfo, float]:
    """Build the forest, score hubs, write the files; returns (info, build seconds)."""
    cfg = manifest.config
    t0 = time.perf_counter()
    writer.build()
    build_seconds = time.perf_counter() - t0
    progress("built", {"shard": writer.name, "items": writer.n})
    item_tracks = writer.id_map()["track"].astype(np.int64)
    pools = [(writer.vector, np.arange(writer.n), item_tracks), *others]
    seed = int(hashlib.sha256(writer.name.encode()).hexdigest()[:8], 16)
    n_queries = int(min(cfg.hub_queries, max(2000, 4 * writer.n)))
    qv, qt = _sample_queries(pools, n_queries, seed)
    hub = hub_scores(writer.ann, item_tracks, qv, qt, cfg.neighbours, cfg.search_k)
    return writer.publish_files(hub, manifest.model_digest, features), build_seconds


def _pools(index: Index | None) -> list[Pool]:
    if index is None:
        return []
    return [(index.shards[si].vector, ids, tracks) for si, ids, tracks, _ in index.iter_usable()]


def _shard_name(number: int) -> str:
    return f"shard-{number:04d}"


def _next_shard_number(directory: Path, manifest: Manifest | None) -> int:
    # Never reuse a name, not even one a killed writer left unpublished.
    n = manifest.next_shard if manifest else 1
    for p in directory.glob("shard-*.*"):
        with contextlib.suppress(ValueError, IndexError):
            n = max(n, int(p.name.split(".")[0].split("-")[1]) + 1)
    return n


def _remove_unreferenced(directory: Path, manifest: Manifest) -> int:
    """Delete shard files the manifest does not list (superseded or orphaned)."""
    keep = {s.name for s in manifest.shards}
    removed = 0
    for p in directory.glob("shard-*"):
        if p.name.split(".")[0] not in keep:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed += 1
    return removed


def _publish(directory: Path, manifest: Manifest, progress: Progress) -> None:
    from .calibrate import Calibration, is_current

    if is_current(manifest.calibration):  # thresholds shown in the manifest follow the configured rate
        extra = {k: manifest.calibration[k] for k in ("generation", "index_tracks", "added_since")
                 if k in manifest.calibration}
        cal = Calibration.from_dict(manifest.calibration)
        cal.max_false_match = manifest.config.max_false_match
        manifest.calibration = dict(cal.to_dict(), **extra)
    manifest.generation += 1
    manifest.updated = _now()
    manifest.save(directory)
    _remove_unreferenced(directory, manifest)
    progress("published", {"generation": manifest.generation})


def _calibrate_into(manifest: Manifest, directory: Path, home: DataHome, model: Encoder, progress: Progress) -> float:
    """Calibrate the not-yet-published ``manifest`` and store the result in it."""
    from .calibrate import calibrate_leave_one_out

    t0 = time.perf_counter()
    progress("calibrate", {})
    index = Index(directory, manifest)
    try:
        cal = calibrate_leave_one_out(index, model, home=home)
    finally:
        index.close()
    if cal is not None:
        manifest.calibration = dict(cal.to_dict(), generation=manifest.generation + 1,
                                    index_tracks=len(manifest.live_tracks()))
    return time.perf_counter() - t0


@dataclass
class _State:
    """What an update starts from (see :func:`_state`)."""

    old: Manifest | None
    base: Manifest | None
    model: Encoder
    config: IndexConfig
    store: FeatureStore
    plan: Plan
    durations: dict[int, float]


def _state(dh: DataHome, model: Encoder | str | Path | None, config: IndexConfig | None, rebuild: bool) -> _State:
    """Read the manifest and catalogue, load and check the model, plan the update."""
    directory = dh.index_dir
    try:
        old: Manifest | None = Manifest.load(directory)
    except FileNotFoundError:
        old = None
    base = None if rebuild else old
    enc = resolve_model(model, old, base.feature_config if base else None)
    if base is not None:
        check_compatible(base, directory, enc)
        if config is not None:
            _check_build_config(base.config, config, directory)
    cfg = config or (old.config if old is not None else IndexConfig())
    store = FeatureStore(dh.features_dir, enc.features)
    catalogue, dups, durations = catalogue_tracks(dh)
    return _State(old, base, enc, cfg, store, plan_update(base, catalogue, store, dups), durations)


def needs_calibration(calibration: dict[str, Any] | None, added: int, config: IndexConfig) -> bool:
    """Whether an update adding ``added`` tracks must recalibrate the thresholds.

    The rule: always without a calibration or with one for another clip
    score (:func:`audiosim.calibrate.is_current`); never when nothing is added;
    otherwise when the tracks added since the calibration (its
    ``added_since`` plus ``added``) exceed ``config.recalibrate_share`` of
    the tracks the index held when it was computed (its ``index_tracks``;
    a calibration without it, e.g. from ``--absent`` music, is redone).

    Examples
    --------
    >>> cfg = IndexConfig(recalibrate_share=0.1)
    >>> needs_calibration({"index_tracks": 1000, "added_since": 50}, 40, cfg)
    False
    >>> needs_calibration({"index_tracks": 1000, "added_since": 80}, 40, cfg)
    True
    """
    from .calibrate import is_current

    if not is_current(calibration):
        return True
    if added <= 0:
        return False
    since = int(calibration.get("added_since", 0)) + int(added)
    return since > config.recalibrate_share * int(calibration.get("index_tracks", 0))


def update(
    home: str | Path | DataHome | None = None,
    model: Encoder | str | Path | None = None,
    config: IndexConfig | None = None,
    *,
    rebuild: bool = False,
    calibrate: bool = True,
    progress: Progress | None = None,
    lock_timeout: float = -1,
) -> UpdateResult:
    """Bring the index up to date with the catalogue (build it if missing).

    Embeds the audible segments (one every ``index_hop_seconds``) of each
    ``ok`` catalogue track that is new or changed, from the features stored
    at ingest, into one new shard; tombstones removed and changed tracks;
    recalibrates the no-match thresholds; then publishes a new manifest
    atomically. Tracks with identical content are indexed once (lowest id).

    Parameters
    ----------
    home : str, Path or DataHome, optional
        Data home (default ``$AUDIOSIM_HOME`` or ``./data``).
    model : Encoder, str or Path, optional
        The encoder or its checkpoint. Default: the checkpoint the index was
        built with, else ``models/fingerprint.pt``.
    config : IndexConfig, optional
        Default: the index's own, else ``IndexConfig()``. Query settings
        given here (``search_k``, ...) are stored as the new defaults.
    rebuild : bool
        Re-embed every track into a fresh index (needed to change the model,
        the feature config, the hop or the metric). The old index keeps
        answering until the new manifest is published.
    calibrate : bool
        Recalibrate the thresholds (leave-one-track-out, see
        :func:`audiosim.calibrate.calibrate_leave_one_out`) when there are
        none, or when the tracks added since the last calibration exceed
        ``config.recalibrate_share`` of the tracks it was computed on
        (:func:`needs_calibration`); otherwise the stored thresholds are kept.
    progress : callable, optional
        ``progress(stage, info)``; see :data:`Progress`.
    lock_timeout : float
        Seconds to wait for another writer (-1: forever).

    Returns
    -------
    UpdateResult

    Raises
    ------
    ConfigMismatchError
        If the index was built with another model, feature config, hop or
        metric and ``rebuild`` is False.
    """
    t0 = time.perf_counter()
    progress = progress or _quiet
    dh = DataHome.resolve(home)
    directory = dh.index_dir
    with writer_lock(directory, lock_timeout):
        clean_temp_files(directory)
        st = _state(dh, model, config, rebuild)
        old, base, enc, cfg, store, plan, durations = st.old, st.base, st.model, st.config, st.store, st.plan, st.durations
        progress("plan", {"add": len(plan.add), "tombstone": len(plan.tombstone), "missing": len(plan.missing_features)})
        unchanged = config is None or config == base.config if base is not None else False
        calibrated = not calibrate or not needs_calibration(base.calibration if base else None, 0, cfg)
        if base is not None and not plan.add and not plan.tombstone and unchanged and calibrated:
            return UpdateResult(
                "nothing", base.generation, shards=len(base.shards), index_items=sum(s.items for s in base.shards),
                missing_features=len(plan.missing_features), total_seconds=time.perf_counter() - t0,
            )
        if base is None:
            manifest = Manifest(
                model_digest=model_digest(enc),
                model_path=str(getattr(enc, "path", "")),
                model_step=(getattr(enc, "card", None) or {}).get("step"),
                feature_config=enc.features,
                config=cfg,
                dim=enc.dim,
                generation=old.generation if old else 0,
                next_shard=_next_shard_number(directory, old),
            )
        else:
            manifest = replace(base, config=cfg, shards=list(base.shards), tombstones=base.tombstones + plan.tombstone)
            manifest.next_shard = _next_shard_number(directory, base)
        result = UpdateResult(
            "rebuild" if rebuild and old else "update", manifest.generation,
            tombstoned_tracks=len(plan.tombstone), missing_features=len(plan.missing_features),
        )
        if plan.add:
            previous = Index(directory, base) if base is not None and base.shards else None
            try:
                info, stats = _build_shard(directory, manifest, plan.add, store, enc, durations, _pools(previous), progress)
            finally:
                if previous is not None:
                    previous.close()
            manifest.shards.append(info)
            manifest.next_shard += 1
            result.shard, result.added_tracks, result.items = info.name, len(plan.add), info.items
            result.audio_seconds = info.audio_seconds
            result.embed_seconds, result.build_seconds = stats
            result.segments_per_second = info.items / result.embed_seconds if result.embed_seconds > 0 else 0.0
        progress("shard-files", {"shard": result.shard})
        if calibrate and manifest.shards and needs_calibration(manifest.calibration, len(plan.add), cfg):
            result.calibrate_seconds = _calibrate_into(manifest, directory, dh, enc, progress)
            result.calibrated = True
        elif plan.add and manifest.calibration:  # kept: count what it has not seen
            manifest.calibration = dict(
                manifest.calibration, added_since=int(manifest.calibration.get("added_since", 0)) + len(plan.add)
            )
        _publish(directory, manifest, progress)
        if plan.add:
            hop = F.seconds_to_frames(manifest.config.index_hop_seconds, enc.features)
            _drop_embeddings(embeddings_dir(dh, manifest.model_digest, enc.features, hop), (h for _, h in plan.add))
        result.generation = manifest.generation
        result.shards = len(manifest.shards)
        result.index_items = sum(s.items for s in manifest.shards)
        result.total_seconds = time.perf_counter() - t0
        return result


def _build_shard(
    directory: Path,
    manifest: Manifest,
    tracks: Sequence[tuple[int, str]],
    store: FeatureStore,
    model: Encoder,
    durations: dict[int, float],
    others: Sequence[Pool],
    progress: Progress,
) -> tuple[ShardInfo, tuple[float, float]]:
    """Embed ``tracks`` into a new shard; returns (info, (embed s, build s))."""
    f = model.features
    hop = F.seconds_to_frames(manifest.config.index_hop_seconds, f)
    stored = embeddings_dir(store.root.parent, manifest.model_digest, f, hop)
    writer = _ShardWriter(directory, _shard_name(manifest.next_shard), model.dim, manifest.config)
    try:
        t_embed = 0.0
        for i, (tid, h) in enumerate(tracks):
            t1 = time.perf_counter()
            got = load_embedding(stored / f"{h}.npz", model.dim)
            if got is None:  # not embedded by workers beforehand: embed here
                got = embed_logmel(model, store.get(h), hop)
                t_embed += time.perf_counter() - t1
            vecs, starts = got
            seconds = durations.get(tid) or store.get(h, mmap=True).shape[1] / f.frames_per_second
            writer.add(tid, h, vecs, (starts / f.frames_per_second).astype(np.float32), seconds)
            progress("embed", {"track_id": tid, "done": i + 1, "total": len(tracks), "segments": len(vecs)})
        info, build_seconds = _finish_shard(writer, others, manifest, f, progress)
    except BaseException:
        writer.discard()
        raise
    return info, (t_embed, build_seconds)


def compact(
    home: str | Path | DataHome | None = None,
    *,
    calibrate: bool = False,
    model: Encoder | str | Path | None = None,
    progress: Progress | None = None,
    lock_timeout: float = -1,
) -> UpdateResult:
    """Merge every shard into one, dropping tombstoned tracks.

    Vectors are copied from the shards (``get_item_vector``); nothing is
    re-embedded, so answers stay the same up to Annoy's new trees. Hub
    scores are recomputed over the merged shard. The thresholds are kept
    unless ``calibrate`` is True (which loads the model).

    Returns
    -------
    UpdateResult
        ``action`` is ``nothing`` when there is one shard and no tombstone.
    """
    t0 = time.perf_counter()
    progress = progress or _quiet
    dh = DataHome.resolve(home)
    directory = dh.index_dir
    with writer_lock(directory, lock_timeout):
        clean_temp_files(directory)
        old = Manifest.load(directory)
        if len(old.shards) <= 1 and not old.tombstones:
            return UpdateResult(
                "nothing", old.generation, shards=len(old.shards), index_items=sum(s.items for s in old.shards),
                total_seconds=time.perf_counter() - t0,
            )
        manifest = replace(old, shards=[], tombstones=[], next_shard=_next_shard_number(directory, old))
        src = Index(directory, old)
        writer = _ShardWriter(directory, _shard_name(manifest.next_shard), old.dim, old.config)
        dead = old.dead_pairs()
        try:
            for shard in src.shards:
                for (tid, h), seconds in zip(shard.info.tracks, shard.info.track_seconds):
                    if (tid, h) in dead:
                        continue
                    ids = np.flatnonzero(shard.track == tid)
                    vecs = np.stack([shard.vector(i) for i in ids]) if len(ids) else np.zeros((0, old.dim), np.float32)
                    writer.add(tid, h, vecs, shard.time[ids], seconds)
            info, build_seconds = _finish_shard(writer, [], manifest, old.feature_config, progress)
        except BaseException:
            writer.discard()
            raise
        finally:
            src.close()
        manifest.shards = [info]
        manifest.next_shard += 1
        progress("shard-files", {"shard": info.name})
        result = UpdateResult(
            "compact", old.generation, shard=info.name, items=info.items, audio_seconds=info.audio_seconds,
            build_seconds=build_seconds, tombstoned_tracks=len(old.tombstones),
        )
        if calibrate:
            enc = resolve_model(model, old, old.feature_config)
            check_compatible(old, directory, enc)
            result.calibrate_seconds = _calibrate_into(manifest, directory, dh, enc, progress)
            result.calibrated = True
        _publish(directory, manifest, progress)
        result.generation = manifest.generation
        result.shards = 1
        result.index_items = info.items
        result.total_seconds = time.perf_counter() - t0
        return result


def tombstone_removed(home: str | Path | DataHome | None = None, lock_timeout: float = -1) -> list[Tombstone]:
    """Stop tracks that are no longer ``ok`` in the catalogue from matching, now.

    Publishes a new manifest with a ``removed`` tombstone for each live
    track whose id is gone from the catalogue's ``ok`` tracks (e.g. marked
    missing by :func:`audiosim.ingest.prune_missing`), without embedding
    anything or recalibrating. Changed tracks are left to :func:`update`,
    which tombstones the old content when it indexes the new.

    Returns
    -------
    list of Tombstone
        The tombstones added (none, and nothing published, when there is no
        index or nothing to remove).
    """
    dh = DataHome.resolve(home)
    directory = dh.index_dir
    if not (directory / MANIFEST_NAME).is_file():
        return []
    with writer_lock(directory, lock_timeout):
        manifest = Manifest.load(directory)
        catalogue, _, _ = catalogue_tracks(dh)
        now = _now()
        new = [Tombstone(t, h, "removed", now) for t, h in sorted(manifest.live_tracks().items()) if t not in catalogue]
        if new:
            manifest.tombstones = manifest.tombstones + new
            _publish(directory, manifest, _quiet)
        return new


def store_calibration(home: str | Path | DataHome | None, calibration: dict[str, Any], lock_timeout: float = -1) -> int:
    """Publish new thresholds (a new manifest generation, same shards).

    Returns
    -------
    int
        The new generation.
    """
    directory = index_dir(home)
    with writer_lock(directory, lock_timeout):
        manifest = Manifest.load(directory)
        manifest.calibration = dict(calibration, generation=manifest.generation + 1)
        if "max_false_match" in calibration:
            manifest.config = replace(manifest.config, max_false_match=float(calibration["max_false_match"]))
        _publish(directory, manifest, _quiet)
        return manifest.generation
