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
