"""The data home and the feature store.

A data home is one folder holding everything audiosim makes::

    catalog.sqlite      the catalogue of tracks (see :mod:`audiosim.catalog`)
    features/           log-mel features by content hash, plus config.json
    index/              Annoy shards, id maps, manifest.json
    reports/            HTML/CSV reports
    cache/              anything that can be rebuilt

Every file is written to a temporary file in the same folder, flushed to
disk and renamed over the destination (:func:`atomic_write_bytes` and
friends), so a reader never sees half a file and a killed writer leaves
at most a temporary file that :meth:`FeatureStore.clean_temp` removes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from .config import FeatureConfig, default_home

TEMP_SUFFIX = ".tmp"
FEATURE_DTYPE = np.float16
_HOST = socket.gethostname().replace(".", "_") or "host"
# mkstemp creates 0600 files; finished files get the usual 0666 & ~umask.
# (Read once at import: os.umask can only be read by setting it.)
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


def temp_prefix(path: Path) -> str:
    """Name prefix of the temporary files written before ``path`` is renamed into place."""
    # ".<name>.<host>-<pid>." lets clean_temp tell a dead writer's leftovers
    # from a live writer's file in progress.
    return f".{path.name}.{_HOST}-{os.getpid()}."


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk, so a rename inside it survives a crash (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the block succeeds.

    The temporary file is created beside ``path`` (same file system, so the
    final :func:`os.replace` is atomic), flushed and fsynced before the
    rename. If the block raises, the temporary file is removed and ``path``
    is left untouched.

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.
    mode : {"wb", "w"}
        Binary or text.
    encoding : str, optional
        Text encoding for ``mode="w"`` (UTF-8 by default).

    Yields
    ------
    file object
        Write to it; do not close it yourself.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports modes 'wb' and 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, encoding=(encoding or "utf-8") if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename).

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.
    data : bytes
    """
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically; see :func:`atomic_write_bytes`."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """Save ``array`` in ``.npy`` format to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Atomically create ``path`` with ``data`` unless it exists; True if created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if path exists: no race between writers
        except FileExistsError:
            return False
        fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def clean_temp_files(folder: str | Path, max_age_seconds: float = 24 * 3600.0) -> int:
    """Remove temporary files left in ``folder`` (recursively) by killed writers.

    A temporary file is removed when the process that made it (same host)
    is gone, or when it is older than ``max_age_seconds`` whoever made it.
    Files of live writers are kept.

    Returns
    -------
    int
        Number of files removed.
    """
    removed = 0
    now = time.time()
    for root, dirs, files in os.walk(folder):
        for name in files:
            if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
                continue
            p = Path(root) / name
            if _writer_is_gone(name) or _age(p, now) > max_age_seconds:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed += 1
    return removed


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _writer_is_gone(name: str) -> bool:
    # name: ".<dest>.<host>-<pid>.<random>.tmp"
    parts = name[: -len(TEMP_SUFFIX)].split(".")
    if len(parts) < 4:
        return False
    host, _, pid = parts[-2].rpartition("-")
    if host != _HOST or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# --------------------------------------------------------------------------
