"""A deterministic synthetic songbook: distinct songs with known moods, numpy only.

Each song has a melody, chords, a bass line and drums (kick, snare and hats,
all synthesised), its own tempo, key, mode, lead timbre (additive harmonic
recipe, two-operator FM or a Karplus-Strong pluck), loudness and dynamics,
and a mood label from :data:`SONGBOOK_MOODS` that is built into those parameters:

============  =============================================================
mood          how it is made
============  =============================================================
energetic     fast, loud, major, busy drums (16th hats), bright timbres
happy         medium-fast, major, lighter drums, some swing
calm          slow, quiet, major, soft dark timbres, sparse drums, reverb
melancholic   slow, minor, darker, moderate drums, long notes
tense         driving, minor with diminished and flat-second chords,
              chromatic melody, clusters in the chords, busy drums
============  =============================================================

The music is not a loop: songs are cut into sections (intro, A, B, A', C,
B', ...), each with its own chord progression, drum intensity and level; the
melody is generated bar by bar from a seeded generator (a motif, its
variation, new material, a cadence) and repeated sections come back mutated,
so the content changes every bar and no two songs share a passage.

Everything is a pure function of a :class:`SongSpec` (and the sample rate):
rendering the same spec twice gives the same samples.

Examples
--------
>>> specs = songbook_specs(n=5, seconds=10.0)
>>> [s.mood for s in specs]
['energetic', 'happy', 'calm', 'melancholic', 'tense']
>>> wave = render(specs[0], sample_rate=8000)
>>> wave.dtype, wave.shape
(dtype('float32'), (80000,))
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audiosim.similarity.descriptors import KEYS
from audiosim.store.atomic import atomic_write_bytes

__all__ = [
    "SONGBOOK_MOODS",
    "TIMBRES",
    "SongSpec",
    "songbook_specs",
    "render",
    "write_songbook",
    "read_songbook",
]

SONGBOOK_MOODS: tuple[str, ...] = ("energetic", "happy", "calm", "melancholic", "tense")
"""The songbook's mood labels (the labels of :data:`audiosim.similarity.mood.MOODS`), in the
order :func:`songbook_specs` cycles through them."""

TIMBRES: tuple[str, ...] = ("additive", "fm", "pluck")
"""Lead instruments: harmonic recipe, two-operator FM, Karplus-Strong pluck."""

MODES: tuple[str, ...] = ("major", "minor")

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)  # natural minor; V is raised where a mood wants it

CSV_NAME = "songbook.csv"


@dataclass(frozen=True)
class SongSpec:
    """Everything that defines one song; :func:`render` is a pure function of it.

    Parameters
    ----------
    name : str
        Short unique name, e.g. ``"amber-harbour"``.
    mood : str
        One of :data:`SONGBOOK_MOODS`; the other parameters were drawn to express it.
    tempo_bpm : float
        Beats per minute (4/4 time, one chord per bar).
    key : str
        Tonic, one of :data:`~audiosim.similarity.descriptors.KEYS`.
    mode : str
        ``"major"`` or ``"minor"``.
    seed : int
        Seeds every choice not fixed here: progressions, melodies, bass and
        drum patterns, chord style, instrument details.
    seconds : float
        Length of the rendered audio.
    timbre : str
        Lead instrument, one of :data:`TIMBRES`.
    brightness : float
        0 (dark, few harmonics) to 1 (bright, many harmonics, loud hats).
    loudness_db : float
        Target RMS level of the whole song in dBFS.
    dynamics_db : float
        Level difference between the quietest and loudest sections (dB).
    drum_density : float
        0 (a kick now and then, quarter-note hats) to 1 (busy kicks, 16th hats).
    dissonance : float
        0 (diatonic) to 1 (diminished and flat-second chords, clusters,
        chromatic melody).
    reverb : float
        0 (dry) to 1 (a reverberant room, RT60 about 2 s).
    swing : float
        Delay of off-beat eighths as a fraction of a sixteenth note.
    """

    name: str
    mood: str
    tempo_bpm: float
    key: str
    mode: str
    seed: int
    seconds: float = 30.0
    timbre: str = "additive"
    brightness: float = 0.5
    loudness_db: float = -16.0
    dynamics_db: float = 4.0
    drum_density: float = 0.5
    dissonance: float = 0.0
    reverb: float = 0.2
    swing: float = 0.0

    def __post_init__(self) -> None:
        if self.mood not in SONGBOOK_MOODS:
            raise ValueError(f"mood {self.mood!r} is not one of {SONGBOOK_MOODS}")
        if self.key not in KEYS:
            raise ValueError(f"key {self.key!r} is not one of {KEYS}")
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {MODES}")
        if self.timbre not in TIMBRES:
            raise ValueError(f"timbre {self.timbre!r} is not one of {TIMBRES}")
        if not 20 <= self.tempo_bpm <= 300:
            raise ValueError(f"tempo {self.tempo_bpm} bpm is outside 20..300")
        if not self.seconds > 0:
            raise ValueError(f"seconds must be positive, not {self.seconds}")

    @property
    def tonic(self) -> int:
        """The tonic's pitch class (0 = C)."""
        return KEYS.index(self.key)

    def to_dict(self) -> dict:
        """The spec as a plain dict (JSON-serialisable)."""
        return asdict(self)


# ---------------------------------------------------------------------------
# Moods: ranges the spec parameters are drawn from, and musical vocabulary.


@dataclass(frozen=True)
class _Mood:
    tempo: tuple[float, float]
    mode: str
    loudness: tuple[float, float]
    dynamics: tuple[float, float]
    brightness: tuple[float, float]
    density: tuple[float, float]
    dissonance: tuple[float, float]
    reverb: tuple[float, float]
    swing: tuple[float, float]
    timbres: tuple[str, ...]
    rhythm: dict[int, float]  # melody note lengths in sixteenths -> weight
    rest: float  # probability that a melody note is a rest
    chord_styles: tuple[str, ...]
    bass: tuple[tuple[tuple[int, int, int], ...], ...]  # (start16, len16, semitones)
    register: int  # centre of the melody (MIDI)
    drums_level: float
    four_on_floor: bool


