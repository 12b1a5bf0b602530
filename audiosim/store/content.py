"""Files keyed by the content hash of the audio they were made from.

Everything audiosim derives from one audio file and may keep (log-mel
features, song vectors, descriptors, index embeddings, training waves) is a
file named by the file's content hash (:func:`audiosim.signal.audio.content_hash`,
SHA-256 hex). :class:`ContentStore` is the one implementation: where such a
file lives, whether it exists, reading it and writing it (through
:mod:`audiosim.store.atomic`), listing and removing entries.

The file format follows the suffix: ``.npy`` (one array), ``.npz`` (named
arrays) or ``.json``. Layout::

    <root>/<hash[:2]>/<hash><suffix>     sharded (the default)
    <root>/<hash><suffix>                flat (shard=False)

:class:`FeatureStore` keeps the log-mel features of every catalogue file,
``<root>/<hash[:2]>/<hash>.npy``, on a :class:`ContentStore`.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from audiosim.config import FeatureConfig
from audiosim.store.atomic import (
    atomic_open,
    atomic_save_npy,
    atomic_write_json,
    clean_temp_files,
    create_exclusive,
)
from audiosim.store.home import DataHome

FEATURE_DTYPE = np.float16
FORMATS = (".npy", ".npz", ".json")
"""File formats a :class:`ContentStore` reads and writes, by suffix ending."""
_HASH = re.compile(r"[0-9a-f]{64}")


class UnreadableEntry(ValueError):
    """A stored file exists but cannot be read (truncated, corrupt, wrong format)."""


def check_hash(content_hash: str) -> str:
    """``content_hash`` if it is a SHA-256 hex digest (64 lowercase hex digits).

    Keys become file names, so anything else (a path, an upper-case or short
    digest) is refused rather than written somewhere unexpected.

    Raises
    ------
    ValueError
        Naming the rejected key.
    """
    if not isinstance(content_hash, str) or not _HASH.fullmatch(content_hash):
        raise ValueError(f"not a hex content hash (64 hex digits): {content_hash!r}")
    return content_hash


def _format_of(suffix: str) -> str:
    for fmt in FORMATS:
        if suffix.endswith(fmt):
            return fmt
    raise ValueError(f"content store suffix {suffix!r} must end with one of {FORMATS}")


class ContentStore:
    """Files named by content hash under one folder, in one format.

    Parameters
    ----------
    root : str or Path
        The store folder (created on the first write).
    suffix : str
        File name ending after the hash, e.g. ``".npy"`` or ``".mp3.npy"``;
        its end (``.npy``, ``.npz``, ``.json``) chooses the format.
    shard : bool
        Put each file in a sub-folder named by the first two hash digits
        (``<root>/<hash[:2]>/``), so no folder holds more than a few thousand
        files; ``False`` keeps them all in ``root``.

    Notes
    -----
    Writes are atomic (temp file, fsync, rename): a reader sees the old file,
    the new one or none, never half a file. A file that is there but cannot
    be parsed raises :class:`UnreadableEntry` from :meth:`get` and reads as
    absent from :meth:`find`, so a cache can rebuild it.
    """

    def __init__(self, root: str | Path, suffix: str = ".npy", *, shard: bool = True):
        self.root = Path(root)
        self.suffix = suffix
        self.format = _format_of(suffix)
        self.shard = shard

    def __repr__(self) -> str:
        return f"ContentStore({str(self.root)!r}, {self.suffix!r}, shard={self.shard})"

    def path_for(self, content_hash: str) -> Path:
        """Where the entry of ``content_hash`` lives (whether or not it exists)."""
        h = check_hash(content_hash)
        folder = self.root / h[:2] if self.shard else self.root
        return folder / f"{h}{self.suffix}"

    def has(self, content_hash: str) -> bool:
        """True if an entry for ``content_hash`` is stored."""
        return self.path_for(content_hash).is_file()

    __contains__ = has

    def put(self, content_hash: str, value: Any) -> Path:
        """Store ``value`` for ``content_hash`` atomically; returns the file.

        ``value`` is an array for ``.npy`` (saved as is, no pickles), a
        mapping of names to arrays for ``.npz``, or a JSON-serialisable
        object for ``.json`` (indented, keys sorted).
        """
        path = self.path_for(content_hash)
        if self.format == ".npy":
            atomic_save_npy(path, value)
        elif self.format == ".npz":
            arrays: Mapping[str, np.ndarray] = value
            with atomic_open(path, "wb") as f:
                np.savez(f, **arrays)
        else:
            atomic_write_json(path, value)
        return path

    def get(self, content_hash: str, mmap: bool = False) -> Any:
        """The stored value of ``content_hash``.

        Parameters
        ----------
        mmap : bool
            ``.npy`` only: memory-map the file read-only instead of reading it.

        Returns
        -------
        ndarray, dict of str to ndarray, or the JSON value
            By format; an ``.npz`` entry is read completely.

        Raises
        ------
        KeyError
            If nothing is stored for ``content_hash``.
        UnreadableEntry
            If the file is there but cannot be read (the message names it).
        """
        path = self.path_for(content_hash)
        try:
            if self.format == ".npy":
                return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            if self.format == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    return {name: z[name] for name in z.files}
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise KeyError(f"no entry for {content_hash} in {self.root}") from None
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:  # JSON errors are ValueErrors
            raise UnreadableEntry(f"{path}: unreadable ({e})") from e

    def find(self, content_hash: str) -> Any | None:
        """The stored value of ``content_hash``, or None if it is missing or unreadable."""
        try:
            return self.get(content_hash)
        except (KeyError, UnreadableEntry):
            return None

    def remove(self, content_hash: str) -> bool:
        """Delete the entry of ``content_hash``; True if there was one."""
        try:
            self.path_for(content_hash).unlink()
            return True
        except FileNotFoundError:
            return False

    def hashes(self) -> Iterator[str]:
        """The content hashes with an entry, in sorted order (temporary files are not entries)."""
        if not self.root.is_dir():
            return
        if self.shard:
            folders = [sub for sub in sorted(self.root.iterdir()) if sub.is_dir() and len(sub.name) == 2]
        else:
            folders = [self.root]
        for folder in folders:
            for f in sorted(folder.glob(f"*{self.suffix}")):
                h = f.name[: -len(self.suffix)]
                if _HASH.fullmatch(h) and (not self.shard or h[:2] == folder.name):
                    yield h

    def clean_temp(self) -> int:
        """Remove temporary files left by killed writers; returns how many."""
        return clean_temp_files(self.root) if self.root.is_dir() else 0


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
        self.files = ContentStore(self.root, ".npy")
        cfg_path = self.root / self.CONFIG_NAME
        if not cfg_path.exists():
            record = {"feature_config": config.to_dict(), "digest": config.digest(), "dtype": "float16"}
            create_exclusive(cfg_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
        recorded = self.read_config(cfg_path)
        config.check_same(recorded, f"feature store {self.root}")

    @staticmethod
    def read_config(cfg_path: Path) -> FeatureConfig:
        """The :class:`FeatureConfig` recorded in a feature store's ``config.json``.

        Raises
        ------
        ValueError
            If the file cannot be read or parsed (the message names it).
        """
        try:
            data = json.loads(cfg_path.read_text())
            return FeatureConfig.from_dict(data["feature_config"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{cfg_path}: unreadable feature store config ({e})") from e

    @classmethod
    def for_home(cls, home: "str | Path | DataHome | None", config: FeatureConfig = FeatureConfig()) -> "FeatureStore":
        """Open the feature store of a data home."""
        return cls(DataHome.resolve(home).features_dir, config)

    @classmethod
    def recorded(cls, home: "str | Path | DataHome | None") -> "FeatureStore":
        """Open a data home's feature store with the config it was made with.

        For readers that take the features as they are (song vectors) rather
        than asking for particular settings.

        Raises
        ------
        FileNotFoundError
            If the home has no features yet.
        """
        dh = DataHome.resolve(home)
        cfg_path = dh.features_dir / cls.CONFIG_NAME
        if not cfg_path.is_file():
            raise FileNotFoundError(f"no features in {dh.root} (run `audiosim ingest` first)")
        return cls(dh.features_dir, cls.read_config(cfg_path))

    def path_for(self, content_hash: str) -> Path:
        """Where the features of ``content_hash`` live (whether or not they exist)."""
        return self.files.path_for(content_hash)

    def has(self, content_hash: str) -> bool:
        """True if features for ``content_hash`` are stored."""
        return self.files.has(content_hash)

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
        return self.files.put(content_hash, a16)

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
        UnreadableEntry
            If the features file is truncated or corrupt (a ``ValueError``).
        """
        try:
            return self.files.get(content_hash, mmap=mmap)
        except KeyError:
            raise KeyError(f"no features for {content_hash} in {self.root}") from None

    def remove(self, content_hash: str) -> bool:
        """Delete the features of ``content_hash``; True if there were any."""
        return self.files.remove(content_hash)

    def hashes(self) -> Iterator[str]:
        """Iterate over the content hashes that have features."""
        return self.files.hashes()

    def prune(self, keep: "set[str]") -> int:
        """Delete features whose hash is not in ``keep``; returns how many."""
        gone = [h for h in self.hashes() if h not in keep]
        return sum(self.remove(h) for h in gone)

    def clean_temp(self) -> int:
        """Remove temporary files left by killed writers; returns how many."""
        return self.files.clean_temp()
