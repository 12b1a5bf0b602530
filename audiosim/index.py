"""The fingerprint index: Annoy shards, id maps and a manifest (the reading side).

Layout of ``<home>/index/``::

    manifest.json            the source of truth (see :class:`Manifest`)
    shard-0001.ann           Annoy forest of one build batch (angular metric)
    shard-0001.ids.npy       item -> (track id, time in s), structured array
    shard-0001.hub.npy       item -> hub score (k-occurrence / expected), float16
    shard-0001.json          dim, metric, trees, items, model and feature digests
    .lock                    held by writers (``filelock``), never by readers

Shards are immutable; :mod:`audiosim.index_build` writes them (new tracks
go to a new shard, removed or changed tracks become tombstones, compaction
merges shards) and publishes each change by writing the manifest last,
atomically. Readers (:meth:`Index.open`) read the manifest once and
memory-map the shards it lists; a reader that races with a compaction
deleting superseded shards simply re-reads the manifest. This module holds
the manifest, the compatibility checks, :class:`Index` (search and the
vectors of a track's segments) and :func:`embed_logmel`, which index
builds and queries share.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from annoy import AnnoyIndex

from . import features as F
from .config import ConfigMismatchError, FeatureConfig, IndexConfig
from .model import DEFAULT_FINGERPRINT_MODEL, Encoder, load_encoder
from .store import DataHome, atomic_write_json

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
IDS_DTYPE = np.dtype([("track", "<i4"), ("time", "<f4")])
"""Id map row: the catalogue track id and the segment start time (s)."""
SHARD_SUFFIXES = (".ann", ".ids.npy", ".hub.npy", ".json")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (manifest and shard timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    created: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)

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


def check_build_config(recorded: IndexConfig, given: IndexConfig, where: Path) -> None:
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
        self._by_track: tuple[np.ndarray, np.ndarray] | None = None

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
        if self._by_track is None:  # items ordered by (track, time) and their tracks, built on first use
            order = np.lexsort((self.time, self.track))
            self._by_track = (order, self.track[order])
        order, keys = self._by_track
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
                check_build_config(manifest.config, config, directory)
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
