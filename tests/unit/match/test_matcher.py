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
import torch
from match_support import SR, noisy

import audiosim
from audiosim.index.thresholds import Calibration, CalibrationBin, sorted_bin
from audiosim.match import matcher as match
from audiosim.match import monitor
from audiosim.match.calibrate import segments_in
from audiosim.match.matcher import (
    CatalogueView,
    Match,
    Matcher,
    ThresholdPolicy,
    TrackInfo,
    passage_start,
    torch_threads,
)
from audiosim.match.scoring import ClipScore
from audiosim.match.voting import Candidate
from audiosim.signal.audio import AudioError
from audiosim.store.home import DataHome


def test_identify_and_monitor_are_exposed_lazily() -> None:
    assert audiosim.identify is match.identify
    assert audiosim.monitor is monitor.monitor
    assert audiosim.AudioError is AudioError, "the one error type of audio that cannot be heard"
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


def test_thresholds_calibrated_under_other_scoring_settings_are_used_with_a_warning_naming_them() -> None:
    from types import SimpleNamespace

    from audiosim.config import IndexConfig
    from audiosim.index.thresholds import STATISTIC

    cal = Calibration("background", 0.01, [], STATISTIC, scoring=IndexConfig().scoring())
    index = SimpleNamespace(manifest=SimpleNamespace(calibration=cal), config=IndexConfig(search_k=500),
                            directory=Path("home/index"))
    with pytest.warns(UserWarning, match=r"search_k: 2000 -> 500.*run `audiosim index` to recalibrate"):
        assert match._calibration(index) is cal


@pytest.mark.parametrize("rate", [2.0, 1.0, -0.01, float("nan")])
def test_a_false_match_rate_outside_0_1_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match=r"max_false_match must be in \[0, 1\)"):
        ThresholdPolicy(_cal(), rate)
    with pytest.raises(ValueError, match="max_false_match"):
        ThresholdPolicy(_cal(), 0.01).overridden(max_false_match=rate)
    with pytest.raises(ValueError, match="max_false_match"):  # refused before any index is opened
        audiosim.identify(np.zeros(8000, np.float32), 8000, index="/nonexistent", max_false_match=rate)


def _deciding(tmp_path: Path, policy: ThresholdPolicy) -> Matcher:
    """A matcher that can only decide (no index, no model): enough to test answers."""
    m = Matcher.__new__(Matcher)
    m.policy = policy
    m.tracks = CatalogueView(DataHome(tmp_path / "home"), {})
    return m


def test_a_no_match_names_its_best_candidate_only_in_the_candidate_fields(tmp_path: Path) -> None:
    m = _deciding(tmp_path, ThresholdPolicy(_cal(), 0.01))
    no = m.decide(ClipScore([Candidate(7, 3.25, 1.5, 4)], 11, 1.5), "a.wav", 5.0, 0.0)
    assert (no.status, no.reason, no.matched) == ("no-match", "below-threshold", False)
    assert (no.track_id, no.path, no.title, no.offset) == (None, None, None, None)
    assert (no.candidate_track_id, no.candidate_offset, no.score) == (7, 3.25, 1.5)
    yes = m.decide(ClipScore([Candidate(7, 3.25, 2.5, 4)], 11, 2.5), "a.wav", 5.0, 0.0)
    assert (yes.status, yes.reason, yes.track_id, yes.offset) == ("matched", "", 7, 3.25) and yes.matched
    assert yes.candidate_track_id == 7 and yes.to_dict()["matched"] is True
    none = m.decide(ClipScore([], 11, 0.0), "a.wav", 5.0, 0.0)
    assert (none.status, none.reason, none.candidate_track_id) == ("no-match", "no-candidate", None)
    uncalibrated = _deciding(tmp_path, ThresholdPolicy(None, 0.01))
    assert uncalibrated.decide(ClipScore([Candidate(7, 1.0, 9.0, 4)], 11, 9.0), "a", 5.0, 0.0).reason == "uncalibrated"


def test_an_offset_is_never_negative_the_passage_starts_later_in_the_clip(tmp_path: Path) -> None:
    # A clip of 5 s of something else, then the track from its start: its candidate offset is -5.
    assert passage_start(12.5) == (12.5, 0.0) and passage_start(-5.0) == (0.0, 5.0)
    m = _deciding(tmp_path, ThresholdPolicy(_cal(), 0.01))
    got = m.decide(ClipScore([Candidate(7, -5.0, 2.5, 4)], 11, 2.5), "stream.mp3", 15.0, 0.0)
    assert got.matched and (got.offset, got.clip_start, got.candidate_offset) == (0.0, 5.0, 0.0)


def test_a_clip_that_cannot_be_heard_is_an_error_answer_with_its_reason() -> None:
    failed = Match.failed(AudioError("short.wav", "too-short", "0.30 s"), 0.01)
    assert (failed.clip, failed.status, failed.reason, failed.detail) == ("short.wav", "error", "too-short", "0.30 s")
    assert not failed.matched and failed.track_id is None and failed.candidate_track_id is None


