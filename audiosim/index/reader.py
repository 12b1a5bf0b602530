"""The fingerprint index: Annoy shards, id maps and a manifest (the reading side).

Layout of ``<home>/index/``::

    manifest.json            the source of truth (see :class:`Manifest`)
    shard-0001.ann           Annoy forest of one build batch (angular metric)
    shard-0001.ids.npy       item -> (track id, time in s), structured array
    shard-0001.hub.npy       item -> hub score (k-occurrence / expected), float16
    shard-0001.json          dim, metric, trees, items, model and feature digests
    .lock                    held by writers (``filelock``), never by readers

Shards are immutable; :mod:`audiosim.index.writer` writes them (new tracks
go to a new shard, removed or changed tracks become tombstones, compaction
merges shards) and publishes each change by writing the manifest last,
atomically. Readers (:meth:`Index.open`) read the manifest once and
memory-map the shards it lists; a reader that races with a compaction
deleting superseded shards simply re-reads the manifest. This module holds
the compatibility checks, :class:`Index` (search and the vectors of a
track's segments) and :func:`resolve_model`, which picks the encoder an
index is built or queried with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from annoy import AnnoyIndex

from audiosim.config import ConfigMismatchError, FeatureConfig, IndexConfig
from audiosim.fingerprint.model import (
    DEFAULT_FINGERPRINT_MODEL,
    Encoder,
    load_encoder,
    model_digest,
)
from audiosim.index import half_hops
from audiosim.index.manifest import BUILD_FIELDS, SHARD_SUFFIXES, Manifest, ShardInfo
from audiosim.store.home import DataHome

# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


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
            path = model.identity.path if isinstance(model, Encoder) and model.identity is not None else ""
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
    for name in BUILD_FIELDS:
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
    """An opened shard: a memory-mapped Annoy forest, its id map and its
    half-hop rows (:mod:`~audiosim.index.half_hops`; none in older indexes)."""

    def __init__(self, directory: Path, info: ShardInfo, dim: int, metric: str, base: int, hop_seconds: float):
        self.info = info
        self.base = base
        self.half_offset = hop_seconds / 2
        half_path = directory / f"{info.name}.half.npy"
        half = np.load(half_path, mmap_mode="r", allow_pickle=False) if half_path.exists() else None
        if half is not None and len(half) not in (0, info.items):
            raise ValueError(f"{half_path}: {len(half)} half-hop rows, manifest says {info.items} items")
        self.half = half if half is not None and len(half) else None  # an index without them has no rows
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

    def half_rows(self, items: np.ndarray) -> np.ndarray:
        """The coded half-hop rows of ``items`` (zero rows when the shard has none)."""
        if self.half is None:
            return np.zeros((len(items), half_hops.row_bytes(self.ann.f)), np.uint8)
        return np.asarray(self.half[np.asarray(items, np.int64)])

    def segments(self, track: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Usable segments of ``track`` starting within [start, end] s:
        (times, vectors), by time; the half-hop ones of usable items too."""
        if self._by_track is None:  # items ordered by (track, time) and their tracks, built on first use
            order = np.lexsort((self.time, self.track))
            self._by_track = (order, self.track[order])
        order, keys = self._by_track
        a, b = np.searchsorted(keys, track, "left"), np.searchsorted(keys, track, "right")
        items = order[a:b]
        lo = start - 1e-6 - (self.half_offset if self.half is not None else 0.0)
        times = self.time[items]
        items = items[(times >= lo) & (times <= end + 1e-6)]
        items = items[self.usable[items]]
        times = self.time[items]
        own = (times >= start - 1e-6) & (times <= end + 1e-6)
        vecs = np.zeros((int(own.sum()), self.ann.f), np.float32)
        for row, i in enumerate(items[own]):
            vecs[row] = self.ann.get_item_vector(int(i))
        if self.half is None:
            return times[own], vecs
        rows = self.half_rows(items)
        later = (times + self.half_offset).astype(np.float32)
        keep = half_hops.held(rows) & (later >= start - 1e-6) & (later <= end + 1e-6)
        all_times = np.concatenate([times[own], later[keep]])
        all_vecs = np.concatenate([vecs, half_hops.unpack(rows[keep], self.ann.f)])
        order = np.argsort(all_times, kind="stable")
        return all_times[order], all_vecs[order]

    def close(self) -> None:
        self.ann.unload()


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
                self.shards.append(Shard(self.directory, info, manifest.dim, manifest.metric, base,
                                         manifest.config.index_hop_seconds))
                base += info.items
        except BaseException:
            self.close()
            raise
        self._apply_masks()

    def set_query_config(self, config: IndexConfig) -> None:
        """Query with ``config`` from now on (``hub_ratio`` decides which items are usable).

        Build settings cannot change here; see :meth:`open`.
        """
        self.config = config
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
            Data home (default ``$AUDIOSIM_HOME`` or ``./data``); the index is
            its ``index/`` folder.
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
        directory = DataHome.resolve(home).index_dir
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
        return Index.open(DataHome(self.directory.parent), model=self.manifest.model_digest, config=self.config)

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
            Annoy nodes inspected per query (default ``config.search_k``;
            -1 lets Annoy pick ``n_trees * k``), shared out among the
            shards by size when ``config.search_k_shared``, else per shard.
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
        shard_sk = [_shard_search_k(sk, s.info.items, self.n_items, self.config.search_k_shared)
                    for s in self.shards]
        for qi in range(q_n):
            cand_i, cand_s = [], []
            for s, s_sk in zip(self.shards, shard_sk):
                n = min(k + extra, s.info.items)
                while n > 0:
                    ids, dist = s.ann.get_nns_by_vector(v[qi], n, _search_k(s_sk, n, s.info.n_trees, k), True)
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


def _shard_search_k(search_k: int, items: int, total_items: int, shared: bool) -> int:
    """A shard's share of ``search_k``: by its share of the index's items when ``shared``, else all of it."""
    if search_k < 0 or not shared or total_items <= 0:
        return search_k
    return max(1, round(search_k * items / total_items))


def _search_k(search_k: int, n: int, n_trees: int, k: int) -> int:
    # The tuned search_k is for k neighbours; asking for more must not search less.
    if search_k is None or search_k < 0:
        return -1
    return max(search_k * n // max(k, 1), n_trees * n) if n > k else max(search_k, n_trees * n)


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def resolve_model(
    model: Encoder | str | Path | None, manifest: Manifest | None = None, features: FeatureConfig | None = None
) -> Encoder:
    """An :class:`Encoder`: the one given, loaded from the path given, the
    index's own checkpoint when it still exists, or the shipped default.

    A loaded encoder is folded for inference and keeps its
    :class:`~audiosim.fingerprint.model.ModelIdentity` (the checkpoint's
    resolved path, digest and card)."""
    if isinstance(model, Encoder):
        return model
    if model is None:
        path = DEFAULT_FINGERPRINT_MODEL
        if manifest is not None and manifest.model_path and Path(manifest.model_path).is_file():
            path = Path(manifest.model_path)
    else:
        path = Path(model)
    return load_encoder(path, features).for_inference()