_E8 = tuple((2 * i, 2, 12 * (i % 2)) for i in range(8))
_PEDAL8 = tuple((2 * i, 2, 0) for i in range(8))

_MOODS: dict[str, _Mood] = {
    "energetic": _Mood(
        tempo=(138, 166), mode="major", loudness=(-12.0, -10.0), dynamics=(2.0, 4.0),
        brightness=(0.75, 1.0), density=(0.8, 1.0), dissonance=(0.0, 0.1),
        reverb=(0.05, 0.15), swing=(0.0, 0.0), timbres=("fm", "additive", "pluck"),
        rhythm={1: 3, 2: 6, 3: 1, 4: 1}, rest=0.08, chord_styles=("stab", "arp16"),
        bass=(_E8, ((0, 2, 0), (2, 2, 0), (4, 2, 12), (6, 2, 0), (8, 2, 0), (10, 2, 7), (12, 2, 12), (14, 2, 7)),
              ((0, 3, 0), (3, 3, 0), (6, 2, 12), (8, 3, 0), (11, 3, 7), (14, 2, 12))),
        register=74, drums_level=0.9, four_on_floor=True,
    ),
    "happy": _Mood(
        tempo=(108, 128), mode="major", loudness=(-15.0, -13.0), dynamics=(3.0, 5.0),
        brightness=(0.55, 0.8), density=(0.5, 0.75), dissonance=(0.0, 0.05),
        reverb=(0.1, 0.3), swing=(0.0, 0.3), timbres=("pluck", "additive", "fm"),
        rhythm={2: 6, 4: 3, 3: 1, 6: 1, 1: 1}, rest=0.12, chord_styles=("stab", "arp8", "pad"),
        bass=(((0, 4, 0), (4, 2, 7), (6, 2, 12), (8, 4, 0), (12, 4, 7)),
              ((0, 3, 0), (3, 3, 7), (6, 2, 12), (8, 4, 0), (12, 2, 4), (14, 2, 7)),
              ((0, 6, 0), (6, 2, 0), (8, 4, 7), (12, 4, 12))),
        register=74, drums_level=0.7, four_on_floor=False,
    ),
    "calm": _Mood(
        tempo=(60, 76), mode="major", loudness=(-27.0, -24.0), dynamics=(4.0, 7.0),
        brightness=(0.05, 0.3), density=(0.05, 0.2), dissonance=(0.0, 0.0),
        reverb=(0.45, 0.75), swing=(0.0, 0.0), timbres=("additive", "pluck"),
        rhythm={4: 3, 8: 3, 6: 2, 2: 1, 12: 1}, rest=0.18, chord_styles=("pad", "arp4"),
        bass=(((0, 16, 0),), ((0, 8, 0), (8, 8, 7)), ((0, 12, 0), (12, 4, 7))),
        register=69, drums_level=0.35, four_on_floor=False,
    ),
    "melancholic": _Mood(
        tempo=(64, 86), mode="minor", loudness=(-22.0, -19.0), dynamics=(4.0, 7.0),
        brightness=(0.1, 0.35), density=(0.2, 0.45), dissonance=(0.05, 0.2),
        reverb=(0.3, 0.6), swing=(0.0, 0.0), timbres=("additive", "pluck", "fm"),
        rhythm={4: 4, 2: 2, 6: 2, 8: 2, 3: 1}, rest=0.15, chord_styles=("pad", "arp8"),
        bass=(((0, 8, 0), (8, 6, 7), (14, 2, 10)), ((0, 16, 0),), ((0, 6, 0), (6, 2, 3), (8, 8, 7))),
        register=68, drums_level=0.5, four_on_floor=False,
    ),
    "tense": _Mood(
        tempo=(120, 152), mode="minor", loudness=(-15.0, -13.0), dynamics=(3.0, 6.0),
        brightness=(0.5, 0.8), density=(0.7, 0.95), dissonance=(0.6, 1.0),
        reverb=(0.1, 0.3), swing=(0.0, 0.0), timbres=("fm", "additive"),
        rhythm={1: 4, 2: 5, 3: 1, 4: 1}, rest=0.1, chord_styles=("tremolo", "stab"),
        bass=(_PEDAL8, tuple((i, 1, 0) for i in range(16)), ((0, 2, 0), (2, 2, 0), (4, 2, 1), (6, 2, 0), (8, 2, 0), (10, 2, 6), (12, 2, 0), (14, 2, 1))),
        register=70, drums_level=0.8, four_on_floor=True,
    ),
}

_MAJOR_PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 2, 3, 4),
                       (3, 0, 4, 5), (0, 3, 5, 4), (1, 4, 0, 5), (0, 4, 3, 4), (3, 4, 2, 5))
_MINOR_PROGRESSIONS = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4),
                       (3, 0, 6, 5), (0, 2, 5, 6), (5, 6, 0, 0), (0, 4, 5, 3))
# Tense progressions: (root in semitones above the tonic, quality).
_TENSE_PROGRESSIONS = (
    ((0, "min"), (1, "maj"), (11, "dim7"), (0, "min")),
    ((0, "min"), (2, "dim"), (7, "7b9"), (0, "min")),
    ((0, "min"), (6, "dim"), (5, "min"), (11, "dim7")),
    ((0, "min"), (8, "maj"), (1, "maj"), (7, "7b9")),
    ((0, "min"), (3, "aug"), (6, "dim"), (7, "7b9")),
    ((0, "dim7"), (1, "maj"), (0, "min"), (6, "dim")),
    ((5, "min"), (1, "maj"), (11, "dim7"), (0, "min")),
)
_QUALITIES = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "dim7": (0, 3, 6, 9), "7b9": (0, 4, 10, 13), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
    "7": (0, 4, 7, 10), "m7b5": (0, 3, 6, 10),
}

