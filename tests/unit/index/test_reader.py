"""Tests of audiosim.index.reader: opening an index, the checks it makes, and search."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from index_support import CFG, make_home, models, songs  # noqa: E402,F401 (fixtures)

from audiosim.config import ConfigMismatchError, FeatureConfig, IndexConfig
from audiosim.fingerprint.model import model_digest
from audiosim.index import manifest as M
from audiosim.index import reader as I
from audiosim.index import writer as IB
from audiosim.ingest.ingest import ingest_many
from audiosim.match.matcher import Matcher
from audiosim.store.home import DataHome

# Every test here builds an index or runs a model over songs: seconds each.
pytestmark = pytest.mark.slow


def test_other_model_or_features_are_refused(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG)
    built = M.Manifest.load(DataHome(home).index_dir).model_digest
    other = model_digest(I.resolve_model(models[1]))
    with pytest.raises(ConfigMismatchError) as e:
        I.Index.open(home, model=I.resolve_model(models[1]))
    assert built in str(e.value) and other in str(e.value)
    with pytest.raises(ConfigMismatchError):
        Matcher(home, models[1])
    with pytest.raises(ConfigMismatchError) as e:
        I.Index.open(home, features=FeatureConfig(n_mels=32))
    assert FeatureConfig(n_mels=32).digest() in str(e.value) and FeatureConfig().digest() in str(e.value)
    with pytest.raises(ConfigMismatchError):
        IB.update(home, models[1], CFG)
    with pytest.raises(ConfigMismatchError, match="index_hop_seconds"):
        IB.update(home, models[0], IndexConfig(index_hop_seconds=0.25))
    with pytest.raises(ConfigMismatchError, match="half_hop_vectors"):
        IB.update(home, models[0], IndexConfig(half_hop_vectors=False))
    res = IB.update(home, models[1], CFG, rebuild=True)
    assert res.action == "rebuild" and res.shards == 1 and res.shard == "shard-0002"
    assert M.Manifest.load(DataHome(home).index_dir).model_digest == other
    I.Index.open(home, model=I.resolve_model(models[1])).close()



def test_an_index_opens_from_its_data_home_and_reopens_as_published(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 2)
    IB.update(home, models[0], CFG)
    with I.Index.open(DataHome(home)) as idx:
        assert idx.directory == DataHome(home).index_dir and idx.is_current()
        again = idx.reopen()
        assert again.manifest.generation == idx.manifest.generation and again.config == idx.config
        again.close()
    with pytest.raises(FileNotFoundError, match="audiosim index"):
        I.Index.open(tmp_path / "elsewhere")


def test_a_query_config_with_another_hub_ratio_changes_the_usable_items(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG)
    with I.Index.open(home) as idx:
        hub = np.concatenate([s.hub.astype(np.float32) for s in idx.shards])
        ratio = float(np.quantile(hub, 0.9))
        idx.set_query_config(dataclasses.replace(idx.config, hub_ratio=ratio))
        usable = np.concatenate([s.usable for s in idx.shards])
        assert idx.config.hub_ratio == ratio and np.array_equal(usable, ~(hub > ratio))
        idx.set_query_config(dataclasses.replace(idx.config, hub_ratio=0.0))
        assert all(s.usable.all() for s in idx.shards)


def test_a_loaded_model_keeps_its_identity_through_resolution(models) -> None:
    enc = I.resolve_model(models[0])
    assert enc.identity is not None and enc.identity.path == str(models[0].resolve())
    assert model_digest(enc) == enc.identity.digest and enc.identity.card["step"] == 0
    assert I.resolve_model(enc) is enc


class _CountingAnn:
    """An Annoy index that records the ``search_k`` of every search it answers."""

    def __init__(self, ann) -> None:
        self.ann, self.asked = ann, []

    def get_nns_by_vector(self, v, n, search_k, include_distances):
        self.asked.append(search_k)
        return self.ann.get_nns_by_vector(v, n, search_k, include_distances)

    def __getattr__(self, name):
        return getattr(self.ann, name)


@pytest.mark.parametrize("shared", [True, False])
def test_search_k_is_shared_out_among_shards_by_their_size_or_given_to_each(tmp_path: Path, songs, models,
                                                                            shared: bool) -> None:
    home = make_home(tmp_path, songs, 4)
    IB.update(home, models[0], CFG)
    ingest_many(songs[4:5], home)
    assert IB.update(home, models[0], CFG).shards == 2
    cfg = dataclasses.replace(CFG, search_k=3000, search_k_shared=shared)
    with I.Index.open(home) as idx:
        idx.set_query_config(cfg)
        for s in idx.shards:
            s.ann = _CountingAnn(s.ann)
        v = np.stack([s.ann.ann.get_item_vector(0) for s in idx.shards])
        nn = idx.search(v, k=cfg.neighbours)
        assert nn.sim[:, 0] == pytest.approx(1.0, abs=1e-5)  # each shard's first item is found
        asked = [set(s.ann.asked) for s in idx.shards]
        sizes = [s.info.items for s in idx.shards]
        total = sum(sizes)
    assert all(len(a) == 1 for a in asked)  # one search per query and shard, at one depth
    got = [a.pop() for a in asked]
    if shared:
        assert got == [max(round(3000 * n / total), cfg.n_trees * cfg.neighbours) for n in sizes]
        assert got[0] > got[1] and abs(sum(got) - 3000) <= len(got)  # the larger shard searches deeper
    else:
        assert got == [3000, 3000]


def test_a_shards_share_of_search_k_follows_its_items_and_keeps_annoys_default() -> None:
    assert I._shard_search_k(2000, 250, 1000, shared=True) == 500
    assert I._shard_search_k(2000, 1, 10**6, shared=True) == 1  # at least one; Annoy's n_trees * k floor applies after
    assert I._shard_search_k(2000, 250, 1000, shared=False) == 2000
    assert I._shard_search_k(-1, 250, 1000, shared=True) == -1  # Annoy's own default, per shard
