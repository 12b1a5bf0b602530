"""Valence, arousal, mood labels and mood groups, on descriptors of songbook songs and made-up tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audiosim.config import MoodConfig
from audiosim.similarity.mood import (
    PROTOTYPES,
    TERM,
    TooManyGroups,
    group_songs,
    mood_label,
    phrase,
    shown_value,
    shown_word,
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


def _energetic_songs(n: int, **changes) -> pd.DataFrame:
    base = dict(duration=30.0, pulse_clarity=0.7, dynamic_range_db=3.0, rolloff_hz=3000.0, key="C", mode="major",
                key_strength=0.8, mode_clarity=0.2, tempo_bpm=150.0, onset_rate=6.0, loudness_db=-11.0,
                centroid_hz=2000.0)
    rng = np.random.default_rng(1)
    return pd.DataFrame.from_dict({f"s{i}": dict(base, tempo_bpm=150 + rng.normal(0, 5), **changes)
                                   for i in range(n)}, orient="index")


@pytest.mark.parametrize("groups", [4, 50])
def test_more_groups_than_the_songs_allow_is_refused_with_the_limit(groups: int) -> None:
    with pytest.raises(TooManyGroups, match=f"{groups} groups asked for 4 songs: at most 3 groups"):
        group_songs(_energetic_songs(4), None, MoodConfig(n_groups=groups))
    assert group_songs(_energetic_songs(4), None, MoodConfig(n_groups=3)).k == 3


def test_a_group_name_uses_the_word_of_its_own_line() -> None:
    # two happy-ish groups: one major, one (narrowly) minor by median, mixing modes within each
    rows = []
    for i in range(8):
        minor_group = i >= 4
        rows.append(dict(duration=30.0, pulse_clarity=0.7, dynamic_range_db=3.0, rolloff_hz=3000.0, key="C",
                         mode="minor" if (minor_group and i != 7) or (not minor_group and i == 0) else "major",
                         key_strength=0.9, mode_clarity=(-0.02 if minor_group else 0.3) + 0.01 * (i % 2),
                         tempo_bpm=125.0 + i, onset_rate=4.0, loudness_db=-16.0, centroid_hz=1500.0 + 50 * i))
    desc = pd.DataFrame(rows, index=[f"s{i}" for i in range(8)])
    result = group_songs(desc, None, MoodConfig(n_groups=2))
    assert result.groups["name"].is_unique
    for _, g in result.groups.iterrows():
        qualifier = g["name"].split(", ", 1)[1]
        term = next(t for t in TERM.values() if qualifier in (t.high, t.low, t.mid))
        words_of_term = {w for w in (term.high, term.low, term.mid) if w}
        shown = [p.split(" (")[0] for p in g["why"].split(" → ")[0].split("), ")]
        assert not (words_of_term - {qualifier}) & set(shown), (g["name"], g["why"])
    names = set(result.groups["name"])
    assert names == {"happy, major", "happy, minor"}, names


def test_one_shown_value_reads_the_same_in_every_line() -> None:
    brightness = TERM["brightness"]
    words = {}
    for hz in np.linspace(1600, 1800, 201):
        text = phrase(brightness, float(brightness.score(np.array([hz]))[0]), pd.Series({"centroid_hz": hz}))
        shown = text.split("(", 1)[1]
        words.setdefault(shown, set()).add(text.split(" (", 1)[0])
    assert all(len(w) == 1 for w in words.values()), {s: w for s, w in words.items() if len(w) > 1}
    assert shown_value(brightness, 1697.4) == 1700.0 and shown_word(brightness, pd.Series({"centroid_hz": 1697.4})) == "bright"


def _tag_table(index, **percentiles) -> pd.DataFrame:
    """Tag percentiles of every mood tag at 50 (the catalogue's median), but those given (``msd_happy=95``)."""
    from audiosim.similarity.mood import TAG_TERMS

    cols = {t.column: 50.0 for t in TAG_TERMS}
    for key, value in percentiles.items():
        model, tag = key.split("_", 1)
        cols[f"pct:{model}:{tag}"] = value
    return pd.DataFrame({c: [v] * len(index) for c, v in cols.items()}, index=index)


def test_median_tags_leave_the_descriptors_to_decide_the_direction(contrast) -> None:
    _, desc = contrast
    plain = valence_arousal(desc)
    tagged = valence_arousal(desc, _tag_table(desc.index))
    assert (np.sign(tagged) == np.sign(plain)).all().all()
    assert (tagged.abs() <= plain.abs() + 1e-12).all().all()  # only the descriptors' share is left


def test_happy_tags_raise_valence_and_quiet_slow_tags_lower_arousal(contrast) -> None:
    _, desc = contrast
    base = valence_arousal(desc, _tag_table(desc.index))
    happy = valence_arousal(desc, _tag_table(desc.index, msd_happy=98, msd_sad=2))
    calm = valence_arousal(desc, _tag_table(desc.index, mtt_quiet=98, mtt_slow=98, msd_chill=98))
    assert (happy["valence"] > base["valence"]).all()
    assert (calm["arousal"] < base["arousal"]).all()


def test_a_songs_explanation_names_the_tags_behind_it_with_their_percentiles(contrast) -> None:
    _, desc = contrast
    moods = song_moods(desc, _tag_table(desc.index, msd_party=96, msd_sad=4))
    why = moods["why"].iloc[0]
    assert "; tags: " in why and "party (96th percentile)" in why and "not sad (4th percentile)" in why
    assert why.endswith("→ " + moods["mood"].iloc[0])
    assert " BPM" in why  # the descriptors still come first


def test_tagged_moods_still_keep_clearly_different_moods_apart(contrast) -> None:
    specs, desc = contrast
    result = group_songs(desc, None, MoodConfig(n_groups=2), _tag_table(desc.index))
    g = result.songs["group"]
    fast = {g[s.name] for s in specs if s.mood == "energetic"}
    slow = {g[s.name] for s in specs if s.mood == "melancholic"}
    assert len(fast) == 1 and len(slow) == 1 and fast != slow
