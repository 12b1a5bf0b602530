"""Build, update and compact the fingerprint index (the writing side).

Shards are immutable: :func:`update` embeds the catalogue's new or changed
tracks into a *new* shard and records removed or changed tracks as
tombstones (their items never match again); :func:`compact` merges every
shard into one, dropping tombstoned items. Shard names are never reused.
Tracks can be embedded ahead, on other processes (:func:`plan_embedding`,
:func:`embed_tracks`); :func:`update` then reads their vectors.

Publishing is atomic. Shard files are written to temporary files, fsynced
and renamed into place while no manifest refers to them yet; the manifest
that lists them is written last, atomically, under the writer lock. A
writer killed at any moment therefore leaves the previous manifest and
every file it lists untouched. The files and the manifest are described
in :mod:`audiosim.index.reader`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from annoy import AnnoyIndex
from filelock import FileLock

from audiosim.config import ConfigMismatchError, FeatureConfig, IndexConfig
from audiosim.fingerprint.model import Encoder, load_encoder
from audiosim.index.manifest import (
    IDS_DTYPE,
    LOCK_NAME,
    MANIFEST_NAME,
    Manifest,
    ShardInfo,
    Tombstone,
    utc_now,
)
from audiosim.index.reader import (
    Index,
    check_build_config,
    check_compatible,
    embed_logmel,
    index_dir,
    model_digest,
    resolve_model,
)
from audiosim.signal import features as F
from audiosim.store.atomic import (
    atomic_open,
    atomic_save_npy,
    atomic_write_json,
    clean_temp_files,
)
from audiosim.store.content import FeatureStore
from audiosim.store.home import DataHome

Progress = Callable[[str, dict], None]
"""``progress(stage, info)``: stages are ``plan``, ``embed`` (once per
track), ``built``, ``shard-files`` (shard files renamed into place, manifest
not yet written), ``calibrate`` and ``published``."""


def _quiet(stage: str, info: dict) -> None:
    pass


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
    from audiosim.runners import one_torch_thread

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
    from audiosim.store.catalog import Catalog

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
    now = utc_now()
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

    The lock is an OS file lock, released if the writer dies. Once it is
    held, temporary files of dead writers are removed (:func:`clean_temp_files`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / LOCK_NAME), timeout=timeout):
        clean_temp_files(directory)
        yield


def _temp_path(final: Path) -> Path:
    # Named like audiosim.store.home's temp files, so clean_temp_files removes a
    # dead writer's leftovers.
    from audiosim.store.atomic import temp_prefix

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
        from audiosim.store.atomic import fsync_dir

        built = utc_now()
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
    from audiosim.index.thresholds import Calibration, is_current

    if is_current(manifest.calibration):  # thresholds shown in the manifest follow the configured rate
        extra = {k: manifest.calibration[k] for k in ("generation", "index_tracks", "added_since")
                 if k in manifest.calibration}
        cal = Calibration.from_dict(manifest.calibration)
        cal.max_false_match = manifest.config.max_false_match
        manifest.calibration = dict(cal.to_dict(), **extra)
    manifest.generation += 1
    manifest.updated = utc_now()
    manifest.save(directory)
    _remove_unreferenced(directory, manifest)
    progress("published", {"generation": manifest.generation})


def _calibrate_into(manifest: Manifest, directory: Path, home: DataHome, model: Encoder, progress: Progress) -> float:
    """Calibrate the not-yet-published ``manifest`` and store the result in it."""
    from audiosim.match.calibrate import calibrate_leave_one_out

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
            check_build_config(base.config, config, directory)
    cfg = config or (old.config if old is not None else IndexConfig())
    store = FeatureStore(dh.features_dir, enc.features)
    catalogue, dups, durations = catalogue_tracks(dh)
    return _State(old, base, enc, cfg, store, plan_update(base, catalogue, store, dups), durations)


def needs_calibration(calibration: dict[str, Any] | None, added: int, config: IndexConfig) -> bool:
    """Whether an update adding ``added`` tracks must recalibrate the thresholds.

    The rule: always without a calibration, or with one for another clip
    score or other ``query_speeds`` (:func:`audiosim.match.calibrate.is_current`);
    never when nothing is added;
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
    from audiosim.index.thresholds import is_current

    if not is_current(calibration, config):
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
        :func:`audiosim.match.calibrate.calibrate_leave_one_out`) when there are
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
    missing by :func:`audiosim.ingest.ingest.prune_missing`), without embedding
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
        now = utc_now()
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
