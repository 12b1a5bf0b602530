"""The segments half an index hop after the indexed ones, kept small for verification.

Verification (:mod:`audiosim.match.verify`) compares each query segment with
the candidate track's indexed segments near where it should be. On a grid of
0.5 s a query segment lies up to 0.25 s from the nearest one, and a degraded
segment that far off resembles the right passage little more than it
resembles other music. With the segment half a hop later also at hand, the
nearest is at most a quarter of a hop away. Only verification needs those
segments: the search, the Annoy forest and the hub scores stay on the index
hop, so each shard stores them beside the forest, one row per indexed item,
in 4 bits per dimension (48 bytes at 96 dimensions) instead of as more
Annoy items (about 460 bytes each).

Functions here are pure: :func:`split_half_hops` sorts a track's segments
embedded at half the hop into indexed ones and their half-hop rows;
:func:`pack` and :func:`unpack` code the rows.
"""

from __future__ import annotations

import numpy as np

LEVELS = 7
"""A coordinate is coded as an integer ``c`` in [-LEVELS, LEVELS], stored as
``c + LEVELS + 1`` (1-15) in one half of a byte: a row of zero bytes holds no segment."""


def row_bytes(dim: int) -> int:
    """Bytes of one coded row: half a byte per coordinate, rounded up."""
    return (int(dim) + 1) // 2


def pack(vectors: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Code vectors in 4 bits per coordinate.

    Each row is scaled so that its largest coordinate is ``LEVELS``, and
    rounded. Only directions matter (the index compares cosines), so no
    scale is kept: :func:`unpack` returns unit vectors.

    Parameters
    ----------
    vectors : ndarray, shape (n, dim)
    present : ndarray of bool, shape (n,), optional
        Rows that hold a segment; the others are coded as zero bytes
        (default: all rows).

    Returns
    -------
    ndarray of uint8, shape (n, row_bytes(dim))

    Examples
    --------
    >>> v = np.array([[0.0, -1.0, 0.0], [0.6, 0.8, 0.0]], np.float32)
    >>> pack(v).shape
    (2, 2)
    >>> w = unpack(pack(v), 3)
    >>> w[0].tolist(), round(float(w[1] @ v[1]), 4)
    ([0.0, -1.0, 0.0], 0.9997)
    """
    v = np.asarray(vectors, np.float32)
    n, dim = v.shape
    peak = np.abs(v).max(axis=1, keepdims=True) if dim else np.zeros((n, 1), np.float32)
    q = np.clip(np.rint(v / np.where(peak > 0, peak, 1.0) * LEVELS), -LEVELS, LEVELS) + LEVELS + 1
    q = q.astype(np.uint8)
    if dim % 2:  # an odd length: pad with a zero coordinate
        q = np.concatenate([q, np.full((n, 1), LEVELS + 1, np.uint8)], axis=1)
    rows = q[:, 0::2] | (q[:, 1::2] << 4)
    if present is not None:
        rows[~np.asarray(present, bool)] = 0
    return rows


def unpack(rows: np.ndarray, dim: int) -> np.ndarray:
    """Unit-length vectors of coded rows (zeros where a row holds no segment).

    Parameters
    ----------
    rows : ndarray of uint8, shape (n, row_bytes(dim))
        From :func:`pack`.
    dim : int
        Vector length.

    Returns
    -------
    ndarray of float32, shape (n, dim)
    """
    rows = np.asarray(rows, np.uint8)
    q = np.empty((len(rows), 2 * rows.shape[1]), np.float32)
    q[:, 0::2] = rows & 0x0F
    q[:, 1::2] = rows >> 4
    v = np.where(held(rows)[:, None], q[:, :dim] - (LEVELS + 1), 0.0)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def held(rows: np.ndarray) -> np.ndarray:
    """Which coded rows hold a segment."""
    return np.asarray(rows, np.uint8).any(axis=1)


def split_half_hops(
    vectors: np.ndarray, starts: np.ndarray, hop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort a track's segments, embedded every ``hop // 2`` frames, into indexed ones and their half-hop rows.

    Parameters
    ----------
    vectors : ndarray, shape (n, dim)
        Segment embeddings.
    starts : ndarray of int, shape (n,)
        Their start frames, multiples of ``hop // 2`` (silent ones left out).
    hop : int
        The index hop in frames (even).

    Returns
    -------
    (ndarray, ndarray, ndarray)
        The indexed segments (starts a multiple of ``hop``): vectors
        ``(m, dim)`` and starts ``(m,)``; and the coded rows ``(m, row_bytes(dim))``
        (:func:`pack`) of the segment starting ``hop // 2`` frames after each,
        zero where that one is silent or past the track's end.

    Examples
    --------
    >>> v = np.eye(4, dtype=np.float32)
    >>> main, starts, half = split_half_hops(v, np.array([0, 16, 32, 80]), 32)
    >>> starts.tolist(), held(half).tolist()
    ([0, 32], [True, False])
    """
    starts = np.asarray(starts, np.int64)
    vectors = np.asarray(vectors, np.float32)
    on_grid = starts % hop == 0
    main_starts = starts[on_grid]
    pos = {int(s): i for i, s in enumerate(starts)}
    later = np.array([pos.get(int(s) + hop // 2, -1) for s in main_starts], np.int64)
    present = later >= 0
    half = vectors[np.where(present, later, 0)] if len(later) else np.zeros((0, vectors.shape[1]), np.float32)
    return vectors[on_grid], main_starts, pack(half, present)