_ADJECTIVES = (
    "amber", "azure", "brass", "cedar", "cobalt", "copper", "coral", "crimson", "dusty", "electric",
    "emerald", "faded", "frozen", "golden", "granite", "hollow", "indigo", "iron", "ivory", "jade",
    "lunar", "marble", "midnight", "misty", "neon", "northern", "paper", "pearl", "quiet", "rusty",
    "salt", "scarlet", "silver", "slate", "solar", "stone", "velvet", "violet", "winter", "wooden",
)
_NOUNS = (
    "anchor", "arcade", "bridge", "canyon", "carousel", "comet", "compass", "delta", "engine", "ferry",
    "garden", "glacier", "harbour", "highway", "island", "kite", "lantern", "lighthouse", "meadow", "mirror",
    "orchard", "parade", "pier", "prism", "quarry", "railway", "river", "rooftop", "satellite", "signal",
    "skyline", "station", "streetcar", "summit", "tide", "tower", "valley", "voyage", "window", "zephyr",
)

# ---------------------------------------------------------------------------
# Specs


def _van_der_corput(k: int) -> float:
    """0, 1/2, 1/4, 3/4, 1/8, ...: the k-th point of a well-spread sequence in [0, 1)."""
    x, denom = 0.0, 1.0
    while k:
        denom *= 2
        k, bit = divmod(k, 2)
        x += bit / denom
    return x


def songbook_specs(n: int = 20, seconds: float = 30.0, seed: int = 0) -> list[SongSpec]:
    """Specs for ``n`` distinct songs, moods balanced (cycled in :data:`SONGBOOK_MOODS` order).

    Parameters
    ----------
    n : int
        Number of songs; each mood gets ``n // 5`` or ``n // 5 + 1`` of them.
    seconds : float
        Length of every song.
    seed : int
        Master seed: the same seed always gives the same songbook.

    Returns
    -------
    list of SongSpec
        Unique names; keys, tempi and timbres vary within each mood.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    pairs = list(itertools.product(_ADJECTIVES, _NOUNS))
    if n > len(pairs):
        raise ValueError(f"at most {len(pairs)} songs can be named")
    master = np.random.default_rng(np.random.SeedSequence([seed, 0x50B0]))
    order = master.permutation(len(pairs))
    # Within a mood, keys walk through a shuffled cycle of the 12 keys, timbres
    # rotate, and tempi follow a van der Corput sequence over the mood's range,
    # so any number of songs spreads out (and a longer songbook starts with
    # the songs of a shorter one).
    key_cycles = {m: master.permutation(12) for m in SONGBOOK_MOODS}
    timbre_offsets = {m: int(master.integers(3)) for m in SONGBOOK_MOODS}
    tempo_offsets = {m: float(master.random()) for m in SONGBOOK_MOODS}
    specs = []
    for i in range(n):
        mood = SONGBOOK_MOODS[i % len(SONGBOOK_MOODS)]
        k = i // len(SONGBOOK_MOODS)  # how many songs of this mood came before
        prof = _MOODS[mood]
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x50B0, i]))

        def draw(lo_hi: tuple[float, float], digits: int = 2, fraction: float | None = None) -> float:
            lo, hi = lo_hi
            f = rng.random() if fraction is None else fraction
            return round(float(lo + (hi - lo) * f), digits)

        tempo_fraction = (_van_der_corput(k) + tempo_offsets[mood] + 0.1 * rng.random()) % 1.0
        adjective, noun = pairs[int(order[i])]
        specs.append(
            SongSpec(
                name=f"{adjective}-{noun}",
                mood=mood,
                tempo_bpm=draw(prof.tempo, 0, tempo_fraction),
                key=KEYS[int(key_cycles[mood][k % 12])],
                mode=prof.mode,
                seed=int(rng.integers(2**31 - 1)),
                seconds=float(seconds),
                timbre=prof.timbres[(k + timbre_offsets[mood]) % len(prof.timbres)],
                brightness=draw(prof.brightness),
                loudness_db=draw(prof.loudness, 1),
                dynamics_db=draw(prof.dynamics, 1),
                drum_density=draw(prof.density),
                dissonance=draw(prof.dissonance),
                reverb=draw(prof.reverb),
                swing=draw(prof.swing),
            )
        )
    return specs


# ---------------------------------------------------------------------------
# Composition: sections, chords, melody, bass, comping and drums as note lists.


@dataclass
class _Bar:
    section: str
    pos: int  # bar index within its section
    length: int  # bars in the section
    chord: tuple[int, ...]  # semitones above the tonic, root first
    gain_db: float
    drums: float  # drum intensity 0..1
    melody: bool


# level (in units of dynamics_db below the loudest) and drum intensity per role
_ROLES = {"intro": (-1.0, 0.45), "A": (-0.5, 0.85), "B": (0.0, 1.0), "C": (-0.8, 0.4)}
_FORM = ("A", "B", "A", "C", "B", "A")


def _diatonic(scale: tuple[int, ...], degree: int, seventh: bool) -> tuple[int, ...]:
    root = scale[degree % 7]
    steps = (2, 4, 6) if seventh else (2, 4)
    return (root,) + tuple(root + (scale[(degree + s) % 7] - root) % 12 for s in steps)


def _progression(spec: SongSpec, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Four chords, each as semitones above the tonic (root first)."""
    if spec.dissonance >= 0.5:
        prog = _TENSE_PROGRESSIONS[int(rng.integers(len(_TENSE_PROGRESSIONS)))]
        chords = [tuple(r + iv for iv in _QUALITIES[q]) for r, q in prog]
    else:
        scale = _MAJOR if spec.mode == "major" else _MINOR
        pool = _MAJOR_PROGRESSIONS if spec.mode == "major" else _MINOR_PROGRESSIONS
        degrees = pool[int(rng.integers(len(pool)))]
        p7 = {"calm": 0.5, "happy": 0.25, "melancholic": 0.4}.get(spec.mood, 0.0)
        chords = []
        for d in degrees:
            chord = _diatonic(scale, d, bool(rng.random() < p7))
            if spec.mode == "minor" and d == 4 and rng.random() < 0.5 + spec.dissonance:
                chord = (chord[0], chord[0] + 4) + chord[2:]  # harmonic-minor V
            chords.append(chord)
    if spec.dissonance > 0 and rng.random() < spec.dissonance:
        # one chord of the four gets a cluster tone (minor second or tritone)
        i = int(rng.integers(4))
        chords[i] = chords[i] + (chords[i][0] + (1 if rng.random() < 0.5 else 6),)
    return chords


