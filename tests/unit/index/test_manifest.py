"""Tests of audiosim.index.manifest: what manifest.json holds, and that it round-trips byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audiosim.config import FeatureConfig, IndexConfig
from audiosim.index import manifest as M
from audiosim.index.thresholds import Calibration, CalibrationBin


def _manifest(calibration: Calibration | None) -> M.Manifest:
    man = M.Manifest("abc", "/models/m.pt", 7, FeatureConfig(), IndexConfig(), 96, calibration=calibration,
                     generation=4, next_shard=3, created="2024-01-01T00:00:00+00:00", updated="2024-01-02T00:00:00+00:00")
    man.shards.append(M.ShardInfo("shard-0001", 10, ((1, "a"), (2, "b")), (20.0, 21.5), 10, "2024-01-01T00:00:00+00:00"))
    man.tombstones.append(M.Tombstone(2, "b", "removed", "2024-01-02T00:00:00+00:00"))
    return man


def _calibration() -> Calibration:
    bins = [CalibrationBin(1.0, 1, np.array([0.5, 0.25, 0.125])), CalibrationBin(3.0, 5, np.array([0.9, 0.8]))]
    return Calibration("leave-one-track-out", 0.01, bins, tracks=2, model_digest="abc", created="2024-01-01",
                       generation=4, index_tracks=2)


@pytest.mark.parametrize("kind", ["current", "another score", "none"])
def test_a_manifest_saved_again_is_the_same_bytes(tmp_path: Path, kind: str) -> None:
    if kind == "current":
        cal: Calibration | None = _calibration()
    elif kind == "another score":
        cal = Calibration.from_dict({"method": "leave-one-track-out", "statistic": "vote-score", "max_false_match": 0.01,
                                     "bins": [{"seconds": 1.0, "votes": [3]}], "generation": 2})
    else:
        cal = None
    _manifest(cal).save(tmp_path / "a")
    first = (tmp_path / "a" / M.MANIFEST_NAME).read_bytes()
    M.Manifest.load(tmp_path / "a").save(tmp_path / "b")
    assert (tmp_path / "b" / M.MANIFEST_NAME).read_bytes() == first
    stored = json.loads(first)["calibration"]
    if kind == "another score":
        assert stored["statistic"] == "vote-score" and stored["bins"] == [{"seconds": 1.0, "votes": [3]}]
        assert not M.Manifest.load(tmp_path / "a").calibration.is_current()
    elif kind == "current":
        assert stored["generation"] == 4 and stored["index_tracks"] == 2 and "added_since" not in stored
        assert M.Manifest.load(tmp_path / "a").calibration.is_current()
    else:
        assert stored is None


def test_the_calibration_is_a_typed_record_once_loaded(tmp_path: Path) -> None:
    _manifest(_calibration()).save(tmp_path)
    cal = M.Manifest.load(tmp_path).calibration
    assert isinstance(cal, Calibration) and [b.seconds for b in cal.bins] == [1.0, 3.0]
    assert cal.threshold(1) == pytest.approx(_calibration().threshold(1))


def test_live_tracks_leave_out_tombstoned_pairs() -> None:
    man = _manifest(None)
    assert man.indexed_pairs() == {(1, "a"), (2, "b")} and man.dead_pairs() == {(2, "b")}
    assert man.live_tracks() == {1: "a"}


def test_a_missing_or_unreadable_manifest_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="audiosim index"):
        M.Manifest.load(tmp_path)
    (tmp_path / M.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable index manifest"):
        M.Manifest.load(tmp_path)
    (tmp_path / M.MANIFEST_NAME).write_text(json.dumps(dict(_manifest(None).to_dict(), format=M.FORMAT_VERSION + 1)))
    with pytest.raises(ValueError, match="newer"):
        M.Manifest.load(tmp_path)


def test_an_index_from_before_half_hop_vectors_is_read_as_having_none(tmp_path: Path) -> None:
    d = _manifest(None).to_dict()
    del d["index_config"]["half_hop_vectors"]
    assert M.Manifest.from_dict(d).config.half_hop_vectors is False
    assert M.Manifest.from_dict(_manifest(None).to_dict()).config.half_hop_vectors is True
