"""Tests of audiosim.match.spectral: do a clip's spectral peaks sit where its candidate's do?"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from match_support import SR, noisy

from audiosim.config import FeatureConfig
from audiosim.demo.songbook import write_songbook
from audiosim.match.spectral import (
    MAX_SHIFT,
    TrackLogMels,
    pack,
    peak_agreement,
    peak_map,
    unpack,
)
from audiosim.signal import audio
from audiosim.signal import features as F
from audiosim.store.content import FeatureStore
from audiosim.store.home import DataHome

FC = FeatureConfig()


def log_mel(x: np.ndarray) -> np.ndarray:
    return F.log_mel(torch.from_numpy(np.asarray(x, np.float32)), FC).numpy()


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> list[np.ndarray]:
    paths = write_songbook(tmp_path_factory.mktemp("songs"), n=3, seconds=20.0, sample_rate=SR, seed=5)
    return [audio.load(p, SR) for p in paths]


def test_a_peak_is_the_loudest_cell_around_it_and_stands_above_its_frame() -> None:
    m = np.zeros((16, 40), np.float32)
    m[5, 10] = 3.0  # a peak
    m[12, 30] = 0.5  # the loudest cell around it, but too faint to count
    assert [(int(b), int(t)) for b, t in zip(*np.nonzero(peak_map(m)))] == [(5, 10)]
    assert not peak_map(np.full((16, 40), -13.8, np.float32)).any(), "silence has no peaks"
    assert peak_map(np.zeros((16, 0), np.float32)).shape == (16, 0)


def test_the_peaks_of_a_slice_are_the_slice_of_the_peaks_away_from_its_ends(songs) -> None:
    m = log_mel(songs[0])
    whole, part = peak_map(m), peak_map(m[:, 200:500])
    inner = slice(10, 290)
    assert np.array_equal(whole[:, 200:500][:, inner], part[:, inner])


def test_a_clip_agrees_with_its_own_track_at_its_offset_and_not_elsewhere(songs) -> None:
    track = log_mel(songs[0])
    start = 400  # frames: 6.25 s
    clip = songs[0][start * FC.hop_length : start * FC.hop_length + 5 * SR]
    assert peak_agreement(peak_map(log_mel(clip)), track, start) > 0.9
    peaks = peak_map(log_mel(noisy(clip, 10.0, seed=1)))  # white noise, 10 dB: half the peaks are the noise's
    right = peak_agreement(peaks, track, start)
    assert right > 0.4
    assert peak_agreement(peaks, track, start + MAX_SHIFT // 2) == pytest.approx(right, abs=0.05), \
        "an offset a few frames out is tried at the right one too"
    assert peak_agreement(peaks, track, start + 500) < right - 0.25, "another passage"
    assert peak_agreement(peaks, log_mel(songs[1]), start) < right - 0.25, "another song"


def test_frames_outside_the_track_hold_no_peaks() -> None:
    rng = np.random.default_rng(0)
    track = rng.normal(size=(16, 300)).astype(np.float32)
    clip = peak_map(track[:, :100])
    at_start = peak_agreement(clip, track, 0)
    before = peak_agreement(clip, track, -150)  # the whole clip before the track's start
    assert at_start > 0.9 and before == 0.0
    assert 0.0 < peak_agreement(clip, track, -50) < at_start, "half the clip before the start"
    assert peak_agreement(clip, track, 280) < 0.5, "running past the end"
    assert peak_agreement(np.zeros((16, 100), bool), track, 0) == 0.0, "a clip without peaks agrees with nothing"


def test_peak_maps_pack_to_bits_and_back() -> None:
    rng = np.random.default_rng(1)
    peaks = rng.random((64, 77)) < 0.05
    bits = pack(peaks)
    assert bits.dtype == np.uint8 and bits.shape == (77, 8)
    assert np.array_equal(unpack(bits, 64), peaks)
    odd = rng.random((13, 5)) < 0.5
    assert np.array_equal(unpack(pack(odd), 13), odd)


def test_track_log_mels_come_from_the_homes_feature_store_or_not_at_all(tmp_path) -> None:
    home = DataHome(tmp_path / "home")
    assert TrackLogMels.open(home, FC, {1: "ab" * 32}) is None
    assert not home.features_dir.exists(), "opening for reading creates nothing"
    store = FeatureStore(home.features_dir, FC)
    mel = np.zeros((FC.n_mels, 10), np.float32)
    store.put("ab" * 32, mel)
    spectra = TrackLogMels.open(home, FC, {1: "ab" * 32, 2: "cd" * 32})
    assert spectra is not None and spectra.get(1).shape == mel.shape
    assert spectra.get(2) is None and spectra.get(3) is None, "not stored, not in the index"
    clip = np.zeros((FC.n_mels, 4), bool)
    clip[3, 2] = True
    assert spectra.agreement(clip, 2, 0.0) is None, "no log-mel, no agreement"
    assert spectra.agreement(clip, 1, 0.05) == peak_agreement(clip, spectra.get(1), round(0.05 * FC.frames_per_second))
    assert TrackLogMels.open(home, FeatureConfig(n_mels=32), {}) is None, "features made otherwise"
