"""Descriptors, valence/arousal, mood labels and groups on synthetic signals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audiosim.config import DescriptorConfig, MoodConfig
from audiosim.similarity.descriptors import (
    KK_MAJOR,
    KK_MINOR,
    analyse,
    estimate_key,
    loudness_range,
    pulse_clarity,
)
from audiosim.similarity.mood import (
    PROTOTYPES,
    group_songs,
    mood_label,
    song_moods,
    valence_arousal,
)

SR = 22050


@pytest.fixture(scope="module")
def contrast():
    """Three fast loud major songs and three slow quiet minor songs (songbook), with descriptors."""
    from audiosim.demo.songbook import render, songbook_specs

    specs = [s for s in songbook_specs(n=15, seconds=12.0, seed=2) if s.mood in ("energetic", "melancholic")]
    rows = {s.name: analyse(render(s, SR), SR).to_dict() for s in specs}
    desc = pd.DataFrame.from_dict(rows, orient="index")
    return specs, desc


def test_key_of_a_profile_shaped_chroma():
    for tonic, name in ((0, "C"), (4, "E"), (9, "A")):
        assert estimate_key(np.roll(KK_MAJOR, tonic))[:2] == (name, "major")
    key, mode, strength, clarity = estimate_key(np.roll(KK_MINOR, 2))
    assert (key, mode) == ("D", "minor") and strength > 0.99 and clarity < 0


def test_key_from_a_chord_progression_in_a_minor():
    t = np.arange(int(4 * SR)) / SR
    chords = [(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64)]  # Am Dm E Am
    y = np.concatenate([
        sum(np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * t[: SR]) for m in chord) / 3 for chord in chords
    ]).astype(np.float32)
    d = analyse(np.tile(y, 2), SR)
    assert d.key_name == "A minor"


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


def test_descriptors_follow_the_songbook_specs(contrast):
    specs, desc = contrast
    for s in specs:
        d = desc.loc[s.name]
        assert abs(d["loudness_db"] - s.loudness_db) < 1.0
    fast = [s.name for s in specs if s.mood == "energetic"]
    slow = [s.name for s in specs if s.mood == "melancholic"]
    assert desc.loc[fast, "tempo_bpm"].min() > desc.loc[slow, "tempo_bpm"].max() * 0.95 or \
        desc.loc[fast, "onset_rate"].min() > desc.loc[slow, "onset_rate"].max()


def test_valence_arousal_and_labels_separate_the_moods(contrast):
    specs, desc = contrast
    va = valence_arousal(desc)
    for s in specs:
        a = va.loc[s.name, "arousal"]
        assert (a > 0.3) if s.mood == "energetic" else (a < -0.2), (s.name, s.mood, a)
    moods = song_moods(desc)
    assert moods["why"].str.contains("→").all()
    energetic = moods.loc[[s.name for s in specs if s.mood == "energetic"], "mood"]
    assert (energetic == "energetic").all()


def test_different_moods_land_in_different_groups(contrast):
    specs, desc = contrast
    result = group_songs(desc, None, MoodConfig(n_groups=2))
    g = result.songs["group"]
    fast = {g[s.name] for s in specs if s.mood == "energetic"}
    slow = {g[s.name] for s in specs if s.mood == "melancholic"}
    assert len(fast) == 1 and len(slow) == 1 and fast != slow
    names = dict(zip(result.groups.index, result.groups["name"]))
    assert names[fast.pop()] == "energetic"
    assert "→" in result.groups["why"].iloc[0]
    # automatic k on the same songs also keeps them apart
    auto = group_songs(desc, None, MoodConfig())
    ga = auto.songs["group"]
    assert not set(ga[[s.name for s in specs if s.mood == "energetic"]]) & set(
        ga[[s.name for s in specs if s.mood == "melancholic"]])


def test_group_names_are_unique_and_prototypes_label_themselves():
    for mood, (v, a) in PROTOTYPES.items():
        assert mood_label(v, a) == mood
    rng = np.random.default_rng(0)
    base = dict(duration=30.0, pulse_clarity=0.7, dynamic_range_db=3.0, rolloff_hz=3000.0, key="C", mode="major",
                key_strength=0.8, mode_clarity=0.2)
    rows = {}
    for i in range(8):  # two clusters of energetic songs, differing in brightness
        bright = i % 2 == 0
        rows[f"s{i}"] = dict(base, tempo_bpm=150 + rng.normal(0, 2), onset_rate=6.0, loudness_db=-11 + rng.normal(0, 0.3),
                             centroid_hz=4000.0 if bright else 1500.0)
    desc = pd.DataFrame.from_dict(rows, orient="index")
    result = group_songs(desc, None, MoodConfig(n_groups=2))
    assert result.groups["name"].is_unique
    assert all(n.startswith("energetic") for n in result.groups["name"])


def test_descriptor_config_digest_changes():
    assert DescriptorConfig().digest() != DescriptorConfig(max_seconds=60).digest()
