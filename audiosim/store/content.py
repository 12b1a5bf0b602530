"""Files keyed by the content hash of the audio they were made from.

:class:`FeatureStore` keeps the log-mel features of every catalogue file,
``<root>/<hash[:2]>/<hash>.npy``, written with :mod:`audiosim.store.atomic`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from audiosim.config import FeatureConfig
from audiosim.store.atomic import atomic_save_npy, clean_temp_files, create_exclusive
from audiosim.store.home import DataHome

FEATURE_DTYPE = np.float16


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
            create_exclusive(cfg_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
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
