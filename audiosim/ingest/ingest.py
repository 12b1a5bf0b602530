"""Ingest audio files: decode them, store their features, catalogue them.

:func:`ingest_file` is the unit of work (one file, independent of every
other, safe to run in threads or processes side by side); the Prefect flow
in ``flows/ingest.py``, :func:`ingest_batch` (its Dask work unit) and
:func:`ingest_many` (no Prefect) only fan it out. Finding the files is
:mod:`audiosim.ingest.discover`.

For each file, in this order:

1. if the catalogue has an ``ok`` row for the path with the same size and
   mtime (and its features exist), it is **skipped** without reading it;
2. the header is probed and the content hashed; an ``ok`` row with the same
   hash is **skipped** too (only its size/mtime are refreshed);
3. unless the feature store already has this hash (a moved, renamed or
   copied file), the audio is streamed block by block into a log-mel
   spectrogram, which is written atomically to the feature store;
4. the catalogue row is inserted or updated in one transaction.

So a process killed at any moment leaves either no trace of the file, or
a features file without a row (reused by the next run, not recomputed), or
both: never a row without features, never a duplicate row.

Failures are of two kinds. A permanent one (any
:class:`~audiosim.signal.audio.AudioError`: not audio, silence, too short,
...; or an unexpected exception, reason ``error``) becomes a ``failed`` row
that the next ingest tries again. A transient one (an I/O hiccup, a busy
database: :func:`is_transient`) is raised as :class:`TransientIngestError`
and recorded nowhere: this module makes one attempt, and retrying is the
caller's choice. The Prefect tasks of ``flows/ingest.py`` retry it (their
declared ``retries``, the one place retries live) and record the file as
failed with reason ``error`` when the retries are exhausted
(:func:`record_error`); :func:`ingest_many` records it at once.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from audiosim.config import DecodeConfig, FeatureConfig
from audiosim.ingest.discover import walk_audio
from audiosim.runners import one_torch_thread, thread_map
from audiosim.signal.audio import REASONS, AudioError, content_hash, probe, stream
from audiosim.signal.features import log_mel_stream
from audiosim.store.catalog import Catalog, Track, normalise_path
from audiosim.store.content import FeatureStore
from audiosim.store.errors import DiskFullError, is_disk_full
from audiosim.store.home import DataHome

STATUSES = ("added", "updated", "skipped", "failed")

MISSING = "missing"
"""Catalogue ``reason`` of a track whose file was deleted (see :func:`prune_missing`)."""

FAILURE_REASONS = {
    **REASONS,
    "error": "an unexpected error, or a transient one that outlasted its retries (the detail says which)",
    MISSING: "the file was deleted (pruned); the row keeps its id in case it comes back",
}
"""Every ``reason`` a ``failed`` catalogue row can carry: the decoder's
:data:`~audiosim.signal.audio.REASONS` and ingest's own two."""


