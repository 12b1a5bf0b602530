"""Tests of audiosim.index.thresholds: the calibration record and its thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiosim.config import IndexConfig
from audiosim.index.thresholds import (
    STATISTIC,
    Calibration,
    CalibrationBin,
    Rule,
    sorted_bin,
)


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


# --------------------------------------------------------------------------
# The spectral check's share of the false-match rate
# --------------------------------------------------------------------------


def _peaked(seed: int = 0, n: int = 1000) -> Calibration:
    """Absent clips whose peak agreement is unrelated to their score, at two lengths."""
    rng = np.random.default_rng(seed)
    bins = [sorted_bin(s, seg, rng.normal(mu, 1.0, n), rng.uniform(0.0, 0.4, n))
            for s, seg, mu in ((1.0, 1, 1.0), (5.0, 15, 5.0))]
    return Calibration("background", 0.01, bins)


@pytest.mark.parametrize("rate,share,gate", [(0.01, 0.5, 0.7), (0.01, 0.3, 0.9), (0.05, 0.5, 0.5), (0.002, 0.5, 0.7)])
def test_score_and_peaks_together_let_no_more_absent_clips_match_than_the_rate(rate, share, gate) -> None:
    cal = _peaked()
    for b in cal.bins:
        rule = cal.rule(b.segments, rate, share, gate)
        assert rule.threshold == pytest.approx(cal.threshold(b.segments, rate * (1 - share)))
        assert rule.gate == pytest.approx(gate * rule.threshold)
        passed = [rule.matches(s, p) for s, p in zip(b.scores, b.peaks)]
        assert sum(passed) <= int(rate * len(b.scores))
        assert sum(passed) > sum(b.scores > rule.threshold), "the peaks are given a share to spend"


def test_without_peaks_or_a_share_the_score_alone_decides() -> None:
    peaked, plain = _peaked(), _cal()
    assert plain.rule(11, 0.01, 0.5, 0.7) == Rule(plain.threshold(11, 0.01))
    assert peaked.rule(15, 0.01, 0.0, 0.7) == Rule(peaked.threshold(15, 0.01))
    rule = Rule(2.0)
    assert not rule.checks_peaks and not rule.needs_peaks(1.9) and not rule.matches(1.9, 1.0) and rule.matches(2.1)


def test_a_rule_matches_on_peaks_only_between_its_gate_and_threshold() -> None:
    rule = Rule(10.0, 7.0, 0.3)
    assert rule.matches(10.5) and rule.matches(10.5, 0.0), "over the threshold the peaks are not asked"
    assert rule.needs_peaks(8.0) and rule.matches(8.0, 0.31) and not rule.matches(8.0, 0.3)
    assert not rule.matches(8.0), "unchecked peaks do not match"
    assert not rule.needs_peaks(6.9) and not rule.matches(6.9, 1.0), "under the gate the peaks are not asked"


def test_between_lengths_the_stricter_peak_threshold_holds() -> None:
    cal = _peaked()
    a, b = (cal.rule(x.segments, 0.01, 0.5, 0.7).peak_threshold for x in cal.bins)
    assert cal.rule(8, 0.01, 0.5, 0.7).peak_threshold == max(a, b)
    assert cal.rule(40, 0.01, 0.5, 0.7).peak_threshold == b, "beyond the longest length, the longest's"


def test_peaks_round_trip_through_json_in_the_order_of_their_scores() -> None:
    cal = _peaked()
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again.has_peaks and not _cal().has_peaks
    for x, y in zip(cal.bins, again.bins):
        assert np.allclose(x.scores, y.scores, atol=1e-5) and np.allclose(x.peaks, y.peaks, atol=1e-4)
    for n in (1, 8, 15):
        r, s = cal.rule(n, 0.01, 0.5, 0.7), again.rule(n, 0.01, 0.5, 0.7)
        assert r.threshold == pytest.approx(s.threshold, abs=1e-4)
        assert r.peak_threshold == pytest.approx(s.peak_threshold, abs=1e-4)
    unsorted = sorted_bin(1.0, 1, [0.1, 0.9, 0.5], [0.3, 0.1, 0.2])
    assert list(unsorted.scores) == [0.9, 0.5, 0.1] and list(unsorted.peaks) == [0.1, 0.2, 0.3]


def test_the_table_gives_the_rules_thresholds_for_the_indexs_settings() -> None:
    cal, cfg = _peaked(), IndexConfig(peak_share=0.5, peak_gate=0.7)
    rows = cal.table(config=cfg)
    for row, b in zip(rows, cal.bins):
        rule = cal.rule(b.segments, 0.01, 0.5, 0.7)
        assert row["threshold"] == pytest.approx(rule.threshold, abs=1e-4)
        assert row["peak_gate"] == pytest.approx(rule.gate, abs=1e-4)
        assert row["peak_threshold"] == pytest.approx(rule.peak_threshold, abs=1e-4)
    assert "peak_threshold" not in cal.table(config=IndexConfig(peak_share=0.0))[0]
    assert "peak_threshold" not in _cal().table(config=cfg)[0], "no peaks recorded"
