"""The index manifest: which shards make the index, what was removed, and how it was built.

``<home>/index/manifest.json`` is the source of truth. Shards are
immutable; a writer publishes a change by writing the manifest last,
atomically (:mod:`audiosim.store.atomic`), so a reader sees the old or the
new index, never a mix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from audiosim.config import FeatureConfig, IndexConfig
from audiosim.index.thresholds import Calibration
from audiosim.store.atomic import atomic_write_json

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
IDS_DTYPE = np.dtype([("track", "<i4"), ("time", "<f4")])
"""Id map row: the catalogue track id and the segment start time (s)."""
SHARD_SUFFIXES = (".ann", ".ids.npy", ".hub.npy", ".half.npy", ".json")
BUILD_FIELDS = ("index_hop_seconds", "metric", "half_hop_vectors")
"""IndexConfig fields an index is built with: changing one needs a rebuild."""


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
        :func:`audiosim.fingerprint.model.file_digest` of the encoder checkpoint.
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
    calibration : Calibration or None
        The no-match thresholds (:mod:`audiosim.index.thresholds`); one for
        another clip score loads too, as a record that is not current.
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
    calibration: Calibration | None = None
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
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
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
            config=IndexConfig.from_dict({"half_hop_vectors": False, **d["index_config"]}),  # older indexes had none
            dim=int(d["dim"]),
            shards=[ShardInfo.from_dict(s) for s in d["shards"]],
            tombstones=[Tombstone(**t) for t in d.get("tombstones", [])],
            calibration=None if d.get("calibration") is None else Calibration.from_dict(d["calibration"]),
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
