"""Tests of audiosim.match.matcher: deciding whether a clip matches, and naming the track.

The end-to-end tests (a degraded copy is found at the right offset, an
absent song is not) need the trained model ``models/fingerprint.pt`` (or
``$AUDIOSIM_TEST_MODEL``) and the synthetic songbook; nothing here needs
the dev corpus.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from match_support import SR, noisy

import audiosim
from audiosim.index.thresholds import Calibration, CalibrationBin
from audiosim.match import matcher as match
from audiosim.match import monitor
from audiosim.match.matcher import CatalogueView, Matcher, ThresholdPolicy, TrackInfo
from audiosim.match.scoring import ClipScore
from audiosim.match.voting import Candidate
from audiosim.store.home import DataHome


def test_identify_and_monitor_are_exposed_lazily() -> None:
    assert audiosim.identify is match.identify
    assert audiosim.monitor is monitor.monitor
    with pytest.raises(AttributeError):
        audiosim.no_such_thing  # noqa: B018


# --------------------------------------------------------------------------
# Thresholds and the catalogue, without an index
# --------------------------------------------------------------------------


def _cal() -> Calibration:
    bins = [
        CalibrationBin(1.0, 1, np.sort(np.linspace(0.0, 0.2, 101))[::-1]),
        CalibrationBin(2.0, 11, np.sort(np.linspace(0.0, 2.0, 101))[::-1]),
    ]
    return Calibration("leave-one-track-out", 0.01, bins)


def test_the_policy_applies_the_calibrated_threshold_for_the_clip_length() -> None:
    policy = ThresholdPolicy(_cal(), 0.01)
    assert policy.threshold(1) == pytest.approx(0.198) and policy.threshold(11) == pytest.approx(1.98)
    assert policy.matches(ClipScore([Candidate(1, 0.0, 2.0, 3)], 11, 2.0))
    assert not policy.matches(ClipScore([Candidate(1, 0.0, 1.9, 3)], 11, 1.9))


def test_the_policy_overrides_only_what_is_given() -> None:
    policy = ThresholdPolicy(_cal(), 0.01)
    assert policy.overridden() is policy
    assert policy.overridden(max_false_match=0.1).threshold(11) == pytest.approx(1.8)
    fixed = policy.overridden(threshold=5.0)
    assert fixed.threshold(1) == fixed.threshold(11) == 5.0
    assert fixed.overridden(max_false_match=0.1).threshold(11) == 5.0, "a fixed threshold wins over a rate"
    assert fixed.max_false_match == 0.01 and policy.fixed is None, "policies are values: the original is unchanged"


def test_without_thresholds_nothing_matches_unless_one_is_given() -> None:
    policy = ThresholdPolicy(None, 0.01)
    assert policy.threshold(11) == math.inf
    assert not policy.matches(ClipScore([Candidate(1, 0.0, 1e9, 3)], 11, 1e9))
    assert policy.overridden(threshold=0.5).threshold(11) == 0.5


def test_without_a_catalogue_tracks_are_unknown_but_current(tmp_path: Path) -> None:
    view = CatalogueView(DataHome(tmp_path / "home"), {3: "abc"})
    assert view.info(3) == TrackInfo(3)
    assert view.is_current(3) and view.is_current(4)
    view.close()


# --------------------------------------------------------------------------
# End to end with the trained model and the songbook
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_shifted_noisy_copy_matches_at_the_right_offset(songbook_index) -> None:
    home, paths, model = songbook_index
    with Matcher(home, model) as m:
        for i, start in ((1, 7.3), (4, 12.05), (6, 21.7)):
            x, sr = sf.read(paths[i], dtype="float32")
            clip = noisy(x[int(start * sr) : int((start + 5) * sr)], snr_db=10, seed=i)
            got = m.match(clip, sr)
            assert got.matched, got
            assert got.path == str(paths[i].resolve())
            assert got.track_id is not None and abs(got.offset - start) <= 0.25, got
            assert got.title and got.n_segments > 30 and got.votes > 5
            assert m.tracks.info(got.track_id).path == got.path and m.tracks.is_current(got.track_id)


@pytest.mark.slow
def test_song_not_in_catalogue_returns_none(songbook_index) -> None:
    home, paths, model = songbook_index
    for i in (8, 9):
        x, sr = sf.read(paths[i], dtype="float32")
        for start in (2.0, 14.0):
            clip = x[int(start * sr) : int((start + 5) * sr)]
            assert audiosim.identify(clip, sr, index=home, model=model) is None


@pytest.mark.slow
def test_identify_path_and_threshold_override(songbook_index, tmp_path: Path) -> None:
    home, paths, model = songbook_index
    x, sr = sf.read(paths[2], dtype="float32")
    clip_path = tmp_path / "clip.wav"
    sf.write(clip_path, x[3 * sr : 6 * sr], sr)
    m = audiosim.identify(clip_path, index=home, model=model)
    assert m is not None and m.clip == str(clip_path) and abs(m.offset - 3.0) <= 0.25
    assert audiosim.identify(clip_path, index=home, model=model, threshold=math.inf) is None
    with Matcher(home, model) as mt:
        with pytest.raises(ValueError, match="sr="):
            mt.match(x[:SR * 3])
        again = mt.match(clip_path)
        assert (again.track_id, again.offset, again.score) == (m.track_id, m.offset, m.score)
        assert not mt.match(clip_path, threshold=math.inf).matched
        assert mt.match(clip_path).matched, "an override holds for one clip only"
