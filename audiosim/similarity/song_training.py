"""Scoring song vectors by soundtrack, and the song-triplet negatives a trained head would use.

The song-similarity encoder that was trained here with song triplets (and
``models/similarity.pt``) is gone: frozen musicnn features
(:mod:`audiosim.similarity.model`) place songs of one soundtrack nearer each
other than it did. What remains is what evaluates song vectors
(:func:`precision_at_k`, as ``benchmarks/similarity.py`` uses it) and the
negative mask of song triplets (:func:`song_negatives`: other songs, and
optionally other soundtracks only).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from audiosim.similarity.model import cosine_matrix


def precision_at_k(vectors: np.ndarray, labels: Sequence[str], k: int = 5) -> float:
    """Mean share of same-label songs among each song's ``k`` nearest others (cosine)."""
    lab = np.asarray(labels)
    sim = cosine_matrix(vectors)
    np.fill_diagonal(sim, -np.inf)
    k = min(k, len(lab) - 1)
    if k < 1:
        return float("nan")
    top = np.argsort(-sim, axis=1)[:, :k]
    return float(np.mean(lab[top] == lab[:, None]))


def song_negatives(songs: np.ndarray, groups: np.ndarray | None = None) -> torch.Tensor:
    """``mask[i, j]``: item ``j`` may be a negative for anchor ``i``.

    Parameters
    ----------
    songs : np.ndarray
        Song index of every item in the batch.
    groups : np.ndarray, optional
        A group label per song index (e.g. its soundtrack); items of the same
        group as the anchor are then not negatives either.
    """
    allowed = songs[:, None] != songs[None, :]
    if groups is not None:
        g = np.asarray(groups)[songs]
        allowed &= g[:, None] != g[None, :]
    return torch.from_numpy(allowed)
