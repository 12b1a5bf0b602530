"""Build, update and compact the fingerprint index (the writing side).

Shards are immutable: :func:`update` embeds the catalogue's new or changed
tracks into a *new* shard and records removed or changed tracks as
tombstones (their items never match again); :func:`compact` merges every
shard into one, dropping tombstoned items. Shard names are never reused.
Tracks can be embedded ahead, on other processes (:func:`plan_embedding`,
:func:`audiosim.fingerprint.embed.embed_tracks`); :func:`update` then reads
their vectors. Hub scores are computed by :mod:`audiosim.index.hubs`, and the
no-match thresholds by the :class:`~audiosim.index.thresholds.Calibrator`
the caller hands in (this package does not import the matcher).

Publishing is atomic. Shard files are written to temporary files
(:mod:`audiosim.store.atomic`), fsynced and renamed into place while no
manifest refers to them yet; the manifest
that lists them is written last, atomically, under the writer lock. A
writer killed at any moment therefore leaves the previous manifest and
every file it lists untouched; the next writer removes what it left (temporary
files, and shard files no manifest lists) while it holds the lock
(:func:`writer_lock`). The files and the manifest are described
in :mod:`audiosim.index.reader`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from annoy import AnnoyIndex
from filelock import FileLock

from audiosim.config import FeatureConfig, IndexConfig
from audiosim.fingerprint.embed import (
    EmbedJob,
    drop_embeddings,
    embed_logmel,
    embeddings_dir,
    load_embedding,
)
from audiosim.fingerprint.model import Encoder, model_digest
from audiosim.index import half_hops
from audiosim.index.hubs import Pool, index_pools, new_shard_hub_scores
from audiosim.index.manifest import (
    BUILD_FIELDS,
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
    resolve_model,
)
from audiosim.index.thresholds import Calibration, Calibrator
from audiosim.signal import features as F
from audiosim.store.atomic import (
    atomic_path,
    atomic_save_npy,
    atomic_write_json,
    clean_temp_files,
)
from audiosim.store.catalog import Catalog
from audiosim.store.content import FeatureStore
from audiosim.store.errors import ensure_free_space
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


def embedding_hop(config: IndexConfig, features: FeatureConfig) -> int:
    """Frames between the segments a build embeds: the index hop, or half of it
    when the index keeps half-hop vectors (``IndexConfig.half_hop_vectors``).

    Raises
    ------
    ValueError
        If half-hop vectors are asked for and the hop is an odd number of frames.
    """
    hop = F.seconds_to_frames(config.index_hop_seconds, features)
    if not config.half_hop_vectors:
        return hop
    if hop % 2:
        raise ValueError(f"half_hop_vectors needs an even number of frames per index hop, not {hop} "
                         f"(index_hop_seconds={config.index_hop_seconds})")
    return hop // 2


def plan_embedding(
    home: str | Path | DataHome | None = None,
    model: str | Path | None = None,
    config: IndexConfig | None = None,
    *,
    rebuild: bool = False,
) -> EmbedJob:
    """The tracks the next :func:`update` would embed, minus those already embedded.

    Workers embed them with :func:`audiosim.fingerprint.embed.embed_tracks`.
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
    identity = st.model.identity
    if identity is None or not Path(identity.path).is_file():
        raise ValueError("embedding on workers needs the model as a checkpoint file")
    hop = embedding_hop(st.config, st.model.features)
    digest = model_digest(st.model)
    directory = embeddings_dir(dh, digest, st.model.features, hop)
    todo = tuple((t, h) for t, h in st.plan.add if not (directory / f"{h}.npz").is_file())
    return EmbedJob(identity.path, digest, hop, str(directory), todo)


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


