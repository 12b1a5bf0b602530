"""Song vectors of catalogue tracks, cached by content hash.

Vectors (:func:`audiosim.similarity.model.song_vector`) are computed from
the log-mel features stored at ingest when the encoder reads the same
log-mel (a narrow-band model), else from the file decoded at the encoder's
own rate (the shipped model listens up to 8 kHz, twice the fingerprint
features' band). Each is kept in a :class:`~audiosim.store.content.ContentStore`,
``<home>/cache/song-vectors/<model>-<config>/<hash[:2]>/<hash>.npy``, so a
song is analysed once per model and :class:`~audiosim.config.SimilarityConfig`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from audiosim.config import DecodeConfig, FeatureConfig, SimilarityConfig
from audiosim.fingerprint.model import Encoder, model_digest
from audiosim.ingest.ingest import compute_features
from audiosim.signal import audio
from audiosim.similarity.model import song_vector, spectral_match
from audiosim.store.catalog import Catalog
from audiosim.store.content import ContentStore, FeatureStore
from audiosim.store.home import DataHome

SONG_VECTORS = "song-vectors"
"""Folder of the song-vector caches under the data home's ``cache/``."""


def file_logmel(path: str | Path, features: FeatureConfig, decode: DecodeConfig = DecodeConfig()) -> np.ndarray:
    """Decode ``path`` at ``features.sample_rate`` and return its log-mel ``(n_mels, frames)``.

    Raises
    ------
    AudioError
        If the file cannot be decoded (the message names it).
    """
    return compute_features(path, features, decode)[0]


def song_vectors_dir(home: "str | Path | DataHome | None", model: Encoder, cfg: SimilarityConfig) -> Path:
    """``<home>/cache/song-vectors/<model digest>-<config digest>/``: the cache of one model and config."""
    return DataHome.resolve(home).cache_dir / SONG_VECTORS / f"{model_digest(model)}-{cfg.digest()}"


class SongVectors:
    """Song vectors of a data home's tracks, cached by content hash.

    Parameters
    ----------
    home : data home
    model : Encoder
        The similarity encoder (as :func:`~audiosim.similarity.model.load_similarity_model`).
    cfg : SimilarityConfig

    Attributes
    ----------
    from_store : bool
        True when the model reads the log-mel stored at ingest (same
        spectral settings); otherwise each file is decoded at the model's
        rate once, and only its vector is kept.
    cache : ContentStore
        The cached vectors (float32 ``.npy``, :func:`song_vectors_dir`).
    """

    def __init__(self, home: "str | Path | DataHome | None", model: Encoder, cfg: SimilarityConfig = SimilarityConfig()):
        self.home = DataHome.resolve(home)
        self.model = model
        self.cfg = cfg
        self.store = FeatureStore.recorded(self.home)
        self.from_store = spectral_match(self.store.config, model.features)
        self.cache = ContentStore(song_vectors_dir(self.home, model, cfg), ".npy")

    def cached(self, content_hash: str) -> np.ndarray | None:
        """The cached vector of ``content_hash``, or None (also when the file is unreadable)."""
        v = self.cache.find(content_hash)
        return None if v is None else v.astype(np.float32)

    def get(self, content_hash: str, path: str | Path | None = None) -> np.ndarray:
        """The vector of ``content_hash``, computed and cached on a miss.

        Parameters
        ----------
        content_hash : str
        path : str or Path, optional
            The file holding that content; needed on a miss unless the
            vector comes from stored features.

        Raises
        ------
        KeyError
            If the vector comes from stored features and the home has none
            for ``content_hash``.
        AudioError
            If the file cannot be decoded.
        ValueError
            If no ``path`` was given where one is needed, or the file no
            longer holds ``content_hash`` (it changed since ingest).
        """
        v = self.cached(content_hash)
        if v is not None:
            return v
        if self.from_store:
            logmel = self.store.get(content_hash)
        else:
            if path is None:
                raise ValueError(f"song vector of {content_hash[:12]}: the model decodes files, give the path")
            if audio.content_hash(path) != content_hash:
                raise ValueError(f"{path}: changed since it was ingested (run `audiosim ingest` again)")
            logmel = file_logmel(path, self.model.features)
        v = song_vector(logmel, self.model, self.cfg)
        self.cache.put(content_hash, v)
        return v

    def matrix(
        self, hashes: Sequence[str], paths: Sequence[str | Path] | None = None, progress: bool = False
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors of many tracks as a ``(n, dim)`` float32 matrix (rows in order).

        A track whose vector cannot be computed (unreadable or changed file,
        missing features) gets a zero row and a message naming it.

        Returns
        -------
        (ndarray, dict of int to str)
            The matrix, and the row and message of every track that failed.
        """
        out = np.zeros((len(hashes), self.model.dim), np.float32)
        failed: dict[int, str] = {}
        paths = list(paths) if paths is not None else [None] * len(hashes)
        for i, (h, p) in enumerate(tqdm(list(zip(hashes, paths)), desc="song vectors", unit="song",
                                        disable=not progress)):
            try:
                out[i] = self.get(h, p)
            except (audio.AudioError, KeyError, ValueError, OSError) as e:
                failed[i] = f"{p or h}: {e}"
        return out, failed


def catalogue_frame(home: "str | Path | DataHome | None") -> pd.DataFrame:
    """The ``ok`` tracks of the home's catalogue as a DataFrame indexed by track id.

    Raises
    ------
    FileNotFoundError
        If the home has no catalogue.
    """
    dh = DataHome.resolve(home)
    try:
        cat = Catalog(dh.catalog_path, create=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"no catalogue in {dh.root} (run `audiosim ingest` first)") from None
    with cat:
        return cat.tracks(status="ok")


@dataclass
class SongTable:
    """Catalogue tracks with their song vectors (row ``i`` of ``vectors`` is ``tracks.iloc[i]``)."""

    tracks: pd.DataFrame
    vectors: np.ndarray


def catalogue_vectors(
    home: "str | Path | DataHome | None",
    model: Encoder,
    cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool = False,
) -> SongTable:
    """Song vectors of every ``ok`` catalogue track.

    Tracks whose vector cannot be computed (see :meth:`SongVectors.matrix`)
    are left out, each with a warning naming the file.
    """
    sv = SongVectors(home, model, cfg)
    tracks = catalogue_frame(home)
    if sv.from_store:
        tracks = tracks[[sv.store.has(h) for h in tracks["content_hash"]]]
    vectors, failed = sv.matrix(list(tracks["content_hash"]), list(tracks["path"]), progress=progress)
    if failed:
        for msg in failed.values():
            warnings.warn(f"song vector skipped: {msg}", stacklevel=2)
        keep = np.ones(len(vectors), bool)
        keep[list(failed)] = False
        tracks, vectors = tracks[keep], vectors[keep]
    return SongTable(tracks, vectors)