@dataclass(frozen=True)
class IngestResult:
    """What happened to one file.

    Attributes
    ----------
    path : str
        Absolute path of the file.
    status : {"added", "updated", "skipped", "failed"}
        ``added``: a new usable track (also a previously failed file that now
        works); ``updated``: an existing track whose content changed, was
        moved, or whose features were missing; ``skipped``: nothing to do;
        ``failed``: see ``reason``.
    track_id : int or None
        Catalogue id (None only if the catalogue itself could not be written).
    reason : str or None
        For ``failed``, one of :data:`FAILURE_REASONS`; for ``updated``,
        ``changed``, ``moved`` or ``features-missing``.
    detail : str or None
        Human-readable explanation; for a usable file, the warnings of
        decoding (a file cut short but mostly there), also kept in its
        catalogue row.
    duration : float or None
        Audio duration in seconds.
    seconds : float
        Wall-clock seconds spent on the file.
    """

    path: str
    status: str
    track_id: int | None
    reason: str | None = None
    detail: str | None = None
    duration: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (for tables and JSON)."""
        return asdict(self)


class TransientIngestError(Exception):
    """One file's ingest met a transient error (see :func:`is_transient`): worth another attempt.

    Nothing was recorded for the file. Picklable (it crosses process
    boundaries from Dask workers).

    Attributes
    ----------
    path : str
        The file (normalised path).
    cause : BaseException
        The transient error itself.
    """

    def __init__(self, path: str, cause: BaseException):
        super().__init__(path, cause)
        self.path, self.cause = path, cause

    def __str__(self) -> str:
        return f"{self.path}: {type(self.cause).__name__}: {self.cause}"


@dataclass(frozen=True)
class BatchResult:
    """What :func:`ingest_batch` did with a batch of files.

    Attributes
    ----------
    results : tuple of IngestResult
        The files done (added, updated, skipped or permanently failed), in order.
    transient : tuple of str
        The files that met a transient error: nothing recorded, worth
        another attempt (the flow gives each a task of its own, with retries).
    """

    results: tuple[IngestResult, ...] = ()
    transient: tuple[str, ...] = ()


# --------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------


def prepare(home: str | Path | DataHome | None = None, feature_config: FeatureConfig | None = None) -> DataHome:
    """Create the data home, check the feature config, remove stale temp files.

    Call once before a batch so that a wrong data home fails at once, not
    once per file.

    Raises
    ------
    ConfigMismatchError
        If the home's feature store was made with other feature settings.
    """
    dh = DataHome.resolve(home).create()
    store = FeatureStore(dh.features_dir, feature_config or FeatureConfig())
    store.clean_temp()
    with Catalog(dh.catalog_path):
        pass
    return dh


def compute_features(
    path: str | Path, feature_config: FeatureConfig, decode_config: DecodeConfig,
    warnings: list[str] | None = None,
) -> tuple[np.ndarray, float]:
    """Stream-decode ``path`` and compute its log-mel spectrogram.

    Memory holds one decode block plus the features, whatever the length.
    ``warnings`` receives what decoding found wrong without failing the file
    (see :func:`audiosim.signal.audio.stream`).

    Returns
    -------
    (ndarray, float)
        Float32 ``(n_mels, frames)`` log-mel and the duration in seconds.

    Raises
    ------
    AudioError
        From decoding, or ``too-short`` if the file gives no whole frame.
    """
    n_samples = 0

    def counted(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal n_samples
        for b in blocks:
            n_samples += b.shape[0]
            yield b

    logmel = log_mel_stream(
        counted(stream(path, feature_config.sample_rate, decode_config, warnings)), feature_config
    )
    if logmel.shape[1] == 0:
        raise AudioError(path, "too-short", "no complete analysis frame")
    return logmel, n_samples / feature_config.sample_rate


def read_tags(path: str | Path) -> dict[str, str | None]:
    """Title, artist and album from the file's tags (mutagen), title defaulting to the stem."""
    tags: dict[str, str | None] = {"title": None, "artist": None, "album": None}
    try:
        import mutagen

        f = mutagen.File(str(path), easy=True)
        if f is not None and f.tags is not None:
            for k in tags:
                values = f.tags.get(k)
                if values:
                    v = str(values[0]).strip()
                    tags[k] = v or None
    except Exception:  # tags are a nicety: a broken tag never fails a file
        pass
    tags["title"] = tags["title"] or Path(path).stem
    return tags


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: I/O hiccups and a busy database.

    ``OSError`` counts unless it is a missing file, a wrong file type or a
    permission problem (retrying does not fix those); so does SQLite's
    ``database is locked``/``busy``. A :class:`TransientIngestError` is
    transient by definition.
    """
    if isinstance(exc, TransientIngestError):
        return True
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        return False
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        msg = str(exc).lower()
        return "locked" in msg or "busy" in msg
    return False


def ingest_file(
    path: str | Path,
    home: str | Path | DataHome | None = None,
    feature_config: FeatureConfig | None = None,
    decode_config: DecodeConfig | None = None,
) -> IngestResult:
    """Ingest one file into the data home, in one attempt.

    Parameters
    ----------
    path : str or Path
        The audio file.
    home : str, Path or DataHome, optional
        The data home (default ``$AUDIOSIM_HOME`` or ``./data``); created if
        missing.
    feature_config : FeatureConfig, optional
    decode_config : DecodeConfig, optional

    Returns
    -------
    IngestResult
        ``failed`` results carry the reason of a permanent failure, which
        is also in the catalogue.

    Raises
    ------
    TransientIngestError
        For a transient error (see :func:`is_transient`), e.g. of the data
        home's disk or a busy catalogue: nothing is recorded, another
        attempt may succeed.
    ConfigMismatchError
        If the home's features were made with another feature config.
    """
    t0 = time.perf_counter()
    fc = feature_config or FeatureConfig()
    dc = decode_config or DecodeConfig()
    dh = DataHome.resolve(home)
    key = normalise_path(path)
    try:
        store = FeatureStore(dh.features_dir, fc)
        with Catalog(dh.catalog_path) as cat:
            try:
                result = _ingest(key, cat, store, fc, dc)
            except AudioError as e:
                reason, detail = e.reason, e.detail or str(e)
            except DiskFullError:
                raise  # not the file's fault: nothing is recorded, and the batch stops
            except Exception as e:
                if is_disk_full(e, dh.root):
                    raise DiskFullError(dh.root, str(e)) from e
                if is_transient(e):
                    raise
                reason, detail = "error", f"{type(e).__name__}: {e}"
            else:
                return _timed(result, t0)
            track_id, _ = cat.upsert_failed(key, reason=reason, detail=detail, **_stat_fields(key))
            return _timed(IngestResult(key, "failed", track_id, reason, detail), t0)
    except Exception as e:
        if is_transient(e) and not isinstance(e, TransientIngestError):
            raise TransientIngestError(key, e) from e
        raise


def _timed(r: IngestResult, t0: float) -> IngestResult:
    return IngestResult(**{**r.to_dict(), "seconds": time.perf_counter() - t0})


def _stat_fields(path: str) -> dict[str, int | None]:
    try:
        st = os.stat(path)
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"size": None, "mtime_ns": None}


def _ingest(path: str, cat: Catalog, store: FeatureStore, fc: FeatureConfig, dc: DecodeConfig) -> IngestResult:
    try:
        st = os.stat(path)
    except OSError as e:
        raise AudioError.from_os_error(path, e) from e
    size, mtime_ns = st.st_size, st.st_mtime_ns
    row = cat.get_by_path(path)
    if row is not None and row.ok and row.size == size and row.mtime_ns == mtime_ns and store.has(row.content_hash):
        return IngestResult(path, "skipped", row.id, duration=row.duration)

    info = probe(path)
    digest = content_hash(path)
    if row is not None and row.ok and row.content_hash == digest and store.has(digest):
        cat.touch(row.id, size=size, mtime_ns=mtime_ns)
        return IngestResult(path, "skipped", row.id, duration=row.duration)

    duration = info.duration
    computed = not store.has(digest)
    warnings: list[str] = []
    if computed:
        logmel, duration = compute_features(path, fc, dc, warnings)
        store.put(digest, logmel)  # atomic, and before the row commits
        del logmel
    tags = read_tags(path)
    fields = dict(
        content_hash=digest, size=size, mtime_ns=mtime_ns, duration=duration,
        sample_rate=info.sample_rate, channels=info.channels, detail="; ".join(warnings) or None, **tags,
    )
    with cat.transaction():
        # Re-read inside the transaction: another process may have catalogued
        # this path since the first look.
        seen, row = row, cat.get_by_path(path)
        if seen is None and row is not None and row.ok and row.content_hash == digest:
            return IngestResult(path, "skipped", row.id, duration=row.duration)
        if row is None:
            moved = _moved_from(cat, digest)
            if moved is not None:
                cat.move(moved.id, path, size=size, mtime_ns=mtime_ns)
                return IngestResult(path, "updated", moved.id, "moved", f"moved from {moved.path}", duration)
        track_id, inserted = cat.upsert_ok(path, **fields)
    if inserted or row is None or not row.ok:
        return IngestResult(path, "added", track_id, detail=fields["detail"], duration=duration)
    if row.content_hash == digest:
        return IngestResult(path, "updated", track_id, "features-missing", "; ".join(["features recomputed", *warnings]),
                            duration)
    return IngestResult(path, "updated", track_id, "changed", "; ".join(["file content changed", *warnings]), duration)


def _moved_from(cat: Catalog, digest: str) -> Track | None:
    """An ok track with this content whose file is gone (so it was moved)."""
    for t in cat.find_by_hash(digest, status="ok"):
        if not os.path.exists(t.path):
            return t
    return None


def record_error(path: str | Path, home: str | Path | DataHome | None, error: BaseException) -> IngestResult:
    """Record ``path`` as failed with reason ``error``, because ``error`` stopped its ingest.

    For an error :func:`ingest_file` let through: a transient one after the
    last attempt (the detail is then its cause), or another unexpected one.
    Best effort: if the catalogue cannot be written either, the result has
    ``track_id=None``.
    """
    cause = error.cause if isinstance(error, TransientIngestError) else error
    detail = f"{type(cause).__name__}: {cause}"
    key = normalise_path(path)
    track_id = None
    try:
        with Catalog(DataHome.resolve(home).catalog_path) as cat:
            track_id, _ = cat.upsert_failed(key, reason="error", detail=detail, **_stat_fields(key))
    except Exception:
        pass
    return IngestResult(key, "failed", track_id, "error", detail)


def ingest_or_record(
    path: str | Path,
    home: str | Path | DataHome | None = None,
    feature_config: FeatureConfig | None = None,
    decode_config: DecodeConfig | None = None,
) -> IngestResult:
    """:func:`ingest_file` in one attempt that never raises for the file.

    What :func:`ingest_file` lets through, a transient error included, is
    recorded as failed with reason ``error`` (:func:`record_error`); the
    next ingest tries the file again.
    """
    try:
        return ingest_file(path, home, feature_config, decode_config)
    except DiskFullError:
        raise
    except Exception as e:
        return record_error(path, home, e)


# --------------------------------------------------------------------------
# Many files, without Prefect
# --------------------------------------------------------------------------


def count_statuses(results: Iterable[IngestResult]) -> dict[str, int]:
    """Number of results per status, with every status present."""
    counts = dict.fromkeys(STATUSES, 0)
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def ingest_many(
    paths: Sequence[str | Path],
    home: str | Path | DataHome | None = None,
    feature_config: FeatureConfig | None = None,
    decode_config: DecodeConfig | None = None,
    workers: int = 1,
    progress: Callable[[IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest files in this process on threads (no Prefect), one attempt each.

    The Prefect flow ``flows.ingest.ingest_flow`` does the same with
    retries, task runs and artifacts; this is for scripts, the demo,
    benchmarks and tests. A file that meets a transient error is recorded
    as failed with reason ``error`` at once (:func:`ingest_or_record`); the
    next ingest tries it again.

    Parameters
    ----------
    paths : sequence of str or Path
        Audio files (see :func:`audiosim.ingest.discover.discover` to expand
        folders and lists).
    workers : int
        Threads decoding at once (:func:`audiosim.runners.thread_map`).
    progress : callable, optional
        Called with each :class:`IngestResult`, in the order of ``paths``.

    Returns
    -------
    list of IngestResult
        In the order of ``paths``.
    """
    fc = feature_config or FeatureConfig()
    dh = prepare(home, fc)
    results = []
    for r in thread_map(lambda p: ingest_or_record(p, dh, fc, decode_config), paths, workers):
        results.append(r)
        if progress is not None:
            progress(r)
    return results


