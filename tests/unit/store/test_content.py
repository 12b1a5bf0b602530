"""Files keyed by content hash (ContentStore) and the feature store built on it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from audiosim.config import ConfigMismatchError, FeatureConfig
from audiosim.store.content import (
    ContentStore,
    FeatureStore,
    UnreadableEntry,
    check_hash,
)

H = "ab" + "0123456789abcdef" * 3 + "cdef0123456789"  # 64 hex digits
H2 = "cd" + H[2:]


def temp_files(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------
# ContentStore
# --------------------------------------------------------------------------


def test_content_store_layout_is_sharded_by_the_first_two_digits_or_flat(tmp_path):
    assert ContentStore(tmp_path, ".npy").path_for(H) == tmp_path / "ab" / f"{H}.npy"
    assert ContentStore(tmp_path, ".mp3.npy", shard=False).path_for(H) == tmp_path / f"{H}.mp3.npy"


def test_content_store_keys_are_sha256_hex_digests():
    assert check_hash(H) == H
    for bad in ("../../etc/passwd", H[:63], H.upper(), H + "0", "", "g" * 64):
        with pytest.raises(ValueError, match="hex"):
            check_hash(bad)
    with pytest.raises(ValueError, match="hex"):
        ContentStore("x", ".json").path_for("../x")


def test_content_store_suffix_chooses_a_known_format():
    with pytest.raises(ValueError, match="suffix"):
        ContentStore("x", ".pickle")


def test_npy_entries_round_trip_atomically(tmp_path):
    store = ContentStore(tmp_path, ".npy")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert not store.has(H) and H not in store
    assert store.put(H, x) == store.path_for(H)
    assert H in store
    y = store.get(H)
    assert y.dtype == np.float32 and np.array_equal(x, y)
    assert isinstance(store.get(H, mmap=True), np.memmap)
    assert temp_files(tmp_path) == []


def test_npz_and_json_entries_round_trip(tmp_path):
    npz = ContentStore(tmp_path / "e", ".npz", shard=False)
    npz.put(H, {"vectors": np.ones((2, 4), np.float32), "starts": np.array([0, 5], np.int64)})
    got = npz.get(H)
    assert set(got) == {"vectors", "starts"} and got["starts"].tolist() == [0, 5]
    js = ContentStore(tmp_path / "d", ".json")
    js.put(H, {"b": 1, "a": 2.5})
    assert js.get(H) == {"a": 2.5, "b": 1}
    assert js.path_for(H).read_text() == '{\n  "a": 2.5,\n  "b": 1\n}\n'  # indented, keys sorted


def test_missing_entry_is_a_key_error_naming_the_hash(tmp_path):
    store = ContentStore(tmp_path, ".npy")
    with pytest.raises(KeyError, match=H):
        store.get(H)
    assert store.find(H) is None
    assert store.remove(H) is False


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".json"])
def test_truncated_entry_is_reported_not_crashed(tmp_path, suffix):
    store = ContentStore(tmp_path, suffix)
    value = {"a": np.zeros(100)} if suffix == ".npz" else np.zeros(100) if suffix == ".npy" else {"a": list(range(50))}
    path = store.put(H, value)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UnreadableEntry, match=str(path)):
        store.get(H)
    assert store.find(H) is None  # a cache reads it as absent and rebuilds it
    assert issubclass(UnreadableEntry, ValueError)


def test_hashes_list_entries_only(tmp_path):
    store = ContentStore(tmp_path, ".npy")
    store.put(H2, np.zeros(1))
    store.put(H, np.zeros(1))
    (tmp_path / "ab" / f".{H}.npy.host-1.x.tmp").write_bytes(b"")  # a writer's temp file
    (tmp_path / "ab" / "notes.npy").write_bytes(b"")
    ContentStore(tmp_path, ".json").put(H, {})  # another format in the same folder
    assert list(store.hashes()) == [H, H2]
    assert list(ContentStore(tmp_path / "none", ".npy").hashes()) == []
    flat = ContentStore(tmp_path / "flat", ".npy", shard=False)
    flat.put(H, np.zeros(1))
    ContentStore(tmp_path / "flat", ".mp3.npy", shard=False).put(H, np.zeros(1))
    assert list(flat.hashes()) == [H]
    assert store.remove(H) and list(store.hashes()) == [H2]


def test_clean_temp_removes_stale_temp_files(tmp_path):
    store = ContentStore(tmp_path, ".npy")
    store.put(H, np.zeros(1))
    stale = tmp_path / "ab" / f".{H}.npy.elsewhere-1.x.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))  # older than a day: removed whoever wrote it
    assert store.clean_temp() == 1 and not stale.exists() and store.has(H)
    assert ContentStore(tmp_path / "none", ".npy").clean_temp() == 0


# --------------------------------------------------------------------------
# FeatureStore
# --------------------------------------------------------------------------


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


def test_truncated_features_are_a_value_error_naming_the_file(tmp_path):
    store = FeatureStore(tmp_path, FeatureConfig())
    path = store.put(H, np.zeros((64, 50)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=str(path)):
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


def test_feature_store_opens_with_the_recorded_config(tmp_path):
    from audiosim.store.home import DataHome

    home = DataHome(tmp_path / "h")
    with pytest.raises(FileNotFoundError, match="audiosim ingest"):
        FeatureStore.recorded(home)
    FeatureStore(home.features_dir, FeatureConfig(n_mels=32))
    assert FeatureStore.recorded(home).config == FeatureConfig(n_mels=32)


def test_feature_store_prune(tmp_path):
    store = FeatureStore(tmp_path, FeatureConfig())
    store.put(H, np.zeros((64, 3)))
    store.put(H2, np.zeros((64, 3)))
    assert store.prune(keep={H}) == 1
    assert store.has(H) and not store.has(H2)
    assert not os.path.exists(store.path_for(H2))