# Data home
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DataHome:
    """Paths of a data home (nothing is created until :meth:`create`).

    Parameters
    ----------
    root : str or Path
        The data home folder.

    Examples
    --------
    >>> home = DataHome("data")
    >>> home.catalog_path
    PosixPath('data/catalog.sqlite')
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def resolve(cls, home: "str | Path | DataHome | None" = None) -> "DataHome":
        """The data home for ``home``, or ``$AUDIOSIM_HOME``, or ``./data``."""
        if isinstance(home, DataHome):
            return home
        return cls(Path(home) if home is not None else default_home())

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def create(self) -> "DataHome":
        """Create the home and its folders if missing; returns ``self``.

        Raises
        ------
        NotADirectoryError
            If ``root`` (or one of its folders) exists and is not a folder.
        """
        for d in (self.root, self.features_dir, self.index_dir, self.reports_dir, self.cache_dir):
            if d.exists() and not d.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "data home path exists and is not a folder", str(d))
            d.mkdir(parents=True, exist_ok=True)
        return self


# --------------------------------------------------------------------------
# Feature store
# --------------------------------------------------------------------------


class FeatureStore:
    """Log-mel features keyed by the content hash of the audio file.

    Layout: ``<root>/<hash[:2]>/<hash>.npy`` holding a float16 array of shape
    ``(n_mels, frames)``, and ``<root>/config.json`` holding the
    :class:`~audiosim.config.FeatureConfig` every array was made with. The
    config is written on first use; opening the store later with a
    different config raises :class:`~audiosim.config.ConfigMismatchError`
    naming both digests.

    Because the key is the content hash, a renamed or moved file finds its
    features again, and a changed file gets new ones.

    Parameters
    ----------
    root : str or Path
        The store folder (``DataHome.features_dir``).
    config : FeatureConfig
        The settings the caller uses.
    """

    CONFIG_NAME = "config.json"

    def __init__(self, root: str | Path, config: FeatureConfig = FeatureConfig()):
        self.root = Path(root)
        self.config = config
        cfg_path = self.root / self.CONFIG_NAME
        if not cfg_path.exists():
            record = {"feature_config": config.to_dict(), "digest": config.digest(), "dtype": "float16"}
            _create_exclusive(cfg_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
        recorded = self._read_config(cfg_path)
        config.check_same(recorded, f"feature store {self.root}")

    @staticmethod
    def _read_config(cfg_path: Path) -> FeatureConfig:
        try:
            data = json.loads(cfg_path.read_text())
            return FeatureConfig.from_dict(data["feature_config"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{cfg_path}: unreadable feature store config ({e})") from e

    @classmethod
    def for_home(cls, home: "str | Path | DataHome | None", config: FeatureConfig = FeatureConfig()) -> "FeatureStore":
        """Open the feature store of a data home."""
        return cls(DataHome.resolve(home).features_dir, config)

    @staticmethod
    def _check_key(content_hash: str) -> str:
        if len(content_hash) < 8 or not all(c in "0123456789abcdef" for c in content_hash):
            raise ValueError(f"not a hex content hash: {content_hash!r}")
        return content_hash

    def path_for(self, content_hash: str) -> Path:
        """Where the features of ``content_hash`` live (whether or not they exist)."""
        h = self._check_key(content_hash)
        return self.root / h[:2] / f"{h}.npy"

    def has(self, content_hash: str) -> bool:
        """True if features for ``content_hash`` are stored."""
        return self.path_for(content_hash).is_file()

    __contains__ = has

    def put(self, content_hash: str, logmel: np.ndarray) -> Path:
        """Store a log-mel array (converted to float16) atomically.

        Parameters
        ----------
        content_hash : str
            SHA-256 hex of the audio file.
        logmel : ndarray, shape (n_mels, frames)

        Returns
        -------
        Path
            The features file.

        Raises
        ------
        ValueError
            If the shape does not match ``config.n_mels`` or values are not finite.
        """
        a = np.asarray(logmel)
        if a.ndim != 2 or a.shape[0] != self.config.n_mels:
            raise ValueError(
                f"features for {content_hash} have shape {a.shape}, expected ({self.config.n_mels}, frames)"
            )
        a16 = a.astype(FEATURE_DTYPE)
        if not np.isfinite(a16).all():
            raise ValueError(f"features for {content_hash} contain NaN or inf")
        path = self.path_for(content_hash)
        atomic_save_npy(path, a16)
        return path

    def get(self, content_hash: str, mmap: bool = False) -> np.ndarray:
        """Load the float16 ``(n_mels, frames)`` features of ``content_hash``.

        Parameters
        ----------
        mmap : bool
            Memory-map the file read-only instead of reading it.

        Raises
        ------
        KeyError
            If nothing is stored for ``content_hash``.
        """
        path = self.path_for(content_hash)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise KeyError(f"no features for {content_hash} in {self.root}") from None

    def remove(self, content_hash: str) -> bool:
        """Delete the features of ``content_hash``; True if there were any."""
        try:
            self.path_for(content_hash).unlink()
            return True
        except FileNotFoundError:
            return False

    def hashes(self) -> Iterator[str]:
        """Iterate over the content hashes that have features."""
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.glob("*.npy")):
                    if not f.name.startswith("."):
                        yield f.stem

    def prune(self, keep: "set[str]") -> int:
        """Delete features whose hash is not in ``keep``; returns how many."""
        gone = [h for h in self.hashes() if h not in keep]
        return sum(self.remove(h) for h in gone)

    def clean_temp(self) -> int:
        """Remove temporary files left by killed writers; returns how many."""
        return clean_temp_files(self.root) if self.root.is_dir() else 0