def ingest_batch(
    paths: Sequence[str | Path],
    home: str | Path | DataHome | None = None,
    feature_config: FeatureConfig | None = None,
    decode_config: DecodeConfig | None = None,
    one_thread: bool = True,
) -> BatchResult:
    """Ingest several files one after the other, one attempt each, with one torch thread.

    The unit of work of a Dask fan-out (see :mod:`audiosim.runners`):
    features and catalogue rows go to the data home, only the small
    :class:`BatchResult` goes back. A transient error of one file neither
    stops the batch nor is recorded: the file is listed in
    ``BatchResult.transient``, and the flow gives it a task of its own whose
    declared retries apply (a retried batch would ingest its other files
    again, reporting them ``skipped``). Other errors that
    :func:`ingest_file` lets through are recorded as reason ``error``.

    Parameters
    ----------
    one_thread : bool
        Limit torch to one thread meanwhile (:func:`~audiosim.runners.one_torch_thread`);
        False leaves it alone (a lone ingest may use every core).

    Returns
    -------
    BatchResult
    """
    results, transient = [], []
    with one_torch_thread() if one_thread else contextlib.nullcontext():
        for p in paths:
            try:
                results.append(ingest_file(p, home, feature_config, decode_config))
            except TransientIngestError as e:
                transient.append(e.path)
            except DiskFullError:
                raise
            except Exception as e:
                results.append(record_error(p, home, e))
    return BatchResult(tuple(results), tuple(transient))