def _plan(spec: SongSpec, prof: _Mood, rng: np.random.Generator, n_bars: int) -> list[_Bar]:
    bar_s = 240.0 / spec.tempo_bpm
    phrase = 8 if bar_s < 2.6 else 4
    sections = [("intro", 1 if bar_s >= 2.0 else 2)]
    while sum(length for _, length in sections) < n_bars:
        sections.append((_FORM[(len(sections) - 1) % len(_FORM)], phrase))
    progressions: dict[str, list[tuple[int, ...]]] = {}
    bars = []
    for role, length in sections:
        key = "A" if role == "intro" else role
        if key not in progressions or rng.random() < 0.25:
            progressions[key] = _progression(spec, rng)
        prog = progressions[key]
        level, drums = _ROLES[role]
        swell = rng.uniform(-0.15, 0.15)
        for pos in range(length):
            gain = spec.dynamics_db * (level + swell)
            if role == "B" and length > 1:  # crescendo through the chorus
                gain -= 0.3 * spec.dynamics_db * (1 - pos / (length - 1))
            bars.append(_Bar(role, pos, length, prog[pos % len(prog)], gain, drums, role != "intro"))
    return bars[:n_bars]


def _choose(rng: np.random.Generator, weights: dict[int, float]) -> int:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _rhythm(rng: np.random.Generator, prof: _Mood, cadence: bool) -> list[tuple[int, int]]:
    """(start, length) in sixteenths filling one bar."""
    out, t = [], 0
    while t < 16:
        d = min(_choose(rng, prof.rhythm), 16 - t)
        if cadence and t >= 8:
            d = 16 - t
        out.append((t, d))
        t += d
    return out


def _mutate_rhythm(rng: np.random.Generator, rhythm: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for start, d in rhythm:
        r = rng.random()
        if d >= 2 and d % 2 == 0 and r < 0.25:  # split
            out += [(start, d // 2), (start + d // 2, d // 2)]
        elif out and r > 0.85:  # merge into the previous note
            ps, pd = out[-1]
            out[-1] = (ps, pd + d)
        else:
            out.append((start, d))
    return out


def _melody(
    spec: SongSpec, prof: _Mood, rng: np.random.Generator, bars: list[_Bar]
) -> list[tuple[int, int, int, float]]:
    """Melody notes as (start16 from song start, length16, midi, velocity)."""
    scale = _MAJOR if spec.mode == "major" else _MINOR
    lo, hi = prof.register - 9, prof.register + 10
    allowed = np.array([m for m in range(lo, hi + 1) if (m - spec.tonic) % 12 in scale])
    Note = tuple[int, int, int, float]
    notes: list[Note] = []
    memory: dict[str, list[tuple[tuple[int, ...], list[Note]]]] = {}  # role -> (chord, notes) per bar
    idx = len(allowed) // 2
    motif: list[tuple[int, int]] = []
    current: list[tuple[tuple[int, ...], list[Note]]] = []
    for b, bar in enumerate(bars):
        if bar.pos == 0:
            current = []
        if not bar.melody:
            current.append((bar.chord, []))
            continue
        chord_pcs = {(spec.tonic + c) % 12 for c in bar.chord}
        chord_idx = [i for i, m in enumerate(allowed) if m % 12 in chord_pcs] or list(range(len(allowed)))
        previous = memory.get(bar.section)
        bar_notes: list[Note] = []
        if previous is not None and bar.pos < len(previous) and previous[bar.pos][0] == bar.chord:
            # a repeated section over the same chords: the old bar, mutated
            for start, d, midi, vel in previous[bar.pos][1]:
                r = rng.random()
                if r < 0.3:
                    j = int(np.searchsorted(allowed, midi)) + int(rng.choice([-2, -1, 1, 2]))
                    midi = int(allowed[min(max(j, 0), len(allowed) - 1)])
                elif r < 0.4 and d >= 2:
                    h = d // 2
                    bar_notes.append((start, h, midi, vel))
                    j = int(np.searchsorted(allowed, midi)) + int(rng.choice([-1, 1]))
                    start, d, midi = start + h, d - h, int(allowed[min(max(j, 0), len(allowed) - 1)])
                bar_notes.append((start, d, midi, vel * rng.uniform(0.9, 1.1)))
        else:
            phrase_pos = bar.pos % 4
            if phrase_pos == 0 or not motif:
                motif = _rhythm(rng, prof, cadence=False)
                rhythm = motif
            elif phrase_pos == 1:
                rhythm = _mutate_rhythm(rng, motif)
            else:
                rhythm = _rhythm(rng, prof, cadence=phrase_pos == 3)
            for start, d in rhythm:
                if rng.random() < prof.rest and start > 0:
                    continue
                strong = start % 4 == 0
                step = int(rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]))
                idx = min(max(idx + step, 0), len(allowed) - 1)
                if strong or d >= 4:
                    idx = min(chord_idx, key=lambda i: (abs(i - idx), i))
                midi = int(allowed[idx])
                if not strong and rng.random() < spec.dissonance * 0.35:
                    midi += int(rng.choice([-1, 1]))  # chromatic neighbour
                if spec.dissonance > 0.5 and rng.random() < 0.08:
                    midi += 6 if midi + 6 <= hi else -6  # tritone leap
                vel = (0.85 if strong else 0.7) * rng.uniform(0.85, 1.15)
                bar_notes.append((start, d, midi, vel))
                # drift back towards the middle of the range
                if idx < 2 or idx > len(allowed) - 3:
                    idx += 2 if idx < 2 else -2
        current.append((bar.chord, bar_notes))
        if bar.pos == bar.length - 1 or b == len(bars) - 1:
            memory[bar.section] = current
        if bar.section == "C":  # breakdown: an octave down, softer
            bar_notes = [(s, d, m - 12 if m - 12 >= lo - 5 else m, v * 0.8) for s, d, m, v in bar_notes]
        notes += [(16 * b + s, d, m, v) for s, d, m, v in bar_notes]
    return notes


def _bass(spec: SongSpec, prof: _Mood, rng: np.random.Generator, bars: list[_Bar]) -> list[tuple[int, int, int, float]]:
    notes = []
    for b, bar in enumerate(bars):
        root = 36 + (spec.tonic + bar.chord[0]) % 12
        if root > 45:
            root -= 12
        pattern = prof.bass[int(rng.integers(len(prof.bass)))]
        if bar.section == "intro" and len(pattern) > 4:
            pattern = ((0, 8, 0), (8, 8, 0))
        for start, d, iv in pattern:
            vel = (0.9 if start % 4 == 0 else 0.75) * rng.uniform(0.9, 1.1)
            notes.append((16 * b + start, d, root + iv, vel))
        # approach the next chord's root from a step above or below
        if b + 1 < len(bars) and len(pattern) > 1 and rng.random() < 0.35:
            nxt = 36 + (spec.tonic + bars[b + 1].chord[0]) % 12
            nxt -= 12 if nxt > 45 else 0
            s, d, m, v = notes[-1]
            if d >= 2:
                notes[-1] = (s, d - 1, m, v)
                notes.append((s + d - 1, 1, nxt + int(rng.choice([-1, 1, 2])), v))
    return notes


def _voicing(spec: SongSpec, chord: tuple[int, ...], low: int, spread: bool) -> list[int]:
    """The chord's notes in the octave from MIDI ``low`` (close voicing), or with
    the second-highest note dropped an octave (``spread``)."""
    notes = sorted({low + (spec.tonic + c - low) % 12 for c in chord})
    if spread and len(notes) >= 3:
        notes = sorted(notes[:-2] + [notes[-2] - 12] + notes[-1:])
    return notes


def _comping(
    spec: SongSpec, prof: _Mood, rng: np.random.Generator, bars: list[_Bar]
) -> tuple[str, list[tuple[int, int, tuple[int, ...], float]]]:
    """Chord events (start16, length16, midi notes, velocity) and the song's style.

    Sustained (pad) chords, in any style, are the events of 16 sixteenths.
    """
    style = prof.chord_styles[int(rng.integers(len(prof.chord_styles)))]
    low, spread = int(rng.integers(50, 60)), bool(rng.random() < 0.5)  # this song's voicing
    stabs = ((2, 6, 10, 14), (0, 3, 6, 10, 12), (0, 4, 6, 8, 12, 14), (3, 6, 11, 14), (0, 6, 8, 14))
    arp_orders = ("up", "down", "updown", "random")
    events = []
    for b, bar in enumerate(bars):
        voice = _voicing(spec, bar.chord, low, spread)
        base = 16 * b
        bar_style = "pad" if bar.section in ("intro", "C") and style != "tremolo" else style
        if bar_style == "pad":
            events.append((base, 16, tuple(voice), 0.6))
            if bar.section == "intro":  # a broken chord over the pad: intros are not bare
                tones = [voice[0] + 12, *voice[1:], voice[0] + 24][::-1 if rng.random() < 0.5 else 1]
                step = 2 if spec.tempo_bpm < 100 else 4
                for j, h in enumerate(range(0, 16, step)):
                    events.append((base + h, step, (tones[j % len(tones)],), 0.5 * rng.uniform(0.85, 1.1)))
        elif bar_style == "stab":
            hits = stabs[int(rng.integers(len(stabs)))]
            for h in hits:
                events.append((base + h, 2 if spec.mood == "tense" else 1, tuple(voice), 0.8 * rng.uniform(0.85, 1.1)))
        elif bar_style == "tremolo":
            for h in range(16):
                accent = 1.0 if h % 4 == 0 else 0.6
                events.append((base + h, 1, tuple(voice), accent * rng.uniform(0.85, 1.1)))
        else:  # arpeggios
            step = {"arp16": 1, "arp8": 2}.get(bar_style, 4)
            tones = voice + [voice[0] + 12]
            order = arp_orders[int(rng.integers(len(arp_orders)))]
            seq = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}.get(order)
            if seq is None:
                seq = [tones[int(i)] for i in rng.integers(len(tones), size=16)]
            for j, h in enumerate(range(0, 16, step)):
                events.append((base + h, step, (seq[j % len(seq)],), 0.75 * rng.uniform(0.85, 1.1)))
    return style, events


