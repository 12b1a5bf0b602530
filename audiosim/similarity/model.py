"""The song model: frozen musicnn features pooled into one vector per song, and the vector maths.

A song's vector is a layer of the pretrained musicnn network
(:mod:`audiosim.similarity.musicnn`; by default the MSD model's 1506
mid-level features) for every 3-second patch of a few excerpts of the song
(:mod:`audiosim.similarity.excerpts`), mean-pooled and L2-normalised.
Nothing is trained: the network learned which sounds go together from
tagging a million songs, which places songs of one soundtrack near each
other far better than a model trained on this project's few hundred tracks
did (issue 14; figures in ``benchmarks/README.md``). Similarity is the
cosine of two song vectors (1 = same direction).

:class:`SongModel` carries a :class:`~audiosim.fingerprint.model.ModelIdentity`
whose digest names the weights, layer and pooling, so that caches and the
song index never mix vectors made differently.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from audiosim.config import SimilarityConfig
from audiosim.fingerprint.model import ModelIdentity, file_digest
from audiosim.similarity import musicnn

DEFAULT_SIMILARITY_MODEL = musicnn.MUSICNN_DIR / "msd_musicnn.pt"
"""The weights behind the default song vectors (the MSD musicnn model)."""


class SongModel:
    """Song vectors from a frozen musicnn layer.

    Parameters
    ----------
    cfg : SimilarityConfig
        Which model (``msd``/``mtt``), layer and pooling; the excerpts too.

    Attributes
    ----------
    dim : int
        Length of a song vector.
    identity : ModelIdentity
        ``path`` of the weights, ``digest`` (weights file, layer and pooling)
        and ``card`` (the musicnn card plus the layer and pooling), as the
        song index and reports record it.
    """

    def __init__(self, cfg: SimilarityConfig = SimilarityConfig()):
        self.cfg = cfg
        self.net = musicnn.load_musicnn(cfg.model)
        self.dim = musicnn.MIDLEVEL_DIM if cfg.layer == "midlevel" else musicnn.PENULTIMATE_DIM
        weights = musicnn.MUSICNN_DIR / f"{cfg.model}_musicnn.pt"
        recipe = {"weights": file_digest(weights), "layer": cfg.layer, "pooling": cfg.pooling}
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        card = json.loads((musicnn.MUSICNN_DIR / "card.json").read_text())
        card.update(kind="song-model", base=f"{cfg.model}_musicnn", layer=cfg.layer, pooling=cfg.pooling,
                    trained_head=None)
        self.identity = ModelIdentity(str(weights), digest, card)

    def describe(self) -> dict:
        """What made the vectors: model, layer, pooling and digest (for manifests)."""
        return {"model": self.cfg.model, "layer": self.cfg.layer, "pooling": self.cfg.pooling,
                "digest": self.identity.digest, "dim": self.dim}

    def patch_features(self, wave_16k: np.ndarray) -> np.ndarray:
        """The chosen layer for every 3-second patch of a 16 kHz wave, ``(n_patches, dim)``.

        A wave shorter than one patch is tiled (repeated) up to one patch.
        """
        feats = musicnn.features(fit_one_patch(wave_16k), musicnn.SAMPLE_RATE, self.net)
        return feats.midlevel if self.cfg.layer == "midlevel" else feats.penultimate

    def song_vector(self, waves_16k: list[np.ndarray]) -> np.ndarray:
        """The song vector of a song's excerpts: the pooled, L2-normalised patch features."""
        return mean_vector(np.vstack([self.patch_features(w) for w in waves_16k]))


def fit_one_patch(wave: np.ndarray) -> np.ndarray:
    """``wave``, tiled up to musicnn's one patch when shorter (songs of a few seconds)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.size == 0:
        raise ValueError("no audio samples")
    if wave.size < musicnn.MIN_SAMPLES:
        wave = np.tile(wave, -(-musicnn.MIN_SAMPLES // wave.size))
    return wave


def load_similarity_model(path: str | Path | None = None, cfg: SimilarityConfig = SimilarityConfig()) -> SongModel:
    """The song model of ``cfg`` (the frozen MSD musicnn features by default).

    Parameters
    ----------
    path : str or Path, optional
        Only the shipped musicnn weights are accepted (no trained song
        model ships: ``benchmarks/README.md`` says why); given, it must be
        the weights file of ``cfg.model``.

    Raises
    ------
    ValueError
        If ``path`` names anything else.
    """
    if path is not None:
        want = musicnn.MUSICNN_DIR / f"{cfg.model}_musicnn.pt"
        if Path(path).resolve() != want.resolve():
            raise ValueError(f"{path}: not a song model; song vectors come from the shipped musicnn weights "
                             f"({want}), and no other song model is supported")
    return SongModel(cfg)


def mean_vector(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised mean of row vectors."""
    m = np.asarray(vectors, dtype=np.float64).mean(0)
    return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarities between the rows of ``a`` and of ``b`` (default ``a``)."""
    a = np.asarray(a, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    if b is None:
        return a @ a.T
    b = np.asarray(b, dtype=np.float64)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T