# --------------------------------------------------------------------------
# Pruning deleted files
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune_missing` did.

    Attributes
    ----------
    pruned : tuple of (int, str)
        (track id, path) of the tracks marked ``missing``.
    roots : tuple of str
        Folders whose catalogue tracks were checked.
    skipped : tuple of (str, str)
        (folder, why) of the folders left alone for safety.
    """

    pruned: tuple[tuple[int, str], ...] = ()
    roots: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def track_ids(self) -> list[int]:
        return [t for t, _ in self.pruned]

    def describe(self) -> str:
        """One line per skipped folder, then a summary line."""
        lines = [f"prune: left {root} alone: {why}" for root, why in self.skipped]
        lines.append(f"pruned {len(self.pruned)} track(s) whose file is gone, under {len(self.roots)} folder(s)")
        return "\n".join(lines)


def prune_refusal(folder: str | Path) -> str | None:
    """Why pruning under ``folder`` would be unsafe, or None when it is safe.

    A folder that does not exist, is not a folder, or holds no audio file
    at all is most likely an unmounted disk or a share that is offline:
    pruning under it would mark the whole collection missing.
    """
    p = Path(folder)
    if not p.exists():
        return "it does not exist (an unmounted disk?)"
    if not p.is_dir():
        return "it is not a folder"
    if next(walk_audio(p), None) is None:
        return "it holds no audio file at all (an unmounted disk or an offline share?)"
    return None


def prune_missing(paths: Iterable[str | Path], home: str | Path | DataHome | None = None) -> PruneResult:
    """Mark catalogue tracks under the scanned folders whose file is gone as ``missing``.

    Run it *after* ingesting the same folders, so that moved and renamed
    files have been found again (they keep their track id) and only files
    really deleted are pruned. The rows stay, with status ``failed`` and
    reason ``missing`` (:meth:`Catalog.mark_missing`); the next index
    update, or :func:`audiosim.index.writer.tombstone_removed`, stops them from
    matching.

    Parameters
    ----------
    paths : iterable of str or Path
        The paths that were ingested; only folders count (files and path
        lists are ignored). A folder that does not exist or holds no audio
        file is skipped (see :func:`prune_refusal`).
    home : str, Path or DataHome, optional

    Returns
    -------
    PruneResult
    """
    roots, skipped = [], []
    for p in paths:
        p = Path(p)
        if p.is_file():  # a file or a list of paths, not a folder
            continue
        why = prune_refusal(p)
        if why is None:
            roots.append(normalise_path(p))
        else:
            skipped.append((normalise_path(p), why))
    dh = DataHome.resolve(home)
    if not roots or not dh.catalog_path.exists():
        return PruneResult((), tuple(roots), tuple(skipped))
    prefixes = tuple(r.rstrip(os.sep) + os.sep for r in roots)
    with Catalog(dh.catalog_path, create=False) as cat:
        gone = [
            t for t in cat.iter_tracks()
            if t.path.startswith(prefixes) and t.reason != MISSING and not os.path.exists(t.path)
        ]
        marked = cat.mark_missing(gone, "file no longer exists (pruned)") if gone else []
    return PruneResult(tuple((t.id, t.path) for t in marked), tuple(roots), tuple(skipped))
