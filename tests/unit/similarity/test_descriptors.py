"""Descriptors on synthetic signals: key, tempo and pulse, loudness and its range, brightness; their cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audiosim.config import DescriptorConfig
from audiosim.similarity.descriptors import (
    KK_MAJOR,
    KK_MINOR,
    DescriptorCache,
    Descriptors,
    analyse,
    descriptor_table,
    estimate_key,
    estimate_tuning,
    loudness_range,
    pulse_clarity,
)

SR = 22050
H = "ab" * 32


def test_key_of_a_profile_shaped_chroma():
    for tonic, name in ((0, "C"), (4, "E"), (9, "A")):
        assert estimate_key(np.roll(KK_MAJOR, tonic))[:2] == (name, "major")
    key, mode, strength, clarity = estimate_key(np.roll(KK_MINOR, 2))
    assert (key, mode) == ("D", "minor") and strength > 0.99 and clarity < 0


@pytest.mark.slow
def test_key_from_a_chord_progression_in_a_minor():
    t = np.arange(int(4 * SR)) / SR
    chords = [(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64)]  # Am Dm E Am
    y = np.concatenate([
        sum(np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * t[: SR]) for m in chord) / 3 for chord in chords
    ]).astype(np.float32)
    d = analyse(np.tile(y, 2), SR)
    assert d.key_name == "A minor"


def _power(y: np.ndarray) -> np.ndarray:
    import librosa

    return np.abs(librosa.stft(y, n_fft=4096, hop_length=512)) ** 2


def test_tuning_of_a_detuned_chord_is_found():
    t = np.arange(int(3 * SR)) / SR
    cents = 30  # 0.3 of a semitone sharp
    y = sum(np.sin(2 * np.pi * 440 * 2 ** ((m - 69 + cents / 100) / 12) * t) for m in (57, 60, 64, 69))
    assert estimate_tuning(_power(y.astype(np.float32)), SR) == pytest.approx(0.3, abs=0.03)


@pytest.mark.parametrize("seed", range(4))
def test_tuning_equals_librosas_estimate_exactly(seed):
    import librosa

    rng = np.random.default_rng(seed)
    t = np.arange(int(4 * SR)) / SR
    tones = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 3000, 6))
    y = (tones / 6 + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    for S in (_power(y), (rng.random((2049, 120)) ** 3).astype(np.float32)):
        assert estimate_tuning(S, SR) == librosa.estimate_tuning(S=S, sr=SR, bins_per_octave=12)


def test_tempo_pulse_and_onsets_of_a_click_track():
    y = np.zeros(int(20 * SR), np.float32)
    period = int(SR * 60 / 120)
    click = np.hanning(256) * np.sin(2 * np.pi * 2000 * np.arange(256) / SR)
    for s in range(0, len(y) - 256, period):
        y[s : s + 256] += click.astype(np.float32)
    d = analyse(y, SR)
    assert abs(d.tempo_bpm - 120) < 4
    assert d.pulse_clarity > 0.6
    assert 1.7 < d.onset_rate < 2.3
    noise = analyse(np.random.default_rng(0).standard_normal(len(y)).astype(np.float32) * 0.1, SR)
    assert noise.pulse_clarity < d.pulse_clarity


def test_pulse_clarity_of_a_periodic_envelope():
    env = np.zeros(1000)
    env[::43] = 1.0  # a pulse every 43 frames (120 BPM at 86 frames/s)
    assert pulse_clarity(env, 86.0) > 0.9
    assert pulse_clarity(np.random.default_rng(0).random(1000), 86.0) < 0.2
    assert pulse_clarity(np.ones(100), 86.0) == 0.0


def test_loudness_and_loudness_range():
    rng = np.random.default_rng(0)
    steady = (0.1 * rng.standard_normal(30 * SR)).astype(np.float32)
    assert loudness_range(steady, SR) < 0.5
    stepped = steady.copy()
    stepped[15 * SR :] *= 10 ** (-10 / 20)
    assert 8.5 < loudness_range(stepped, SR) < 11.5
    d = analyse(steady, SR)
    assert abs(d.loudness_db - 20 * np.log10(0.1)) < 0.3


def test_bright_noise_has_a_higher_centroid_than_dark_noise():
    rng = np.random.default_rng(1)
    white = rng.standard_normal(5 * SR).astype(np.float32) * 0.1
    dark = np.cumsum(white) * 0.01
    dark = (dark - dark.mean()).astype(np.float32)
    assert analyse(white, SR).centroid_hz > 3 * analyse(dark, SR).centroid_hz


@pytest.mark.slow
def test_descriptors_follow_the_songbook_specs(contrast):
    specs, desc = contrast
    for s in specs:
        d = desc.loc[s.name]
        assert abs(d["loudness_db"] - s.loudness_db) < 1.0
    fast = [s.name for s in specs if s.mood == "energetic"]
    slow = [s.name for s in specs if s.mood == "melancholic"]
    assert desc.loc[fast, "tempo_bpm"].min() > desc.loc[slow, "tempo_bpm"].max() * 0.95 or \
        desc.loc[fast, "onset_rate"].min() > desc.loc[slow, "onset_rate"].max()


def test_descriptor_config_digest_changes():
    assert DescriptorConfig().digest() != DescriptorConfig(max_seconds=60).digest()


def test_descriptors_are_cached_by_config_digest_and_content_hash(tmp_path):
    cache = DescriptorCache(tmp_path, DescriptorConfig())
    d = Descriptors(30.0, 120.0, 0.7, 3.0, -14.0, 5.0, 1500.0, 3000.0, "A", "minor", 0.8, -0.1)
    cache.put(H, d)
    path = tmp_path / "cache" / "descriptors" / DescriptorConfig().digest() / H[:2] / f"{H}.json"
    assert cache.path_for(H) == path and path.is_file()
    assert cache.get(H) == d
    assert DescriptorCache(tmp_path, DescriptorConfig(max_seconds=60)).get(H) is None


def test_an_unreadable_cached_entry_reads_as_missing(tmp_path):
    cache = DescriptorCache(tmp_path)
    cache.put(H, Descriptors(30.0, 120.0, 0.7, 3.0, -14.0, 5.0, 1500.0, 3000.0, "A", "minor", 0.8, -0.1))
    cache.path_for(H).write_text('{"duration": 30.0')  # truncated
    assert cache.get(H) is None
    cache.path_for(H).write_text('{"duration": 30.0}')  # fields missing
    assert cache.get(H) is None


def test_descriptor_table_in_threads_keeps_track_order_and_reports_failures(tmp_path):
    from audiosim.demo.songbook import write_songbook
    from audiosim.signal.audio import content_hash

    paths = write_songbook(tmp_path / "songs", n=3, seconds=4.0, sample_rate=8000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    files = [*paths, broken]
    tracks = pd.DataFrame({"path": [str(p) for p in files], "content_hash": [content_hash(p) for p in files]},
                          index=pd.Index([30, 10, 20, 40], name="id"))
    errors: list[tuple[int, str]] = []
    one = descriptor_table(tracks, tmp_path / "home", workers=1)
    table = descriptor_table(tracks, tmp_path / "home2", on_error=lambda t, m: errors.append((t, m)), workers=2)
    assert list(table.index) == [30, 10, 20] and [t for t, _ in errors] == [40]
    pd.testing.assert_frame_equal(table, one)