def _drums(
    spec: SongSpec, prof: _Mood, rng: np.random.Generator, bars: list[_Bar]
) -> dict[str, list[tuple[int, float]]]:
    """Hits per drum: (sixteenth from song start, velocity)."""
    hits: dict[str, list[tuple[int, float]]] = {"kick": [], "snare": [], "hat": [], "open": []}
    for b, bar in enumerate(bars):
        d = spec.drum_density * bar.drums
        base = 16 * b
        kick = np.zeros(16)
        kick[0] = 1.0 if d > 0.08 else 0.7
        kick[8] = 1.0 if d > 0.25 else 0.35 * (d > 0.05)
        if prof.four_on_floor and d > 0.6:
            kick[[4, 12]] = 1.0
        if d > 0.3:
            kick[[3, 6, 10, 11, 14]] += 0.35 * d
        snare = np.zeros(16)
        if d >= 0.25:
            snare[[4, 12]] = 1.0
            snare[1::2] = 0.12 * d
        elif d > 0.1:
            snare[12] = 0.5
        hat_step = 4 if d < 0.3 else 2 if d < 0.6 else 1
        hat = np.zeros(16)
        hat[::hat_step] = 0.93 if d > 0.05 else 0.5
        last = bar.pos == bar.length - 1 and bar.section != "intro"
        fill = last and d > 0.4 and rng.random() < 0.7
        if fill:
            snare[12:] = 1.0
            hat[12:] = 0.0
        fire = {name: rng.random(16) < p for name, p in (("kick", kick), ("snare", snare), ("hat", hat))}
        for step in range(16):
            if fire["kick"][step]:
                hits["kick"].append((base + step, (1.0 if step % 4 == 0 else 0.8) * rng.uniform(0.9, 1.05)))
            if fire["snare"][step]:
                v = 1.0 if step in (4, 12) else 0.35
                if fill and step > 12:
                    v = 0.6 + 0.1 * (step - 12)
                hits["snare"].append((base + step, v * rng.uniform(0.85, 1.05)))
            if fire["hat"][step]:
                accent = 1.0 if step % 4 == 0 else 0.75 if step % 2 == 0 else 0.55
                if step == 14 and d > 0.5 and rng.random() < 0.3:
                    hits["open"].append((base + step, 0.8 * rng.uniform(0.85, 1.05)))
                else:
                    hits["hat"].append((base + step, accent * rng.uniform(0.8, 1.1)))
    return hits


