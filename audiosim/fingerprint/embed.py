"""Embedding tracks: a log-mel spectrogram in, one vector per audible segment out.

:func:`embed_logmel` is what index builds and queries share. The rest is the
embeddings cache that lets other processes (Dask workers) embed tracks ahead
of an index update: an :class:`EmbedJob` names the model and the tracks,
:func:`embed_tracks` writes one ``<content hash>.npz`` per track under
:func:`embeddings_dir`, and the update reads them back with
:func:`load_embedding` and removes them once they are in a shard
(:func:`drop_embeddings`). The cache functions stay together so that the
cache can move to another store in one place.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from audiosim.config import ConfigMismatchError, FeatureConfig
from audiosim.fingerprint.model import Encoder, load_encoder, model_digest
from audiosim.runners import one_torch_thread
from audiosim.signal import features as F
from audiosim.store.atomic import atomic_open
from audiosim.store.content import FeatureStore
from audiosim.store.home import DataHome


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


# --------------------------------------------------------------------------
# The embeddings cache: tracks embedded ahead, by other processes
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


def drop_embeddings(directory: Path, hashes: Iterable[str]) -> None:
    """Delete the embedding files an index update consumed (they are in a shard now)."""
    for h in hashes:
        (directory / f"{h}.npz").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()  # only when empty


@dataclass(frozen=True)
class EmbedJob:
    """Tracks to embed ahead of an index update, and with what.

    Made by :func:`audiosim.index.writer.plan_embedding`.

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
        From :func:`audiosim.index.writer.plan_embedding`.
    tracks : sequence of (int, str), optional
        A batch of ``job.tracks`` (default: all of them).

    Returns
    -------
    list of (int, int)
        (track id, segments embedded; -1 when the file already existed).
    """
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