def indexable_tracks(home: DataHome) -> tuple[dict[int, str], list[tuple[int, int]], dict[int, float]]:
    """The catalogue tracks an index holds: each ``ok`` track's content hash,
    deduplicated by content (lowest id kept).

    Returns
    -------
    (dict, list, dict)
        Track id -> hash; (duplicate id, kept id) pairs; track id -> duration.
    """
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
        Embedding throughput: indexed items per second of embedding (the
        half-hop segments are embedded too, and not counted).
    shards : int
        Shards in the index afterwards.
    index_items : int
        Items in the index afterwards.
    missing_features : int
        Tracks skipped for lack of features.
    calibrated : bool
    thresholds_dropped : str
        Why a rebuild without a calibrator did not keep the thresholds of the
        index it replaced (see :func:`kept_thresholds`); empty when it kept
        them, or when there were none to keep.
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
    thresholds_dropped: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def writer_lock(directory: Path, timeout: float = -1) -> Iterator[None]:
    """Hold ``<index>/.lock``: one writer at a time (readers never lock).

    The lock is an OS file lock, released if the writer dies. Once it is
    held, temporary files of dead writers are removed (:func:`clean_temp_files`).
    When the block ends (done, nothing to do, or failed), still under the
    lock, every shard file the published manifest does not list is removed
    (:func:`_remove_unreferenced`): superseded shards, and the orphans of a
    writer killed between renaming its shard files into place and
    publishing. Only a writer holding the lock writes shard files, so while
    it is held none is being written. The orphans stay until then, so that
    their names are not given to the shard this block may write.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / LOCK_NAME), timeout=timeout):
        clean_temp_files(directory)
        try:
            yield
        finally:
            _remove_unpublished(directory)


def annoy_node_bytes(dim: int) -> int:
    """At most the bytes of one node of an Annoy forest: a count, two children,
    an offset (euclidean and dot metrics only) and ``dim`` float32."""
    return 16 + 4 * int(dim)


def annoy_tree_bytes(items: int, dim: int, n_trees: int) -> int:
    """A generous estimate of the bytes Annoy's ``build`` adds for ``n_trees`` trees over ``items``.

    A tree splits until a leaf holds at most ``dim + 2`` items, so it has
    fewer than ``2 * items / ((dim + 2) / 2)`` nodes; one root copy per tree
    comes on top.
    """
    per_tree = 4 * int(items) // (int(dim) + 2) + 2
    return int(n_trees) * per_tree * annoy_node_bytes(dim)


class _ShardWriter:
    """Collects one shard's items in an Annoy forest built on disk, at ``ann_path``.

    Annoy writes that forest through a memory map, and a memory map that
    cannot grow on a full disk kills the process (``SIGBUS``): so free
    space is checked before each track's items and before the build
    (:func:`~audiosim.store.errors.ensure_free_space`), which raises
    ``DiskFullError`` instead (the temporary forest is then removed).
    """

    def __init__(self, directory: Path, name: str, dim: int, config: IndexConfig, ann_path: Path):
        self.directory = directory
        self.name = name
        self.dim = dim
        self.config = config
        self.ann_path = ann_path
        self.ann = AnnoyIndex(dim, config.metric)
        self.ann.on_disk_build(str(ann_path))  # items live in the file, not in memory
        self.n = 0
        self.ids: list[np.ndarray] = []
        self.half: list[np.ndarray] = []
        self.tracks: list[tuple[int, str]] = []
        self.seconds: list[float] = []

    def add(
        self, track_id: int, content_hash: str, vectors: np.ndarray, times: np.ndarray, seconds: float,
        half: np.ndarray | None = None,
    ) -> None:
        """Add one track's segment vectors (ids continue densely), with the
        coded segments half a hop later (:mod:`~audiosim.index.half_hops`)
        when the index keeps them."""
        if self.config.half_hop_vectors:
            if half is None or len(half) != len(vectors):
                raise ValueError(f"track {track_id}: {len(vectors)} segments need as many half-hop rows")
            self.half.append(np.asarray(half, np.uint8))
        need = len(vectors) * (annoy_node_bytes(self.dim) + half_hops.row_bytes(self.dim))
        ensure_free_space(self.ann_path.parent, need, "the index's new shard")
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
        need = annoy_tree_bytes(self.n, self.dim, self.config.n_trees)
        ensure_free_space(self.ann_path.parent, need, "building the index's new shard")
        self.ann.build(self.config.n_trees, n_jobs=1)

    def id_map(self) -> np.ndarray:
        return np.concatenate(self.ids) if self.ids else np.zeros(0, IDS_DTYPE)

    def vector(self, item: int) -> np.ndarray:
        return np.asarray(self.ann.get_item_vector(int(item)), dtype=np.float32)

    def write_files(self, hub: np.ndarray, model_digest: str, features: FeatureConfig) -> ShardInfo:
        """Put the id map, hub scores and sidecar in place and close the forest.

        The forest's file is renamed into place last, when :func:`_shard_writer`'s
        block ends. No manifest lists the files yet, so readers cannot see them.
        """
        built = utc_now()
        atomic_save_npy(self.directory / f"{self.name}.ids.npy", self.id_map())
        atomic_save_npy(self.directory / f"{self.name}.hub.npy", hub.astype(np.float16))
        # No rows at all when the index keeps no half-hop vectors.
        half = np.concatenate(self.half) if self.half else np.zeros((0, half_hops.row_bytes(self.dim)), np.uint8)
        atomic_save_npy(self.directory / f"{self.name}.half.npy", half)
        sidecar = {
            "name": self.name, "dim": self.dim, "metric": self.config.metric, "n_trees": self.config.n_trees,
            "items": self.n, "model_digest": model_digest, "feature_digest": features.digest(),
            "index_hop_seconds": self.config.index_hop_seconds, "built": built,
        }
        atomic_write_json(self.directory / f"{self.name}.json", sidecar)
        self.ann.unload()
        return ShardInfo(self.name, self.n, tuple(self.tracks), tuple(self.seconds), self.config.n_trees, built)


@contextlib.contextmanager
def _shard_writer(directory: Path, name: str, dim: int, config: IndexConfig) -> Iterator[_ShardWriter]:
    """A :class:`_ShardWriter` whose forest is the temporary file of
    :func:`~audiosim.store.atomic.atomic_path`: renamed to ``<name>.ann`` when
    the block succeeds, removed when it raises (and, should the writer die,
    by the next writer's :func:`clean_temp_files`)."""
    with atomic_path(directory / f"{name}.ann") as tmp:
        writer = _ShardWriter(directory, name, dim, config, tmp)
        try:
            yield writer
        finally:
            with contextlib.suppress(Exception):
                writer.ann.unload()


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
    hub = new_shard_hub_scores(writer.name, writer.ann, writer.vector, item_tracks, others, cfg)
    return writer.write_files(hub, manifest.model_digest, features), build_seconds


def _shard_name(number: int) -> str:
    return f"shard-{number:04d}"


def _next_shard_number(directory: Path, manifest: Manifest | None) -> int:
    # Never reuse a name, not even one a killed writer left unpublished.
    n = manifest.next_shard if manifest else 1
    for p in directory.glob("shard-*.*"):
        with contextlib.suppress(ValueError, IndexError):
            n = max(n, int(p.name.split(".")[0].split("-")[1]) + 1)
    return n


def _remove_unreferenced(directory: Path, manifest: Manifest | None) -> int:
    """Delete shard files the manifest does not list (superseded or orphaned;
    every shard file when there is no manifest)."""
    keep = {s.name for s in manifest.shards} if manifest is not None else set()
    removed = 0
    for p in directory.glob("shard-*"):
        if p.name.split(".")[0] not in keep:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed += 1
    return removed


def _remove_unpublished(directory: Path) -> int:
    """:func:`_remove_unreferenced` against the manifest on disk (call under the writer lock).

    Without a manifest (a first build that died) no shard file is published,
    so all go; an unreadable manifest leaves everything as found.
    """
    try:
        manifest = Manifest.load(directory)
    except FileNotFoundError:
        manifest = None
    except ValueError:
        return 0
    return _remove_unreferenced(directory, manifest)


def _publish(directory: Path, manifest: Manifest, progress: Progress) -> None:
    cal = manifest.calibration
    if cal is not None and cal.is_current():
        # Published as stored (scores rounded as in the JSON); the thresholds
        # shown in the manifest follow the configured rate.
        manifest.calibration = replace(Calibration.from_dict(cal.to_dict()), max_false_match=manifest.config.max_false_match)
    manifest.generation += 1
    manifest.updated = utc_now()
    manifest.save(directory)  # the superseded shards go when the writer lock is released
    progress("published", {"generation": manifest.generation})


def _calibrate_into(
    manifest: Manifest, directory: Path, home: DataHome, model: Encoder, calibrate: Calibrator, progress: Progress
) -> float:
    """Calibrate the not-yet-published ``manifest`` and store the result in it."""
    t0 = time.perf_counter()
    progress("calibrate", {})
    index = Index(directory, manifest)
    try:
        cal = calibrate(index, model, home=home)
    finally:
        index.close()
    if cal is not None:
        manifest.calibration = replace(cal, generation=manifest.generation + 1, index_tracks=len(manifest.live_tracks()))
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
    catalogue, dups, durations = indexable_tracks(dh)
    return _State(old, base, enc, cfg, store, plan_update(base, catalogue, store, dups), durations)


def kept_thresholds(old: Manifest, model: Encoder, config: IndexConfig) -> tuple[Calibration | None, str]:
    """The thresholds of the index a rebuild replaces, if they hold for the new one.

    They do when the new index embeds the same catalogue with the same model
    (digest), feature settings, hop and metric, for the same clip score and
    query speeds (:meth:`Calibration.is_current`): its absent clips score as
    they did. A rebuild without a calibrator then keeps them, instead of
    leaving an index that matches nothing.

    Returns
    -------
    (Calibration or None, str)
        The thresholds to keep, or None and why they cannot be kept (empty
        when the old index had none).
    """
    cal = old.calibration
    if cal is None:
        return None, ""
    digest = model_digest(model)
    if old.model_digest != digest:
        return None, (f"the previous thresholds were calibrated for another model (digest {old.model_digest}, "
                      f"the index is now built with {digest})")
    if old.feature_config != model.features:
        return None, "the previous thresholds were calibrated for other feature settings"
    changed = [n for n in BUILD_FIELDS if getattr(old.config, n) != getattr(config, n)]
    if changed:
        return None, f"the previous thresholds were calibrated for another {' and '.join(changed)}"
    if not cal.is_current(config):
        return None, "the previous thresholds were calibrated for another kind of score or other query speeds"
    return cal, ""


def needs_calibration(calibration: Calibration | None, added: int, config: IndexConfig) -> bool:
    """Whether an update adding ``added`` tracks must recalibrate the thresholds.

    The rule: always without a calibration, or with one for another clip
    score or other ``query_speeds`` (:meth:`Calibration.is_current`);
    never when nothing is added;
    otherwise when the tracks added since the calibration (its
    ``added_since`` plus ``added``) exceed ``config.recalibrate_share`` of
    the tracks the index held when it was computed (its ``index_tracks``;
    a calibration without it, e.g. from ``--absent`` music, is redone).

    Examples
    --------
    >>> cfg = IndexConfig(recalibrate_share=0.1)
    >>> kept = Calibration("leave-one-track-out", 0.01, [], index_tracks=1000, added_since=50)
    >>> needs_calibration(kept, 40, cfg)
    False
    >>> needs_calibration(replace(kept, added_since=80), 40, cfg)
    True
    """
    if calibration is None or not calibration.is_current(config):
        return True
    if added <= 0:
        return False
    since = int(calibration.added_since or 0) + int(added)
    return since > config.recalibrate_share * int(calibration.index_tracks or 0)


def update(
    home: str | Path | DataHome | None = None,
    model: Encoder | str | Path | None = None,
    config: IndexConfig | None = None,
    *,
    rebuild: bool = False,
    calibrate: Calibrator | None = None,
    progress: Progress | None = None,
    lock_timeout: float = -1,
) -> UpdateResult:
    """Bring the index up to date with the catalogue (build it if missing).

    Embeds the audible segments (one every ``index_hop_seconds``, and the
    ones half a hop later with ``half_hop_vectors``) of each
    ``ok`` catalogue track that is new or changed, from the features stored
    at ingest, into one new shard; tombstones removed and changed tracks;
    recalibrates the no-match thresholds when given a calibrator; then
    publishes a new manifest atomically. Tracks with identical content are
    indexed once (lowest id).

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
    calibrate : Calibrator, optional
        What computes the thresholds, e.g.
        :func:`audiosim.match.calibrate.calibrate_leave_one_out` (the index
        package does not import the matcher, so the caller hands it in). It
        runs under the writer lock, on the shards about to be published,
        when there are no thresholds, or when the tracks added since the last
        calibration exceed ``config.recalibrate_share`` of the tracks it was
        computed on (:func:`needs_calibration`); otherwise the stored
        thresholds are kept. Without a calibrator the update never
        calibrates: the stored thresholds (if any) are kept and count the
        tracks added; a ``rebuild`` keeps those of the index it replaces
        when they hold for the new one (:func:`kept_thresholds`; else
        :attr:`UpdateResult.thresholds_dropped` says why not).
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
        calibrated = calibrate is None or not needs_calibration(base.calibration if base else None, 0, cfg)
        if base is not None and not plan.add and not plan.tombstone and unchanged and calibrated:
            return UpdateResult(
                "nothing", base.generation, shards=len(base.shards), index_items=sum(s.items for s in base.shards),
                missing_features=len(plan.missing_features), total_seconds=time.perf_counter() - t0,
            )
        if base is None:
            manifest = Manifest(
                model_digest=model_digest(enc),
                model_path=enc.identity.path if enc.identity is not None else "",
                model_step=enc.identity.card.get("step") if enc.identity is not None else None,
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
        unseen = len(plan.add)  # tracks the kept thresholds were not computed on
        if base is None and old is not None and calibrate is None:
            manifest.calibration, result.thresholds_dropped = kept_thresholds(old, enc, cfg)
            was = old.live_tracks()
            unseen = sum(1 for t, h in plan.add if was.get(t) != h)
        if plan.add:
            previous = Index(directory, base) if base is not None and base.shards else None
            try:
                info, stats = _build_shard(directory, manifest, plan.add, store, enc, durations, index_pools(previous), progress)
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
        if calibrate is not None and manifest.shards and needs_calibration(manifest.calibration, len(plan.add), cfg):
            result.calibrate_seconds = _calibrate_into(manifest, directory, dh, enc, calibrate, progress)
            result.calibrated = True
        elif unseen and manifest.calibration is not None:  # kept: count what it has not seen
            kept = manifest.calibration
            manifest.calibration = replace(kept, added_since=int(kept.added_since or 0) + unseen)
        _publish(directory, manifest, progress)
        if plan.add:
            hop = embedding_hop(manifest.config, enc.features)
            drop_embeddings(embeddings_dir(dh, manifest.model_digest, enc.features, hop), (h for _, h in plan.add))
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
    cfg = manifest.config
    hop = embedding_hop(cfg, f)
    stored = embeddings_dir(store.root.parent, manifest.model_digest, f, hop)
    with _shard_writer(directory, _shard_name(manifest.next_shard), model.dim, cfg) as writer:
        t_embed = 0.0
        for i, (tid, h) in enumerate(tracks):
            t1 = time.perf_counter()
            got = load_embedding(stored / f"{h}.npz", model.dim)
            if got is None:  # not embedded by workers beforehand: embed here
                got = embed_logmel(model, store.get(h), hop)
                t_embed += time.perf_counter() - t1
            vecs, starts = got
            half = None
            if cfg.half_hop_vectors:
                vecs, starts, half = half_hops.split_half_hops(vecs, starts, 2 * hop)
            seconds = durations.get(tid) or store.get(h, mmap=True).shape[1] / f.frames_per_second
            writer.add(tid, h, vecs, (starts / f.frames_per_second).astype(np.float32), seconds, half)
            progress("embed", {"track_id": tid, "done": i + 1, "total": len(tracks), "segments": len(vecs)})
        info, build_seconds = _finish_shard(writer, others, manifest, f, progress)
    return info, (t_embed, build_seconds)


def compact(
    home: str | Path | DataHome | None = None,
    *,
    calibrate: Calibrator | None = None,
    model: Encoder | str | Path | None = None,
    progress: Progress | None = None,
    lock_timeout: float = -1,
) -> UpdateResult:
    """Merge every shard into one, dropping tombstoned tracks.

    Vectors are copied from the shards (``get_item_vector``); nothing is
    re-embedded, so answers stay the same up to Annoy's new trees. Hub
    scores are recomputed over the merged shard. The thresholds are kept
    unless a calibrator is given (as in :func:`update`; it then always runs,
    and the model is loaded).

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
        dead = old.dead_pairs()
        try:
            with _shard_writer(directory, _shard_name(manifest.next_shard), old.dim, old.config) as writer:
                for shard in src.shards:
                    for (tid, h), seconds in zip(shard.info.tracks, shard.info.track_seconds):
                        if (tid, h) in dead:
                            continue
                        ids = np.flatnonzero(shard.track == tid)
                        vecs = (np.stack([shard.vector(i) for i in ids]) if len(ids)
                                else np.zeros((0, old.dim), np.float32))
                        half = shard.half_rows(ids) if old.config.half_hop_vectors else None
                        writer.add(tid, h, vecs, shard.time[ids], seconds, half)
                info, build_seconds = _finish_shard(writer, [], manifest, old.feature_config, progress)
        finally:
            src.close()
        manifest.shards = [info]
        manifest.next_shard += 1
        progress("shard-files", {"shard": info.name})
        result = UpdateResult(
            "compact", old.generation, shard=info.name, items=info.items, audio_seconds=info.audio_seconds,
            build_seconds=build_seconds, tombstoned_tracks=len(old.tombstones),
        )
        if calibrate is not None:
            enc = resolve_model(model, old, old.feature_config)
            check_compatible(old, directory, enc)
            result.calibrate_seconds = _calibrate_into(manifest, directory, dh, enc, calibrate, progress)
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
        catalogue, _, _ = indexable_tracks(dh)
        now = utc_now()
        new = [Tombstone(t, h, "removed", now) for t, h in sorted(manifest.live_tracks().items()) if t not in catalogue]
        if new:
            manifest.tombstones = manifest.tombstones + new
            _publish(directory, manifest, _quiet)
        return new


def store_calibration(home: str | Path | DataHome | None, calibration: Calibration, lock_timeout: float = -1) -> int:
    """Publish thresholds computed elsewhere (a new manifest generation, same shards).

    E.g. those of :func:`audiosim.match.calibrate.calibrate` on music known
    to be absent. Their ``max_false_match`` becomes the index's default.
    Nothing is computed here.

    Returns
    -------
    int
        The new generation.
    """
    directory = DataHome.resolve(home).index_dir
    with writer_lock(directory, lock_timeout):
        manifest = Manifest.load(directory)
        manifest.calibration = replace(calibration, generation=manifest.generation + 1)
        manifest.config = replace(manifest.config, max_false_match=float(calibration.max_false_match))
        _publish(directory, manifest, _quiet)
        return manifest.generation
