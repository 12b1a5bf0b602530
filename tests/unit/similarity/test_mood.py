"""Valence, arousal, mood labels and mood groups, on descriptors of songbook songs and made-up tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audiosim.config import MoodConfig
from audiosim.similarity.mood import (
    PROTOTYPES,
    group_songs,
    mood_label,
    song_moods,
    valence_arousal,
)


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
