"""Ingest audio files: find them, decode them, store features, catalogue them.

:func:`ingest_file` is the unit of work (one file, independent of every
other, safe to run in threads or processes side by side); the Prefect flow
in ``flows/ingest.py`` and :func:`ingest_many` only fan it out.

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
both: never a row without features, never a duplicate row. Any
:class:`~audiosim.signal.audio.AudioError`, and any other exception (reason
``error``), becomes a ``failed`` row that the next ingest retries.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from audiosim.config import DecodeConfig, FeatureConfig
from audiosim.runners import one_torch_thread
from audiosim.signal.audio import AudioError, content_hash, is_audio_path, probe, stream
from audiosim.signal.features import log_mel_stream
from audiosim.store.catalog import Catalog, Track, normalise_path
from audiosim.store.content import FeatureStore
from audiosim.store.home import DataHome

LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list", ".m3u", ".m3u8"})
"""Files with these extensions are read as lists of paths, one per line."""

STATUSES = ("added", "updated", "skipped", "failed")

MISSING = "missing"
"""Catalogue ``reason`` of a track whose file was deleted (see :func:`prune_missing`)."""


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
        For ``failed``, the :class:`~audiosim.signal.audio.AudioError` reason or
        ``error``; for ``updated``, ``changed``, ``moved`` or ``features-missing``.
    detail : str or None
        Human-readable explanation.
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


# --------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files, folders and path lists into sorted, unique audio files.

    Parameters
    ----------
    paths : iterable of str or Path
        Each one is

        - a folder: searched recursively for files with an audio extension
          (:func:`~audiosim.signal.audio.is_audio_path`), skipping hidden files and
          folders;
        - a list file (``.txt``, ``.lst``, ``.list``, ``.m3u``, ``.m3u8``):
          one path per line, blank lines and lines starting with ``#``
          ignored, relative paths taken from the list's folder; entries are
          expanded in turn (folders are searched), and entries that do not
          exist are kept so that ingest records them as failed;
        - any other file: taken as audio whatever its extension.

    Returns
    -------
    list of Path
        Absolute paths, sorted, without duplicates.

    Raises
    ------
    FileNotFoundError
        If a path given directly (not inside a list) does not exist.
    """
    found: set[str] = set()
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(p))
        _expand(p, found, seen_lists=set())
    return [Path(p) for p in sorted(found)]


def _expand(p: Path, found: set[str], seen_lists: set[str]) -> None:
    if p.is_dir():
        found.update(_walk_audio(p))
    elif p.suffix.lower() in LIST_EXTENSIONS and p.is_file():
        key = normalise_path(p)
        if key in seen_lists:
            return
        seen_lists.add(key)
        for entry in read_path_list(p):
            _expand(entry, found, seen_lists)
    else:
        found.add(normalise_path(p))


def _walk_audio(folder: Path) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and is_audio_path(name):
                yield normalise_path(os.path.join(root, name))


