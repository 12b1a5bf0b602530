"""Tests of audiosim.match.clips: what the matcher hears, and the reasons it cannot hear a clip."""

from __future__ import annotations

import numpy as np
import pytest

from audiosim.config import FeatureConfig
from audiosim.match.clips import check_sample_rate, check_samples, load_clip, unscorable
from audiosim.signal.audio import AudioError

F = FeatureConfig()


def _reason(fn, *args) -> str:
    with pytest.raises(AudioError) as e:
        fn(*args)
    return e.value.reason


def test_samples_that_are_not_audio_raise_the_audio_error_with_a_reason() -> None:
    assert _reason(check_samples, np.zeros(0, np.float32)) == "empty"
    assert _reason(check_samples, np.zeros((0, 2), np.float32)) == "empty"
    assert _reason(check_samples, np.array([0.1, np.nan, 0.2], np.float32)) == "corrupt"
    assert _reason(check_samples, np.array([0.1, np.inf], np.float32)) == "corrupt"
    assert _reason(check_samples, np.zeros((2, 2, 2), np.float32)) == "unsupported"
    assert _reason(check_samples, ["a", "b"]) == "unsupported"


def test_stereo_samples_in_either_layout_are_mixed_down() -> None:
    x = np.stack([np.ones(100, np.float32), np.zeros(100, np.float32)], axis=1)
    assert np.allclose(check_samples(x), 0.5) and np.allclose(check_samples(x.T), 0.5)


@pytest.mark.parametrize("sr", [0, -8000, 10**7, 999, 44100.5, float("nan"), "fast"])
def test_an_impossible_sample_rate_is_unsupported(sr) -> None:
    assert _reason(check_sample_rate, sr) == "unsupported"


def test_a_plausible_sample_rate_is_a_whole_number_of_hz() -> None:
    assert check_sample_rate(44100.0) == 44100 and check_sample_rate(np.int64(8000)) == 8000


def test_an_array_clip_is_checked_before_it_is_resampled() -> None:
    with pytest.raises(AudioError, match="<array>: unsupported"):
        load_clip(np.ones(8000, np.float32), 8000, sr=0)
    with pytest.raises(AudioError) as e:
        load_clip(np.full(8000, np.nan, np.float32), 8000, sr=8000, name="mic")
    assert e.value.reason == "corrupt" and e.value.path == "mic"
    with pytest.raises(ValueError, match="sr="):
        load_clip(np.ones(8000, np.float32), 8000)
    assert len(load_clip(np.ones(16000, np.float32), 8000, sr=16000)) == 8000


def test_a_clip_without_segments_is_too_short_or_silence() -> None:
    short = np.ones(int(0.3 * F.sample_rate), np.float32)
    assert unscorable("a.wav", short, F).reason == "too-short"
    assert "0.30 s" in str(unscorable("a.wav", short, F))
    assert unscorable("a.wav", np.zeros(5 * F.sample_rate, np.float32), F).reason == "silence"
