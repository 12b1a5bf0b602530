"""The song-similarity model and the vector maths of songs.

A song's vector is the L2-normalised mean of the embeddings of its clips:
log-mel windows of the similarity encoder's segment length every
``SimilarityConfig.clip_hop_seconds``, near-silent ones dropped, at most
``max_clips`` spread evenly over the song. The encoder is the fingerprint
architecture trained with song-level triplets (two clips of one song are
positives, clips of other songs negatives), so songs that sound alike get
nearby vectors. Similarity is the cosine of two song vectors (1 = same
direction).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audiosim.config import FeatureConfig, SimilarityConfig
from audiosim.fingerprint.model import MODELS_DIR, Encoder, load_encoder
from audiosim.signal import features as F

DEFAULT_SIMILARITY_MODEL = MODELS_DIR / "similarity.pt"
_SPECTRAL = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "log_floor")


def load_similarity_model(path: str | Path | None = None) -> Encoder:
    """Load the song-similarity encoder (default ``models/similarity.pt``).

    Its :attr:`~audiosim.fingerprint.model.Encoder.identity` names the
    checkpoint (path, digest, card); :func:`audiosim.fingerprint.model.model_digest`
    is the digest caches and the song index record.
    """
    return load_encoder(path or DEFAULT_SIMILARITY_MODEL)


def spectral_match(stored: FeatureConfig, model: FeatureConfig) -> bool:
    """Whether two feature settings give the same log-mel (segment length aside)."""
    return all(getattr(stored, k) == getattr(model, k) for k in _SPECTRAL)


def clip_starts(logmel: np.ndarray | torch.Tensor, features: FeatureConfig, cfg: SimilarityConfig = SimilarityConfig()) -> np.ndarray:
    """Start frames of a song's clips.

    Audible clips (``features.silence_db``) every ``cfg.clip_hop_seconds``;
    when more than ``cfg.max_clips``, an evenly spaced subset. A song with
    no audible clip uses all clips; a song shorter than one clip gets one
    start at 0 (the caller pads it).
    """
    n = int(np.shape(logmel)[-1])
    if n < features.segment_frames:
        return np.zeros(1, np.int64)
    hop = F.seconds_to_frames(cfg.clip_hop_seconds, features)
    starts = F.audible_segments(logmel, hop, features)
    if starts.size == 0:
        starts = F.segment_starts(n, hop, features)
    if starts.size > cfg.max_clips:
        starts = starts[np.linspace(0, starts.size - 1, cfg.max_clips).round().astype(np.int64)]
    return starts


def song_clips(logmel: np.ndarray | torch.Tensor, features: FeatureConfig, cfg: SimilarityConfig = SimilarityConfig()) -> torch.Tensor:
    """The clips of a song as ``(n_clips, n_mels, segment_frames)`` log-mel windows.

    Songs shorter than one clip are tiled (repeated) up to its length.
    """
    lm = torch.as_tensor(np.asarray(logmel, dtype=np.float32))
    if lm.shape[-1] == 0:
        raise ValueError("no log-mel frames")
    if lm.shape[-1] < features.segment_frames:
        reps = -(-features.segment_frames // lm.shape[-1])
        lm = lm.repeat(1, reps)[:, : features.segment_frames]
    return F.segments(lm, clip_starts(lm, features, cfg), features)


def clip_vectors(logmel: np.ndarray | torch.Tensor, model: Encoder, cfg: SimilarityConfig = SimilarityConfig()) -> np.ndarray:
    """Unit embeddings of a song's clips, shape ``(n_clips, dim)``."""
    return model.embed(song_clips(logmel, model.features, cfg)).numpy()


def song_vector(logmel: np.ndarray | torch.Tensor, model: Encoder, cfg: SimilarityConfig = SimilarityConfig()) -> np.ndarray:
    """The song's vector: L2-normalised mean of its clip embeddings (float32, ``(dim,)``)."""
    return mean_vector(clip_vectors(logmel, model, cfg))


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