def test_without_an_index_identify_says_where_it_looked_and_how_the_home_was_chosen(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("AUDIOSIM_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        audiosim.identify(np.zeros(8000, np.float32), 8000)
    msg = str(e.value)
    assert str(tmp_path / "data") in msg and "$AUDIOSIM_HOME is not set" in msg and "audiosim index" in msg
    monkeypatch.setenv("AUDIOSIM_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="AUDIOSIM_HOME is .*elsewhere"):
        audiosim.identify(np.zeros(8000, np.float32), 8000)
    with pytest.raises(FileNotFoundError) as e:
        audiosim.identify(np.zeros(8000, np.float32), 8000, index=tmp_path / "given")
    assert str(tmp_path / "given") in str(e.value) and "AUDIOSIM_HOME" not in str(e.value)


def test_lookups_choose_their_torch_threads_and_restore_the_setting() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


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
            assert got.title and got.n_segments == segments_in(5.0, m.model, m.config) and got.votes > 5
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


@pytest.mark.slow
def test_bad_input_raises_the_audio_error_with_a_reason_and_only_a_real_no_match_is_none(songbook_index) -> None:
    home, paths, model = songbook_index
    x, sr = sf.read(paths[2], dtype="float32")
    bad = {
        "too-short": (x[: int(0.3 * sr)], sr),
        "corrupt": (np.full(5 * sr, np.nan, np.float32), sr),
        "unsupported": (x[: 5 * sr], 10**7),
        "empty": (np.zeros(0, np.float32), sr),
        "silence": (np.zeros(5 * sr, np.float32), sr),
    }
    for reason, (clip, rate) in bad.items():
        with pytest.raises(AudioError) as e:
            audiosim.identify(clip, rate, index=home, model=model)
        assert e.value.reason == reason, (reason, e.value)
    with pytest.raises(AudioError, match="unsupported"):
        audiosim.identify(x[: 5 * sr], 0, index=home, model=model)
    with Matcher(home, model) as m:
        answers = [m.answer(c, r) for c, r in bad.values()] + [m.answer(x[3 * sr : 8 * sr], sr)]
    assert [a.reason for a in answers[:-1]] == list(bad) and all(a.status == "error" for a in answers[:-1])
    assert answers[-1].matched, "the rest of the batch is answered"


@pytest.mark.slow
def test_a_clip_that_starts_before_the_track_reports_where_the_passage_starts(songbook_index) -> None:
    home, paths, model = songbook_index
    x, sr = sf.read(paths[3], dtype="float32")
    y, _ = sf.read(paths[9], dtype="float32")  # absent
    for lead in (np.zeros(5 * sr, np.float32), y[: 5 * sr]):
        got = audiosim.identify(np.concatenate([lead, x[: 10 * sr]]), sr, index=home, model=model)
        assert got is not None and got.path == str(paths[3].resolve())
        assert got.offset == 0.0 and abs(got.clip_start - 5.0) <= 0.25, got


def _gated(score: float, n_segments: int, peak_threshold: float) -> ThresholdPolicy:
    """A policy under which ``score`` is between the gate and the score threshold, and the
    peaks must beat ``peak_threshold`` (at 2 %, half of it the peaks')."""
    scores = [3 * score, 2 * score] + [score] * 98
    peaks = [0.0, 0.0, 0.99] + [peak_threshold] * 97
    cal = Calibration("background", 0.02, [sorted_bin(5.0, n_segments, scores, peaks)])
    policy = ThresholdPolicy(cal, 0.02, peak_share=0.5, peak_gate=0.3)
    rule = policy.rule(n_segments)
    assert rule.threshold == pytest.approx(2 * score) and rule.peak_threshold == pytest.approx(peak_threshold)
    return policy


@pytest.mark.slow
def test_a_clip_under_its_score_threshold_matches_when_its_peaks_line_up_with_its_candidates(songbook_index) -> None:
    home, paths, model = songbook_index
    with Matcher(home, model) as m:
        assert m.spectra is not None, "the home's features give the candidates' spectra"
        x, sr = sf.read(paths[2], dtype="float32")
        clip = noisy(x[3 * sr : 8 * sr], snr_db=10, seed=0)
        plain = m.match(clip, sr)
        assert plain.peaks is None and math.isinf(plain.peak_threshold), "no peaks in this index's calibration"
        m.policy = _gated(plain.score, plain.n_segments, 0.25)
        got = m.match(clip, sr)
        assert got.matched and got.track_id == plain.candidate_track_id and got.score < got.threshold
        assert got.peaks is not None and got.peaks > got.peak_threshold == pytest.approx(0.25)
        assert got.peak_gate < got.score
        y, _ = sf.read(paths[9], dtype="float32")  # absent
        for start in (6.0, 16.0):
            absent = noisy(y[int(start * sr) : int((start + 5) * sr)], snr_db=10, seed=1)
            first = m.match(absent, sr)
            m.policy = _gated(first.score, first.n_segments, 0.25)
            no = m.match(absent, sr)
            assert not no.matched and no.reason == "below-threshold" and no.peaks is not None and no.peaks < 0.25
