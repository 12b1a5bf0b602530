"""Only the excerpts of a song are decoded, at one rate, with the decoder's checks."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audiosim.config import SimilarityConfig
from audiosim.signal.audio import AudioError
from audiosim.similarity.excerpts import excerpt_spans, read_excerpts

CFG = SimilarityConfig(excerpt_seconds=10.0, excerpt_positions=(0.2, 0.5, 0.8))


def test_excerpts_are_centred_at_their_positions_and_kept_inside_the_track():
    assert excerpt_spans(100.0, CFG) == [(15.0, 10.0), (45.0, 10.0), (75.0, 10.0)]
    start, length = excerpt_spans(31.0, SimilarityConfig(excerpt_positions=(0.0, 0.5, 1.0)))[-1]
    assert start + length == pytest.approx(31.0)


def test_a_track_too_short_for_separate_excerpts_is_one_excerpt_of_all_of_it():
    assert excerpt_spans(25.0, CFG) == [(0.0, 25.0)]


def test_read_excerpts_decodes_the_spans_at_the_asked_rate(tmp_path):
    sr = 8000
    t = np.arange(60 * sr) / sr
    marker = (t // 1).astype(np.float32) / 100  # the level says which second it is
    wave = 0.1 * np.sin(2 * np.pi * 220 * t).astype(np.float32) + marker
    path = tmp_path / "a.wav"
    sf.write(path, wave, sr)
    ex = read_excerpts(path, 16000, CFG)
    assert ex.sample_rate == 16000 and ex.duration == pytest.approx(60.0)
    assert [len(w) for w in ex.waves] == [160000] * 3
    assert [round(float(w[8000:152000].mean()) * 100) for w in ex.waves] == [12, 30, 48]  # 7-17, 25-35, 43-53 s


def test_silent_and_unreadable_files_raise_audio_errors_naming_them(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000 * 40, np.float32), 8000)
    with pytest.raises(AudioError, match="silent.wav: silence"):
        read_excerpts(silent, 16000, CFG)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really")
    with pytest.raises(AudioError, match="junk.wav"):
        read_excerpts(junk, 16000, CFG)