# ---------------------------------------------------------------------------
# Synthesis


_TABLE_BITS = 13
_TABLE_SIZE = 1 << _TABLE_BITS
_SINE = np.sin(2 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE).astype(np.float32)


def _midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


@dataclass(frozen=True)
class _Voice:
    timbre: str  # additive, fm, pluck
    recipe: tuple[float, ...]  # harmonic amplitudes (additive)
    attack: float
    decay: float
    sustain: float
    release: float
    fm_ratio: float = 1.0
    fm_index: float = 0.0
    vibrato: float = 0.0  # relative frequency deviation
    pluck_t60: float = 1.5
    pluck_damp: float = 0.5


class _Synth:
    """Renders note lists into a buffer; caches wavetables, envelopes and plucks."""

    def __init__(self, sample_rate: int, n_total: int, rng: np.random.Generator):
        self.sr = sample_rate
        self.n = n_total
        self.rng = rng
        self._tables: dict[tuple, np.ndarray] = {}
        self._t = np.zeros(0)

    def time(self, m: int) -> np.ndarray:
        if self._t.shape[0] < m:
            self._t = np.arange(max(m, 2 * self._t.shape[0])) / self.sr
        return self._t[:m]

    def table(self, recipe: tuple[float, ...], freq: float) -> np.ndarray:
        nh = max(1, min(len(recipe), int(0.45 * self.sr / freq)))
        key = (recipe, nh)
        tab = self._tables.get(key)
        if tab is None:
            ph = 2 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE
            amps = np.array(recipe[:nh])
            tab = (amps[:, None] * np.sin(np.arange(1, nh + 1)[:, None] * ph)).sum(0)
            tab = (tab / np.abs(tab).max()).astype(np.float32)
            self._tables[key] = tab
        return tab

    def envelope(self, v: _Voice, m: int, held: int) -> np.ndarray:
        t = self.time(m)
        env = np.minimum(t * (1.0 / v.attack), 1.0)
        env *= v.sustain + (1 - v.sustain) * np.exp(-np.maximum(t - v.attack, 0) * (1.0 / v.decay))
        if m > held:
            env[held:] *= np.exp(-(t[held:] - t[held]) * (6.9 / v.release))
        return env

    def wave(self, v: _Voice, freq: float, m: int) -> np.ndarray:
        t = self.time(m)
        phase0 = self.rng.random()
        if v.timbre == "fm":
            mod = _SINE[((v.fm_ratio * freq * t + phase0) * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)]
            index = v.fm_index * (0.35 + 0.65 * np.exp(-t * 6.0))
            cyc = freq * t + phase0 + index * mod * (1 / (2 * np.pi))
            return _SINE[(cyc * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)]
        cyc = freq * t + phase0
        if v.vibrato:
            rate = 5.0
            lfo = _SINE[((rate * t + 0.75) * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)]
            cyc = cyc + (v.vibrato * freq / (2 * np.pi * rate)) * (1 + lfo) * np.minimum(t * 2.0, 1.0)
        tab = self.table(v.recipe, freq)
        return tab[(cyc * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)]

    def pluck(self, v: _Voice, freq: float, m: int) -> np.ndarray:
        """Karplus-Strong: a noise burst in a delay line with a damped two-tap average,
        computed one period at a time (each period depends only on the previous one)."""
        period = max(2, int(round(self.sr / freq - v.pluck_damp)))
        y = np.zeros(m + period + 1)
        burst = self.rng.uniform(-1, 1, period + 1)
        # darker plucks start from a smoother burst
        for _ in range(int(round(3 * (1 - v.pluck_damp)))):
            burst = 0.5 * (burst + np.roll(burst, 1))
        y[: period + 1] = burst - burst.mean()
        rho = 10 ** (-3 * period / (self.sr * v.pluck_t60))
        a, b = rho * (1 - v.pluck_damp), rho * v.pluck_damp
        k = period + 1
        while k < y.shape[0]:
            j = min(k + period, y.shape[0])
            y[k:j] = a * y[k - period : j - period] + b * y[k - period - 1 : j - period - 1]
            k = j
        out = y[period + 1 :]
        return out / (np.abs(out[: min(m, 4 * period)]).max() + 1e-9)

    def render(self, v: _Voice, notes: list[tuple[float, float, tuple[float, ...], float]], level: float) -> np.ndarray:
        """Sum notes (onset s, held s, midi pitches, velocity) into a float32 buffer."""
        out = np.zeros(self.n, np.float32)
        rel = int(v.release * self.sr)
        spans = []  # (start, held, length) in samples
        for onset, held, _, _ in notes:
            s = int(round(onset * self.sr))
            h = max(1, int(held * self.sr))
            m = min(h + rel, self.n - s)
            spans.append((s, min(h, m), m))
        strings: dict[float, np.ndarray] = {}
        if v.timbre == "pluck":
            # one plucked string per pitch, as long as its longest note, reused
            longest: dict[float, int] = {}
            for (s, _, m), (_, _, pitches, _) in zip(spans, notes):
                for p in pitches:
                    longest[p] = max(longest.get(p, 0), m)
            strings = {p: self.pluck(v, _midi_hz(p), m).astype(np.float32) for p, m in sorted(longest.items()) if m > 0}
        for (s, h, m), (_, _, pitches, vel) in zip(spans, notes):
            if s >= self.n or s < 0 or m <= 0:
                continue
            if v.timbre == "pluck":
                env = np.minimum(self.time(m) * 500.0, 1.0)
                if m > h:
                    env[h:] *= np.exp(-(self.time(m - h)) * (6.9 / v.release))
            else:
                env = self.envelope(v, m, h)
            sig = np.zeros(m, np.float32)
            for p in pitches:
                f = _midi_hz(p)
                sig += strings[p][:m] if v.timbre == "pluck" else self.wave(v, f, m)
            out[s : s + m] += (level * vel / math.sqrt(len(pitches))) * env * sig
        return out


