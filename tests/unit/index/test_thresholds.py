"""Tests of audiosim.index.thresholds: the calibration record and its thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiosim.config import IndexConfig
from audiosim.index.thresholds import STATISTIC, Calibration, CalibrationBin


def _cal() -> Calibration:
    bins = [
        CalibrationBin(1.0, 1, np.sort(np.linspace(0.0, 0.2, 101))[::-1]),
        CalibrationBin(2.0, 11, np.sort(np.linspace(0.0, 2.0, 101))[::-1]),
        CalibrationBin(5.0, 43, np.sort(np.linspace(0.0, 4.0, 101))[::-1]),
    ]
    return Calibration("leave-one-track-out", 0.01, bins)


def test_calibration_threshold_per_length() -> None:
    cal = _cal()
    # 101 scores evenly spread: at 1 %, one score (the top) may exceed the threshold.
    assert cal.threshold(1) == pytest.approx(0.198)
    assert cal.threshold(11) == pytest.approx(1.98)
    assert cal.threshold(27) == pytest.approx((1.98 + 3.96) / 2)  # interpolated on segments
    assert cal.threshold(75) > cal.threshold(43)  # extrapolated, never decreasing
    assert cal.threshold(11, max_false_match=0.1) == pytest.approx(1.8)  # another target, same scores
    assert cal.threshold(11, max_false_match=0.0) == pytest.approx(2.0)
    for b in cal.bins:  # the promise: at most the target share of absent scores exceed it
        assert np.mean(b.scores > cal.threshold(b.segments)) <= 0.01


def test_calibration_round_trips_through_json() -> None:
    cal = _cal()
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    for n in (1, 5, 11, 30, 43, 90):
        assert again.threshold(n) == pytest.approx(cal.threshold(n), abs=1e-4)
    assert [r["threshold"] for r in again.table()] == pytest.approx([0.198, 1.98, 3.96], abs=1e-4)


def test_calibration_must_be_for_the_speeds_tried() -> None:
    from audiosim.index.writer import needs_calibration

    cal = Calibration("leave-one-track-out", 0.01, [], STATISTIC, index_tracks=10, query_speeds=(1.0,))
    assert cal.is_current() and cal.is_current(IndexConfig())
    wider = IndexConfig(query_speeds=(0.95, 1.0, 1.05))
    assert not cal.is_current(wider) and needs_calibration(cal, 0, wider)
    again = Calibration.from_dict(dict(cal.to_dict(), query_speeds=[1.05, 0.95, 1.0]))
    assert again.is_current(wider)


def test_calibration_must_be_for_the_scoring_settings_of_the_index() -> None:
    from audiosim.index.writer import needs_calibration

    cal = Calibration("background", 0.01, [], STATISTIC, scoring=IndexConfig().scoring())
    assert cal.is_current(IndexConfig())
    for changed in (IndexConfig(query_hop_seconds=0.3), IndexConfig(search_k=500)):  # other scores
        assert not cal.is_current(changed) and needs_calibration(cal, 0, changed)
    assert cal.is_current(IndexConfig(max_false_match=0.05, recalibrate_share=0.5))  # decisions only
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again.scoring == IndexConfig().scoring() and not again.is_current(IndexConfig(search_k=500))
    older = Calibration.from_dict({k: v for k, v in cal.to_dict().items() if k != "scoring"})
    assert older.scoring is None and older.is_current(IndexConfig(search_k=500))  # stored before: kept


def test_a_stale_calibration_names_the_settings_that_changed() -> None:
    cal = Calibration("background", 0.01, [], STATISTIC, scoring=IndexConfig().scoring())
    assert cal.changed_settings(IndexConfig(max_false_match=0.05)) == []
    assert cal.changed_settings(IndexConfig(search_k=500, query_speeds=(1.0, 1.05))) == [
        "query_speeds: [1.0] -> [1.0, 1.05]", "search_k: 2000 -> 500"]
    before = Calibration("background", 0.01, [], STATISTIC,  # recorded before search_k_shared existed
                         scoring={k: v for k, v in IndexConfig().scoring().items() if k != "search_k_shared"})
    assert before.changed_settings(IndexConfig()) == ["search_k_shared: not recorded -> True"]


def test_the_writers_bookkeeping_is_written_last_and_read_back() -> None:
    cal = _cal()
    assert not {"generation", "index_tracks", "added_since"} & set(cal.to_dict())  # unset: not written
    kept = Calibration.from_dict(dict(cal.to_dict(), generation=3, index_tracks=40, added_since=2))
    assert (kept.generation, kept.index_tracks, kept.added_since) == (3, 40, 2)
    assert list(kept.to_dict())[-3:] == ["generation", "index_tracks", "added_since"]
    assert json.dumps(Calibration.from_dict(json.loads(json.dumps(kept.to_dict()))).to_dict()) == json.dumps(kept.to_dict())


def test_a_calibration_for_another_score_loads_as_not_current_and_is_kept_as_found() -> None:
    stored = {"method": "leave-one-track-out", "statistic": "vote-score", "max_false_match": 0.01,
              "bins": [{"seconds": 1.0, "votes": [3, 2]}], "index_tracks": 10}
    cal = Calibration.from_dict(stored)
    assert cal.statistic == "vote-score" and not cal.is_current() and not cal.is_current(IndexConfig())
    assert cal.index_tracks == 10 and cal.bins == []
    assert cal.to_dict() == stored and list(cal.to_dict()) == list(stored)
    cal.added_since = 4
    assert cal.to_dict() == dict(stored, added_since=4)
