"""Tests of audiosim.index.hubs: items near everything are found."""

from __future__ import annotations

import numpy as np
from annoy import AnnoyIndex

from audiosim.config import IndexConfig
from audiosim.index import hubs as H


def _cone_forest(rng: np.random.Generator, dim: int = 16, n: int = 400) -> tuple[AnnoyIndex, np.ndarray, np.ndarray, np.ndarray]:
    mu = np.zeros(dim, np.float32)
    mu[0] = 1.0

    def cone(m: int) -> np.ndarray:  # embeddings fill a cone around mu, as real ones do
        v = mu + 0.35 * rng.standard_normal((m, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    x = cone(n)
    x[0] = mu  # the centre of the cone: close to everything
    tracks = np.arange(n) // 10
    ann = AnnoyIndex(dim, "angular")
    for i, v in enumerate(x):
        ann.add_item(i, v)
    ann.build(10)
    return ann, x, tracks, cone(2000)


def test_hub_scores_flag_the_item_near_everything() -> None:
    ann, x, tracks, q = _cone_forest(np.random.default_rng(0))
    hub = H.hub_scores(ann, tracks, q, np.full(2000, -1), k=5, search_k=10_000)
    assert hub.argmax() == 0 and hub[0] > 5 and np.median(hub) < 1.5
    # A query never counts its own track's items.
    own = H.hub_scores(ann, tracks, x[:10], tracks[:10], k=5, search_k=10_000)
    assert own[:10].sum() == 0


def test_query_samples_are_seeded_and_span_every_pool() -> None:
    a = (lambda i: np.full(4, i, np.float32), np.arange(10), np.zeros(10, np.int64))
    b = (lambda i: np.full(4, 100 + i, np.float32), np.arange(5), np.ones(5, np.int64))
    v1, t1 = H.sample_queries([a, b], 15, seed=7)
    v2, t2 = H.sample_queries([a, b], 15, seed=7)
    assert np.array_equal(v1, v2) and np.array_equal(t1, t2)
    assert sorted(t1.tolist()) == [0] * 10 + [1] * 5  # all of both pools when asked for as many
    empty_v, empty_t = H.sample_queries([], 10, seed=0)
    assert len(empty_v) == 0 and len(empty_t) == 0


def test_a_new_shards_hub_scores_depend_only_on_its_name_and_items() -> None:
    ann, x, tracks, _ = _cone_forest(np.random.default_rng(1))
    vector = lambda i: x[i]  # noqa: E731
    cfg = IndexConfig(search_k=10_000)
    one = H.new_shard_hub_scores("shard-0001", ann, vector, tracks, [], cfg)
    assert np.array_equal(one, H.new_shard_hub_scores("shard-0001", ann, vector, tracks, [], cfg))
    assert one.argmax() == 0