def _recipe(rng: np.random.Generator, brightness: float, n: int = 16) -> tuple[float, ...]:
    """Harmonic amplitudes: 1/h**p (smaller p = brighter), some odd/even colour, jitter."""
    h = np.arange(1, n + 1)
    p = 2.6 - 1.8 * brightness
    amps = h ** -p * rng.uniform(0.7, 1.3, n)
    amps[1::2] *= rng.uniform(0.3, 1.0)  # even harmonics
    amps[0] = 1.0
    return tuple(float(round(a, 6)) for a in amps)


def _kit(rng: np.random.Generator, sr: int, brightness: float) -> dict[str, np.ndarray]:
    """One-shot drum samples: pitched-down sine kick, noise+tone snare, noise hats."""
    t = np.arange(int(0.4 * sr)) / sr
    f_end, f_start = rng.uniform(42, 58), rng.uniform(110, 170)
    freq = f_end + (f_start - f_end) * np.exp(-t / 0.035)
    kick = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / rng.uniform(0.12, 0.22))
    kick[: int(0.003 * sr)] += rng.uniform(-0.3, 0.3, int(0.003 * sr))

    def band(noise: np.ndarray, lo: float, hi: float) -> np.ndarray:
        spec = np.fft.rfft(noise)
        f = np.fft.rfftfreq(noise.shape[0], 1 / sr)
        spec[(f < lo) | (f > hi)] = 0
        return np.fft.irfft(spec, noise.shape[0])

    ts = t[: int(0.25 * sr)]
    noise = band(rng.standard_normal(ts.shape[0]), 900, min(8000, 0.45 * sr))
    snare = 0.5 * noise / (np.abs(noise).max() + 1e-9) * np.exp(-ts / rng.uniform(0.05, 0.09))
    snare += 0.6 * np.sin(2 * np.pi * rng.uniform(170, 230) * ts) * np.exp(-ts / 0.04)
    hats = {}
    for name, length, tau in (("hat", 0.08, rng.uniform(0.012, 0.025)), ("open", 0.35, rng.uniform(0.1, 0.16))):
        th = t[: int(length * sr)]
        lo = min(6000.0, 0.3 * sr)
        x = band(rng.standard_normal(th.shape[0]), lo, 0.49 * sr)
        hats[name] = (0.4 + 0.6 * brightness) * x / (np.abs(x).max() + 1e-9) * np.exp(-th / tau)
    return {"kick": kick / np.abs(kick).max(), "snare": snare / np.abs(snare).max(), **hats}


