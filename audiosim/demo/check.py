"""How much of the songbook's built-in truth the pipeline recovered.

The songbook (:mod:`audiosim.demo.songbook`) is synthesised from known
parameters: every song has a mood label, a key and mode and a tempo, written
to ``songbook.csv``. The demo computes the same things from the audio
(:mod:`audiosim.similarity.descriptors`, :mod:`audiosim.similarity.mood`);
:func:`compare_with_songbook` counts the agreements so that a newcomer sees
how good the answers are, not only what they are.

What counts as recovered
------------------------
mood
    the computed mood label equals the built-in one.
key
    *exact*: same tonic and mode; *relative*: the relative major or minor
    (C major and A minor share their notes, so key profiles confuse them),
    counted separately; anything else is missed.
tempo
    *exact*: within :data:`TEMPO_TOLERANCE` of the built-in tempo; *octave*:
    within the same tolerance of double or half of it (the usual beat-tracker
    error, one metrical level off), counted separately.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from audiosim.similarity.descriptors import KEYS

TEMPO_TOLERANCE = 0.04
"""Relative tempo error still counted as the same tempo (4 %)."""

RELATIVE_MINOR_STEP = 9
"""Semitones from a major key's tonic up to its relative minor's (C major -> A minor)."""


def key_agreement(true_key: str, true_mode: str, key: str, mode: str) -> str:
    """``"exact"``, ``"relative"`` (the relative major/minor) or ``"missed"``.

    Examples
    --------
    >>> key_agreement("C", "major", "A", "minor"), key_agreement("A", "minor", "A", "minor")
    ('relative', 'exact')
    >>> key_agreement("C", "major", "C", "minor")
    'missed'
    """
    if key == true_key and mode == true_mode:
        return "exact"
    if key not in KEYS or true_key not in KEYS or mode == true_mode:
        return "missed"
    major_tonic, minor_tonic = ((KEYS.index(true_key), KEYS.index(key)) if true_mode == "major"
                                else (KEYS.index(key), KEYS.index(true_key)))
    return "relative" if (major_tonic + RELATIVE_MINOR_STEP) % 12 == minor_tonic else "missed"


def tempo_agreement(true_bpm: float, bpm: float, tolerance: float = TEMPO_TOLERANCE) -> str:
    """``"exact"`` (within ``tolerance``), ``"double"`` or ``"half"`` (of the true tempo), else ``"missed"``.

    Examples
    --------
    >>> tempo_agreement(120, 123), tempo_agreement(70, 141), tempo_agreement(150, 74), tempo_agreement(100, 110)
    ('exact', 'double', 'half', 'missed')
    """
    for name, factor in (("exact", 1.0), ("double", 2.0), ("half", 0.5)):
        if abs(bpm - factor * true_bpm) <= tolerance * factor * true_bpm:
            return name
    return "missed"


@dataclass(frozen=True)
class Recovery:
    """Counts of :func:`compare_with_songbook`, with the per-song comparison."""

    songs: int
    """Songs compared (songbook songs the pipeline analysed)."""
    moods: int
    keys_exact: int
    keys_relative: int
    tempi_exact: int
    tempi_octave: int
    """Tempi found at double or half the built-in tempo."""
    table: pd.DataFrame
    """Per song: ``file``, built-in and computed ``mood``/``key``/``tempo``, and the agreement columns."""

    def lines(self) -> list[str]:
        """The counts as a few lines of text, the misses named."""
        n = self.songs
        t = self.table
        out = [f"recovered from the songbook's built-in labels ({n} songs):",
               f"  moods  {self.moods} of {n}",
               f"  keys   {self.keys_exact} of {n} exact, {self.keys_relative} more as the relative major/minor",
               f"  tempi  {self.tempi_exact} of {n} within {100 * TEMPO_TOLERANCE:.0f} %, "
               f"{self.tempi_octave} more at double or half"]
        missed = t[~t["mood_ok"]]
        if len(missed):
            out += textwrap.wrap("moods missed: " + "; ".join(
                f"{Path(f).stem} ({a} -> {b})" for f, a, b in zip(missed["file"], missed["true_mood"], missed["mood"])),
                width=100, initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False)
        return out


def compare_with_songbook(songbook: Iterable[Mapping[str, str]], per_song: pd.DataFrame) -> Recovery:
    """Compare the songbook's built-in labels with what the pipeline computed.

    Parameters
    ----------
    songbook : iterable of mappings
        Rows of ``songbook.csv`` (:func:`audiosim.demo.songbook.read_songbook`):
        ``file``, ``mood``, ``tempo``, ``key``, ``mode``.
    per_song : DataFrame
        The pipeline's per-song table (:func:`audiosim.similarity.mood.catalogue_moods`):
        ``path``, ``mood``, ``tempo_bpm``, ``key``, ``mode``. Songs are matched
        on the file name; songbook songs the pipeline did not analyse (held
        out, failed) are left out of the counts.
    """
    truth = {row["file"]: row for row in songbook}
    rows = []
    for _, song in per_song.iterrows():
        name = Path(str(song["path"])).name
        row = truth.get(name)
        if row is None:
            continue
        rows.append({
            "file": name,
            "true_mood": row["mood"], "mood": song["mood"],
            "true_key": f"{row['key']} {row['mode']}", "key": f"{song['key']} {song['mode']}",
            "true_tempo": float(row["tempo"]), "tempo": round(float(song["tempo_bpm"]), 1),
            "mood_ok": row["mood"] == song["mood"],
            "key_agreement": key_agreement(row["key"], row["mode"], str(song["key"]), str(song["mode"])),
            "tempo_agreement": tempo_agreement(float(row["tempo"]), float(song["tempo_bpm"])),
        })
    columns = ["file", "true_mood", "mood", "true_key", "key", "true_tempo", "tempo", "mood_ok", "key_agreement",
               "tempo_agreement"]
    table = pd.DataFrame(rows, columns=columns).sort_values("file", ignore_index=True)
    keys = table["key_agreement"].value_counts()
    tempi = table["tempo_agreement"].value_counts()
    return Recovery(
        songs=len(table), moods=int(table["mood_ok"].sum()),
        keys_exact=int(keys.get("exact", 0)), keys_relative=int(keys.get("relative", 0)),
        tempi_exact=int(tempi.get("exact", 0)), tempi_octave=int(tempi.get("double", 0) + tempi.get("half", 0)),
        table=table,
    )


__all__ = ["compare_with_songbook", "Recovery", "key_agreement", "tempo_agreement", "TEMPO_TOLERANCE"]
