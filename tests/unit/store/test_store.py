"""Data home layout, atomic writes and the feature store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from audiosim.config import ConfigMismatchError, FeatureConfig
from audiosim.store.atomic import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    clean_temp_files,
)
from audiosim.store.content import FeatureStore
from audiosim.store.home import DataHome

H = "ab" + "0123456789abcdef" * 3 + "cdef0123456789"  # 64 hex digits


def temp_files(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_data_home_layout(tmp_path, monkeypatch):
    home = DataHome(tmp_path / "h")
    assert home.catalog_path == tmp_path / "h" / "catalog.sqlite"
    assert not home.root.exists()
    home.create()
    for d in ("features", "index", "reports", "cache"):
        assert (tmp_path / "h" / d).is_dir()
    monkeypatch.setenv("AUDIOSIM_HOME", str(tmp_path / "env"))
    assert DataHome.resolve().root == tmp_path / "env"
    assert DataHome.resolve(str(tmp_path / "x")).root == tmp_path / "x"
    assert DataHome.resolve(home) is home


def test_data_home_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="f"):
        DataHome(tmp_path / "f").create()


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    umask = os.umask(0o022)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": [1, 2], "b": 1}
    assert temp_files(tmp_path) == []


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write(b"half")
            raise RuntimeError("crash")
    assert p.read_bytes() == b"old"
    assert temp_files(tmp_path) == []


def test_clean_temp_removes_dead_writers_only(tmp_path):
    # A writer killed mid-write leaves its temp file; ours (alive) is kept.
    code = (
        "import os, sys; from audiosim.store.home import atomic_open\n"
        "cm = atomic_open(sys.argv[1]); f = cm.__enter__(); f.write(b'x'); f.flush(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "dead.npy")], check=True)
    live = atomic_open(tmp_path / "live.npy")
    live.__enter__()
    assert len(temp_files(tmp_path)) == 2
    assert clean_temp_files(tmp_path) == 1
    [left] = temp_files(tmp_path)
    assert left.name.startswith(".live.npy.")
    live.__exit__(None, None, None)
    assert temp_files(tmp_path) == [] and (tmp_path / "live.npy").exists()


def test_feature_store_round_trip(tmp_path):
    store = FeatureStore(tmp_path / "features", FeatureConfig())
    x = np.random.default_rng(0).normal(size=(64, 100)).astype(np.float32)
    assert not store.has(H) and H not in store
    path = store.put(H, x)
    assert path == tmp_path / "features" / H[:2] / f"{H}.npy"
    y = store.get(H)
    assert y.dtype == np.float16 and y.shape == (64, 100)
    np.testing.assert_allclose(y, x, atol=1e-2)
    assert store.get(H, mmap=True).shape == (64, 100)
    assert list(store.hashes()) == [H]
    assert temp_files(tmp_path) == []


def test_feature_store_rejects_bad_input(tmp_path):
    store = FeatureStore(tmp_path, FeatureConfig())
    with pytest.raises(ValueError, match="shape"):
        store.put(H, np.zeros((32, 10)))
    with pytest.raises(ValueError, match="NaN"):
        store.put(H, np.full((64, 10), np.nan))
    with pytest.raises(ValueError, match="hex"):
        store.path_for("../../etc/passwd")
    with pytest.raises(KeyError, match=H):
        store.get(H)


def test_feature_store_config_recorded_and_checked(tmp_path):
    FeatureStore(tmp_path, FeatureConfig())
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert recorded["digest"] == FeatureConfig().digest()
    FeatureStore(tmp_path, FeatureConfig())  # same config: fine
    other = FeatureConfig(n_mels=32)
    with pytest.raises(ConfigMismatchError) as e:
        FeatureStore(tmp_path, other)
    msg = str(e.value)
    assert FeatureConfig().digest() in msg and other.digest() in msg and str(tmp_path) in msg


def test_feature_store_prune(tmp_path):
    store = FeatureStore(tmp_path, FeatureConfig())
    h2 = "cd" + H[2:]
    store.put(H, np.zeros((64, 3)))
    store.put(h2, np.zeros((64, 3)))
    assert store.prune(keep={H}) == 1
    assert store.has(H) and not store.has(h2)
    assert not os.path.exists(store.path_for(h2))