def _fast_len(n: int) -> int:
    """Smallest 2**a * 3**b * 5**c >= n (a size numpy's FFT handles quickly)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35 << max(0, (-(-n // p35) - 1).bit_length())
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _reverb(x: np.ndarray, sr: int, amount: float, rng: np.random.Generator) -> np.ndarray:
    """A small room: convolution with darkened, exponentially decaying noise.

    The (dark) reverberation is computed at a rate near 11 kHz and held back
    up, which keeps the FFTs small.
    """
    if amount <= 0:
        return x
    q = max(1, sr // 11025)
    rate = sr / q
    rt60 = 0.4 + 1.6 * amount
    t = np.arange(int(min(rt60, 1.5) * rate)) / rate
    ir = rng.standard_normal(t.shape[0]) * np.exp(-6.9 * t / rt60)
    for _ in range(3):  # darken
        ir[1:] = 0.5 * (ir[1:] + ir[:-1])
    ir[: int(0.012 * rate)] = 0.0  # pre-delay
    ir *= 0.6 * amount / np.sqrt(np.sum(ir**2))
    m = x.shape[0] // q
    low = x[: m * q].reshape(m, q).mean(axis=1)
    n = _fast_len(m + ir.shape[0])
    wet = np.fft.irfft(np.fft.rfft(low, n) * np.fft.rfft(ir, n), n)[:m].astype(np.float32)
    if q > 1:
        wet = np.repeat(wet, q)
        wet[1:] = 0.5 * (wet[1:] + wet[:-1])
    out = x.copy()
    out[: wet.shape[0]] += wet
    return out


def render(spec: SongSpec, sample_rate: int = 22050) -> np.ndarray:
    """Synthesise a song.

    Parameters
    ----------
    spec : SongSpec
        The song; together with ``sample_rate`` it fully determines the output.
    sample_rate : int
        Output rate in Hz. Harmonics above 0.45 x the rate are left out; the
        notes and arrangement are the same at every rate (noise bursts and
        phases are drawn per rate, so the samples are not a resampling).

    Returns
    -------
    ndarray, shape (round(spec.seconds * sample_rate),), float32
        Mono samples, peak at most 1, overall RMS near ``spec.loudness_db``
        dBFS (the peaks of loud songs are soft-clipped).
    """
    sr = int(sample_rate)
    prof = _MOODS[spec.mood]
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, sr]))
    comp = np.random.default_rng(spec.seed)  # composition does not depend on the rate
    n_out = int(round(spec.seconds * sr))
    sixteenth = 15.0 / spec.tempo_bpm
    n_bars = int(math.ceil(spec.seconds / (16 * sixteenth))) + 1
    bars = _plan(spec, prof, comp, n_bars)
    melody = _melody(spec, prof, comp, bars)
    bass = _bass(spec, prof, comp, bars)
    style, chords = _comping(spec, prof, comp, bars)
    drums = _drums(spec, prof, comp, bars)
    gains = np.array([10 ** (bar.gain_db / 20) for bar in bars])
    jitter = comp.normal(0, 0.004, 4096)  # human timing, in seconds

    def when(step: int) -> float:
        t = step * sixteenth
        if step % 4 == 2:
            t += spec.swing * sixteenth
        return max(0.0, t + float(jitter[step % jitter.shape[0]]))

    def gain(step: int) -> float:
        return float(gains[min(step // 16, len(gains) - 1)])

    # instruments
    b = spec.brightness
    dark = spec.mood in ("calm", "melancholic")
    lead = _Voice(
        timbre=spec.timbre,
        recipe=_recipe(comp, b),
        attack=0.04 if dark else 0.008,
        decay=comp.uniform(0.2, 0.6),
        sustain=0.6 if dark else 0.45,
        release=0.35 if dark else 0.12,
        fm_ratio=float(comp.choice([1.0, 2.0, 3.0])),
        fm_index=0.6 + 3.5 * b,
        vibrato=0.004 if dark else 0.0,
        pluck_t60=1.2 + 1.5 * (1 - b),
        pluck_damp=0.5 - 0.25 * b,
    )
    pad_voice = _Voice(
        timbre="additive", recipe=_recipe(comp, 0.5 * b, 10), attack=0.25, decay=comp.uniform(0.5, 1.0),
        sustain=0.8, release=0.5,
    )
    chord_voice = _Voice(
        timbre="pluck" if style.startswith("arp") and comp.random() < 0.5 else "additive",
        recipe=_recipe(comp, 0.6 * b, 10),
        attack=0.006,
        decay=comp.uniform(0.3, 0.8),
        sustain=0.3,
        release=0.08,
        pluck_t60=1.0 + (1 - b),
        pluck_damp=0.5 - 0.2 * b,
    )
    bass_voice = _Voice(
        timbre=str(comp.choice(["additive", "fm", "pluck"])),
        recipe=_recipe(comp, 0.3 + 0.4 * b, 8),
        attack=0.006,
        decay=comp.uniform(0.15, 0.4),
        sustain=0.5,
        release=0.06,
        fm_ratio=1.0,
        fm_index=0.8 + 1.2 * b,
        pluck_t60=3.0,
        pluck_damp=0.45,
    )
    syn = _Synth(sr, n_out + int(0.5 * sr), rng)
    mix = syn.render(
        lead, [(when(s), d * sixteenth, (m,), v * gain(s)) for s, d, m, v in melody], 0.55
    )
    mix += syn.render(
        bass_voice, [(when(s), d * sixteenth * 0.9, (m,), v * gain(s)) for s, d, m, v in bass], 0.5
    )
    pads = [(when(s), d * sixteenth, ms, v * gain(s)) for s, d, ms, v in chords if d >= 16]
    mix += syn.render(pad_voice, pads, 0.3)
    mix += syn.render(
        chord_voice,
        [(when(s), d * sixteenth * (1.0 if d >= 4 else 0.7), ms, v * gain(s)) for s, d, ms, v in chords if d < 16],
        0.32,
    )
    kit = _kit(rng, sr, b)
    for name, level in (("kick", 0.9), ("snare", 0.6), ("hat", 0.22), ("open", 0.2)):
        sample = (prof.drums_level * level * kit[name]).astype(np.float32)
        for step, vel in drums[name]:
            s = int(round(when(step) * sr))
            if 0 <= s < mix.shape[0]:
                m = min(sample.shape[0], mix.shape[0] - s)
                mix[s : s + m] += (vel * gain(step)) * sample[:m]
    mix = _reverb(mix, sr, spec.reverb, rng)[:n_out]
    # fades, level, soft clip
    fade_in, fade_out = min(int(0.01 * sr), n_out), min(int(0.8 * sr), n_out // 4)
    mix[:fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)
    if fade_out:
        mix[n_out - fade_out :] *= (0.5 + 0.5 * np.cos(np.linspace(0, np.pi, fade_out))).astype(np.float32)
    rms = float(np.sqrt(np.mean(mix.astype(np.float64) ** 2))) or 1.0
    mix *= np.float32(10 ** (spec.loudness_db / 20) / rms)
    return np.tanh(mix).astype(np.float32)


# ---------------------------------------------------------------------------
# Files


def _wav_bytes(samples: np.ndarray, sample_rate: int, spec: SongSpec) -> bytes:
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", sample_rate, 1, subtype="PCM_16", format="WAV") as f:
        f.title = spec.name
        f.artist = "audiosim songbook"
        f.album = "audiosim songbook"
        f.write(samples)
    return buf.getvalue()


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` to ``path`` unless it already holds exactly that."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    atomic_write_bytes(path, data)
    return True


_CSV_FIELDS = ("file", "name", "mood", "tempo", "key", "mode", "timbre", "seconds", "loudness_db", "seed")


def write_songbook(
    folder: str | Path, n: int = 20, seconds: float = 30.0, sample_rate: int = 22050, seed: int = 0
) -> list[Path]:
    """Render the songbook into ``folder`` as 16-bit WAV files plus ``songbook.csv``.

    Files are named ``<nn>-<name>.wav`` (``nn`` from 01). A file that already
    holds exactly the bytes it would get is left untouched (not even its
    modification time changes), so running this twice is cheap on the disk
    and harmless; anything else is written to a temporary name and renamed.

    Parameters
    ----------
    folder : str or Path
        Created if missing.
    n, seconds, seed
        Passed to :func:`songbook_specs`.
    sample_rate : int
        Rate of the WAV files.

    Returns
    -------
    list of Path
        The WAV files, in songbook order.

    Notes
    -----
    ``songbook.csv`` has the columns ``file, name, mood, tempo, key, mode,
    timbre, seconds, loudness_db, seed``; the mood column is the known label.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    specs = songbook_specs(n=n, seconds=seconds, seed=seed)
    paths, rows = [], []
    width = max(2, len(str(len(specs))))
    for i, spec in enumerate(specs, start=1):
        path = out / f"{i:0{width}d}-{spec.name}.wav"
        _write_if_changed(path, _wav_bytes(render(spec, sample_rate), sample_rate, spec))
        paths.append(path)
        rows.append(
            {
                "file": path.name, "name": spec.name, "mood": spec.mood, "tempo": f"{spec.tempo_bpm:g}",
                "key": spec.key, "mode": spec.mode, "timbre": spec.timbre, "seconds": f"{spec.seconds:g}",
                "loudness_db": f"{spec.loudness_db:g}", "seed": str(spec.seed),
            }
        )
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_if_changed(out / CSV_NAME, text.getvalue().encode())
    return paths


def read_songbook(folder: str | Path) -> list[dict[str, str]]:
    """Rows of ``<folder>/songbook.csv`` as written by :func:`write_songbook`."""
    with open(Path(folder) / CSV_NAME, newline="") as f:
        return list(csv.DictReader(f))


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m audiosim.demo.songbook", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    paths = write_songbook(args.folder, args.n, args.seconds, args.sample_rate, args.seed)
    print(f"{len(paths)} songs in {args.folder} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