def read_path_list(list_file: str | Path) -> list[Path]:
    """Read the paths listed in a text or ``.m3u`` file.

    Parameters
    ----------
    list_file : str or Path
        UTF-8 text (a BOM is tolerated), one path per line; blank lines and
        lines starting with ``#`` (comments, ``#EXTM3U``, ``#EXTINF``) are
        skipped; ``file://`` URLs are accepted; relative paths are relative
        to the list's folder.

    Returns
    -------
    list of Path
        In file order.

    Raises
    ------
    ValueError
        If the file is not UTF-8 text (the message names the file).
    """
    list_file = Path(list_file)
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{list_file}: not a UTF-8 list of paths ({e.reason} at byte {e.start})") from e
    base = list_file.parent
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("file://"):
            from urllib.parse import unquote, urlparse

            line = unquote(urlparse(line).path)
        entry = Path(line).expanduser()
        out.append(entry if entry.is_absolute() else base / entry)
    return out


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
    path: str | Path, feature_config: FeatureConfig, decode_config: DecodeConfig
) -> tuple[np.ndarray, float]:
    """Stream-decode ``path`` and compute its log-mel spectrogram.

    Memory holds one decode block plus the features, whatever the length.

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

    logmel = log_mel_stream(counted(stream(path, feature_config.sample_rate, decode_config)), feature_config)
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
    ``database is locked``/``busy``.
    """
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
    """Ingest one file into the data home; never raises for a bad file.

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
        ``failed`` results carry the reason, which is also in the catalogue.

    Raises
    ------
    ConfigMismatchError
        If the home's features were made with another feature config.
    OSError, sqlite3.OperationalError
        Only transient errors of the data home itself (see
        :func:`is_transient`), which are worth retrying.
    """
    t0 = time.perf_counter()
    fc = feature_config or FeatureConfig()
    dc = decode_config or DecodeConfig()
    dh = DataHome.resolve(home)
    key = normalise_path(path)
    store = FeatureStore(dh.features_dir, fc)
    with Catalog(dh.catalog_path) as cat:
        try:
            result = _ingest(key, cat, store, fc, dc)
        except AudioError as e:
            reason, detail = e.reason, e.detail or str(e)
        except Exception as e:
            if is_transient(e):
                raise
            reason, detail = "error", f"{type(e).__name__}: {e}"
        else:
            return _timed(result, t0)
        track_id, _ = cat.upsert_failed(key, reason=reason, detail=detail, **_stat_fields(key))
        return _timed(IngestResult(key, "failed", track_id, reason, detail), t0)


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
        raise AudioError(path, "unreadable", e.strerror or str(e)) from e
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
    if computed:
        logmel, duration = compute_features(path, fc, dc)
        store.put(digest, logmel)  # atomic, and before the row commits
        del logmel
    tags = read_tags(path)
    fields = dict(
        content_hash=digest, size=size, mtime_ns=mtime_ns, duration=duration,
        sample_rate=info.sample_rate, channels=info.channels, **tags,
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
        return IngestResult(path, "added", track_id, duration=duration)
    if row.content_hash == digest:
        return IngestResult(path, "updated", track_id, "features-missing", "features recomputed", duration)
    return IngestResult(path, "updated", track_id, "changed", "file content changed", duration)


def _moved_from(cat: Catalog, digest: str) -> Track | None:
    """An ok track with this content whose file is gone (so it was moved)."""
    for t in cat.find_by_hash(digest, status="ok"):
        if not os.path.exists(t.path):
            return t
    return None


def record_failure(
    path: str | Path, home: str | Path | DataHome | None, reason: str, detail: str
) -> IngestResult:
    """Record ``path`` as failed (used when :func:`ingest_file` itself raised).

    Best effort: if the catalogue cannot be written either, the result has
    ``track_id=None``.
    """
    key = normalise_path(path)
    track_id = None
    try:
        with Catalog(DataHome.resolve(home).catalog_path) as cat:
            track_id, _ = cat.upsert_failed(key, reason=reason, detail=detail, **_stat_fields(key))
    except Exception:
        pass
    return IngestResult(key, "failed", track_id, reason, detail)


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
    """Ingest files in this process with a thread pool (no Prefect).

    The Prefect flow ``flows.ingest.ingest_flow`` does the same with
    retries, task runs and artifacts; this is for scripts and benchmarks.

    Parameters
    ----------
    paths : sequence of str or Path
        Audio files (see :func:`discover` to expand folders and lists).
    workers : int
        Threads decoding at once.
    progress : callable, optional
        Called with each :class:`IngestResult` as it completes.

    Returns
    -------
    list of IngestResult
        In the order of ``paths``.
    """
    fc = feature_config or FeatureConfig()
    dh = prepare(home, fc)

    results: list[IngestResult | None] = [None] * len(paths)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            stack.enter_context(one_torch_thread())
        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)))
        futures = {pool.submit(ingest_retrying, p, dh, fc, decode_config): i for i, p in enumerate(paths)}
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            results[futures[fut]] = r
            if progress is not None:
                progress(r)
    return results  # type: ignore[return-value]


def ingest_retrying(
    path: str | Path,
    home: str | Path | DataHome | None = None,
    feature_config: FeatureConfig | None = None,
    decode_config: DecodeConfig | None = None,
    attempts: int = 3,
    delay: float = 1.0,
) -> IngestResult:
    """:func:`ingest_file`, retrying transient errors; never raises for one file.

    After ``attempts`` transient errors, or any other exception that
    :func:`ingest_file` lets through (e.g. a feature config mismatch), the
    file is recorded as failed with reason ``error``.
    """
    for attempt in range(max(1, attempts)):
        try:
            return ingest_file(path, home, feature_config, decode_config)
        except Exception as e:
            if attempt == attempts - 1 or not is_transient(e):
                return record_failure(path, home, "error", f"{type(e).__name__}: {e}")
            time.sleep(delay)
    raise AssertionError("unreachable")


def ingest_batch(
    paths: Sequence[str | Path],
    home: str | Path | DataHome | None = None,
    feature_config: FeatureConfig | None = None,
    decode_config: DecodeConfig | None = None,
    one_thread: bool = True,
) -> list[IngestResult]:
    """Ingest several files one after the other, with one torch thread.

    The unit of work of a Dask fan-out (see :mod:`audiosim.runners`):
    features and catalogue rows go to the data home, only the small
    :class:`IngestResult` records are returned.

    Parameters
    ----------
    one_thread : bool
        Limit torch to one thread meanwhile (:func:`~audiosim.runners.one_torch_thread`);
        False leaves it alone (a lone ingest may use every core).

    Returns
    -------
    list of IngestResult
        One per path, in order; bad files are ``failed`` results.
    """
    with one_torch_thread() if one_thread else contextlib.nullcontext():
        return [ingest_retrying(p, home, feature_config, decode_config) for p in paths]


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
    if next(_walk_audio(p), None) is None:
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
