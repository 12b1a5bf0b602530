"""The demo's self-check: how many built-in moods, keys and tempi the pipeline recovered."""

from __future__ import annotations

import pandas as pd
import pytest

from audiosim.demo.check import compare_with_songbook, key_agreement, tempo_agreement


@pytest.mark.parametrize(("truth", "found", "agreement"), [
    (("C", "major"), ("C", "major"), "exact"),
    (("C", "major"), ("A", "minor"), "relative"),
    (("A", "minor"), ("C", "major"), "relative"),
    (("F#", "minor"), ("A", "major"), "relative"),
    (("Eb", "major"), ("C", "minor"), "relative"),
    (("C", "major"), ("C", "minor"), "missed"),
    (("C", "major"), ("E", "minor"), "missed"),
    (("C", "major"), ("G", "major"), "missed"),
])
def test_keys_count_exact_and_relative_major_minor_apart(truth, found, agreement):
    assert key_agreement(*truth, *found) == agreement


@pytest.mark.parametrize(("true_bpm", "bpm", "agreement"), [
    (120, 120, "exact"), (120, 124.7, "exact"), (120, 115.3, "exact"), (120, 125, "missed"),
    (70, 140, "double"), (70, 145, "double"), (150, 75, "half"), (150, 71, "missed"), (100, 150, "missed"),
])
def test_tempi_count_within_four_percent_and_double_or_half_apart(true_bpm, bpm, agreement):
    assert tempo_agreement(true_bpm, bpm) == agreement


SONGBOOK = [
    {"file": "01-a.wav", "mood": "energetic", "tempo": "150", "key": "D", "mode": "major"},
    {"file": "02-b.wav", "mood": "happy", "tempo": "120", "key": "C", "mode": "major"},
    {"file": "03-c.wav", "mood": "calm", "tempo": "64", "key": "F", "mode": "major"},
    {"file": "04-d.wav", "mood": "melancholic", "tempo": "70", "key": "A", "mode": "minor"},
    {"file": "05-held-out.wav", "mood": "tense", "tempo": "130", "key": "E", "mode": "minor"},
]


def _computed() -> pd.DataFrame:
    return pd.DataFrame({
        "path": ["/s/01-a.wav", "/s/02-b.wav", "/s/03-c.wav", "/s/04-d.wav", "/elsewhere/other.wav"],
        "mood": ["energetic", "happy", "happy", "melancholic", "calm"],
        "tempo_bpm": [151.2, 240.0, 128.4, 71.0, 100.0],
        "key": ["D", "A", "F", "C", "C"],
        "mode": ["major", "minor", "major", "major", "major"],
    }, index=[1, 2, 3, 4, 9])


def test_comparison_counts_moods_keys_and_tempi_over_the_songs_both_have():
    r = compare_with_songbook(SONGBOOK, _computed())
    assert r.songs == 4  # the held-out songbook song and the song not in the songbook are left out
    assert r.moods == 3
    assert (r.keys_exact, r.keys_relative) == (2, 2)
    assert (r.tempi_exact, r.tempi_octave) == (2, 2)
    assert r.table["file"].tolist() == ["01-a.wav", "02-b.wav", "03-c.wav", "04-d.wav"]


def test_comparison_text_gives_the_counts_and_names_the_missed_moods():
    text = "\n".join(compare_with_songbook(SONGBOOK, _computed()).lines())
    assert "moods  3 of 4" in text
    assert "keys   2 of 4 exact, 2 more as the relative major/minor" in text
    assert "tempi  2 of 4 within 4 %, 2 more at double or half" in text
    assert "03-c (calm -> happy)" in text


def test_comparison_of_nothing_is_zero_of_zero():
    r = compare_with_songbook(SONGBOOK, _computed().iloc[0:0])
    assert (r.songs, r.moods, r.keys_exact, r.tempi_exact) == (0, 0, 0, 0)
    assert "0 of 0" in "\n".join(r.lines())
