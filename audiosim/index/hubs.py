"""Hub scores: the indexed items that sit close to a great deal of unrelated music.

Some embeddings land near the centre of the space and come back as a
neighbour of almost any query; they carry votes for their track whatever
is played. Each shard stores, per item, its k-occurrence over sampled
queries from other tracks divided by its expected value
(``<shard>.hub.npy``); readers skip items above ``IndexConfig.hub_ratio``
(:meth:`audiosim.index.reader.Shard.mask`). Queries are drawn from the new
shard and from the shards already published (:func:`index_pools`), with a
seed taken from the shard's name, so a build is repeatable.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import numpy as np
from annoy import AnnoyIndex

from audiosim.config import IndexConfig
from audiosim.index.reader import Index

Pool = tuple[Callable[[int], np.ndarray], np.ndarray, np.ndarray]
"""(vector of item, item ids, their track ids): where hub queries are drawn from."""


def hub_scores(
    ann: AnnoyIndex,
    item_tracks: np.ndarray,
    query_vectors: np.ndarray,
    query_tracks: np.ndarray,
    k: int,
    search_k: int = -1,
) -> np.ndarray:
    """k-occurrence of each item of ``ann`` over queries from other tracks,
    divided by its expected value (``Q * k / items``).

    A score near 1 is an ordinary item; hubs, which sit close to a great
    deal of unrelated music, score far above (see ``IndexConfig.hub_ratio``).
    A query never counts items of its own track, so it behaves like music
    that is not in the index.

    Parameters
    ----------
    ann : AnnoyIndex
        A built forest.
    item_tracks : ndarray, shape (items,)
        Track id of each item.
    query_vectors : ndarray, shape (Q, dim)
    query_tracks : ndarray, shape (Q,)
    k : int
        Neighbours counted per query.
    search_k : int

    Returns
    -------
    ndarray, shape (items,), float32
    """
    n = len(item_tracks)
    counts = np.zeros(n, np.float64)
    if n == 0 or len(query_vectors) == 0:
        return np.zeros(n, np.float32)
    ask = min(n, 4 * k)
    used = 0
    for v, t in zip(query_vectors, query_tracks):
        ids = np.asarray(ann.get_nns_by_vector(v, ask, search_k), np.int64)
        ids = ids[item_tracks[ids] != t][:k]
        if len(ids):
            counts[ids] += 1
            used += 1
    expected = max(used * k / n, 1e-9)
    return (counts / expected).astype(np.float32)


def sample_queries(pools: Sequence[Pool], n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of item vectors (and their tracks) across ``pools``."""
    sizes = np.array([len(ids) for _, ids, _ in pools], np.int64)
    total = int(sizes.sum())
    if total == 0:
        return np.zeros((0, 1), np.float32), np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(n_queries, total), replace=False))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    vecs, tracks = [], []
    for (vector, ids, trk), lo, hi in zip(pools, bounds[:-1], bounds[1:]):
        sel = pick[(pick >= lo) & (pick < hi)] - lo
        if len(sel):
            vecs.append(np.stack([vector(int(i)) for i in ids[sel]]))
            tracks.append(trk[sel])
    return np.concatenate(vecs).astype(np.float32), np.concatenate(tracks).astype(np.int64)


def index_pools(index: Index | None) -> list[Pool]:
    """The usable items of every shard of a published index, as query pools."""
    if index is None:
        return []
    return [(index.shards[si].vector, ids, tracks) for si, ids, tracks, _ in index.iter_usable()]


def new_shard_hub_scores(
    name: str,
    ann: AnnoyIndex,
    vector: Callable[[int], np.ndarray],
    item_tracks: np.ndarray,
    others: Sequence[Pool],
    config: IndexConfig,
) -> np.ndarray:
    """Hub scores of the items of a freshly built shard.

    Queries are sampled from the shard itself and from ``others``
    (the published shards it joins), seeded by the shard's ``name``:
    ``config.hub_queries`` of them, but at least 2,000 or four per item.
    """
    pools = [(vector, np.arange(len(item_tracks)), item_tracks), *others]
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    n_queries = int(min(config.hub_queries, max(2000, 4 * len(item_tracks))))
    qv, qt = sample_queries(pools, n_queries, seed)
    return hub_scores(ann, item_tracks, qv, qt, config.neighbours, config.search_k)
