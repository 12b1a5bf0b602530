"""The synthetic songbook: deterministic, distinct, moods built in, files idempotent."""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter

import numpy as np
import pytest
import torch

from audiosim.config import FeatureConfig
from audiosim.demo import songbook
from audiosim.demo.songbook import (
    SONGBOOK_MOODS,
    SongSpec,
    render,
    songbook_specs,
    write_songbook,
)
from audiosim.signal import audio
from audiosim.signal import features as F

C = FeatureConfig()


def rms_db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.square(x, dtype=np.float64))) + 1e-20)


def onset_rate(x: np.ndarray, sr: int, threshold_db: float = 3.0) -> float:
    """Onsets per second: peaks of the mean rise in dB over the spectrum.

    The spectrum is floored 70 dB below its maximum, so the measure does not
    depend on the song's level.
    """
    n, hop = 1024, 256
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    db = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)) + 1e-12)
    db = np.maximum(db, db.max() - 70)
    flux = np.maximum(np.diff(db, axis=0), 0).mean(axis=1)
    peaks = np.flatnonzero((flux[1:-1] > flux[:-2]) & (flux[1:-1] >= flux[2:]) & (flux[1:-1] > threshold_db)) + 1
    count, last = 0, -(10**9)
    for p in peaks:  # at most one onset per 50 ms
        if (p - last) * hop / sr >= 0.05:
            count, last = count + 1, p
    return count / (x.shape[0] / sr)


def unit_segments(x: np.ndarray, sr: int, hop_frames: int) -> torch.Tensor:
    """Mean-removed, L2-normalised 1 s log-mel segments of the audible parts."""
    y = audio.resample(x, sr, C.sample_rate)
    lm = F.log_mel(torch.from_numpy(y))
    segs = F.normalise(F.segments(lm, F.audible_segments(lm, hop_frames)))
    flat = segs.reshape(segs.shape[0], -1)
    return flat / flat.norm(dim=1, keepdim=True)


# ---------------------------------------------------------------------------
# Specs


def test_specs_are_deterministic_unique_and_seeded():
    a, b = songbook_specs(), songbook_specs()
    assert a == b
    assert len(a) == 20
    assert len({s.name for s in a}) == 20
    assert len({s.seed for s in a}) == 20
    other = songbook_specs(seed=1)
    assert [s.name for s in other] != [s.name for s in a]
    assert songbook_specs(n=0) == []
    assert songbook_specs(n=7) == a[:7]  # a longer songbook starts with a shorter one
    assert [dataclasses.replace(x, seconds=30.0) for x in songbook_specs(seconds=5.0)] == a


@pytest.mark.parametrize("n", [5, 7, 20, 23])
def test_moods_are_balanced(n):
    counts = Counter(s.mood for s in songbook_specs(n=n))
    assert set(counts) <= set(SONGBOOK_MOODS)
    assert max(counts.values()) - min(counts.get(m, 0) for m in SONGBOOK_MOODS) <= 1
    assert sum(counts.values()) == n


def test_moods_are_built_into_the_parameters():
    specs = songbook_specs(n=40)
    by = {m: [s for s in specs if s.mood == m] for m in SONGBOOK_MOODS}
    tempo = {m: [s.tempo_bpm for s in by[m]] for m in SONGBOOK_MOODS}
    loud = {m: [s.loudness_db for s in by[m]] for m in SONGBOOK_MOODS}
    assert min(tempo["energetic"]) > max(tempo["happy"]) > max(tempo["calm"])
    assert min(tempo["happy"]) > max(tempo["melancholic"])
    assert min(loud["energetic"]) > max(loud["calm"]) + 10
    assert min(loud["tense"]) > max(loud["melancholic"])
    assert {s.mode for m in ("energetic", "happy", "calm") for s in by[m]} == {"major"}
    assert {s.mode for m in ("melancholic", "tense") for s in by[m]} == {"minor"}
    assert min(s.dissonance for s in by["tense"]) > max(s.dissonance for m in SONGBOOK_MOODS if m != "tense" for s in by[m])
    assert max(s.drum_density for s in by["calm"]) < min(s.drum_density for s in by["energetic"])
    assert max(s.brightness for s in by["melancholic"]) < min(s.brightness for s in by["energetic"])
    # variety within a mood: keys, tempi and timbres differ
    for m in SONGBOOK_MOODS:
        assert len({s.key for s in by[m]}) >= 6, m
        assert len(set(tempo[m])) >= 5, m
        assert len({s.timbre for s in by[m]}) >= 2, m


def test_spec_validation_and_immutability():
    good = songbook_specs(n=1)[0]
    for change in ({"mood": "angry"}, {"key": "H"}, {"mode": "dorian"}, {"timbre": "kazoo"},
                   {"tempo_bpm": 0.0}, {"seconds": 0.0}):
        with pytest.raises(ValueError):
            dataclasses.replace(good, **change)
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.tempo_bpm = 100.0  # type: ignore[misc]
    assert SongSpec(**good.to_dict()) == good
    assert good.tonic == songbook.KEYS.index(good.key)


# ---------------------------------------------------------------------------
# Rendering


def test_render_is_deterministic_and_well_formed():
    spec = songbook_specs(n=3, seconds=6.0)[2]
    a, b = render(spec), render(spec)
    assert a.tobytes() == b.tobytes()
    assert a.dtype == np.float32 and a.shape == (6 * 22050,)
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0
    assert abs(rms_db(a) - spec.loudness_db) < 3
    low = render(spec, sample_rate=8000)
    assert low.shape == (6 * 8000,) and np.abs(low).max() <= 1.0


def test_every_mood_renders_at_its_level_with_peaks_at_most_one():
    for spec in songbook_specs(n=10, seconds=8.0):
        x = render(spec, 16000)
        assert np.abs(x).max() <= 1.0, spec.name
        assert abs(rms_db(x) - spec.loudness_db) < 3, spec.name


@pytest.mark.slow
def test_songs_are_distinct_everywhere():
    """No 1 s passage of one song is nearly identical to any passage of another."""
    sr = 16000
    specs = songbook_specs(n=20, seconds=12.0)
    segs = [unit_segments(render(s, sr), sr, hop_frames=16) for s in specs]
    for s, g in zip(specs, segs):
        assert g.shape[0] >= 40, s.name  # almost everything is audible
    everything = torch.cat(segs)
    song = torch.repeat_interleave(torch.arange(len(segs)), torch.tensor([g.shape[0] for g in segs]))
    similarity = everything @ everything.T
    similarity[song[:, None] == song[None, :]] = -1.0  # only pairs from different songs
    worst = float(similarity.max())
    assert worst < 0.97, worst
    # and the same measure does find a song in itself
    assert float((segs[0] @ segs[0].T).diagonal().min()) > 0.999


def test_songs_are_not_loops_of_one_bar():
    """Content changes from bar to bar: a segment and the one a bar later differ.

    The song's average spectrum is removed first so that only what changes
    counts; a one-bar loop cut from the same songs scores above 0.95.
    """
    sr = 16000

    def bar_lag_similarity(x: np.ndarray, tempo: float) -> torch.Tensor:
        lm = F.log_mel(torch.from_numpy(audio.resample(x, sr, C.sample_rate)))
        lm = lm - lm.mean(dim=1, keepdim=True)
        flat = F.segments(lm, F.segment_starts(lm.shape[-1], 1)).flatten(1)
        flat = flat - flat.mean(dim=1, keepdim=True)
        flat = flat / flat.norm(dim=1, keepdim=True)
        lag = int(round(240.0 / tempo * C.frames_per_second))  # one bar, in frames
        return (flat[:-lag] * flat[lag:]).sum(dim=1)

    for spec in songbook_specs(n=5, seconds=20.0):
        x = render(spec, sr)
        similarity = bar_lag_similarity(x, spec.tempo_bpm)
        assert float(similarity.mean()) < 0.5, spec.name
        assert float(similarity.max()) < 0.95, spec.name
        bar = int(round(240.0 / spec.tempo_bpm * sr))
        loop = np.tile(x[6 * sr : 6 * sr + bar], int(12 * sr / bar) + 1)
        assert float(bar_lag_similarity(loop, spec.tempo_bpm).mean()) > 0.9  # the measure does see loops


def test_energetic_songs_are_louder_and_busier_than_calm_ones():
    sr = 22050
    specs = songbook_specs(n=20, seconds=20.0)
    measured = {
        s.name: (s.mood, rms_db(x), onset_rate(x, sr))
        for s in specs
        if s.mood in ("energetic", "calm")
        for x in [render(s, sr)]
    }
    energetic = [v for v in measured.values() if v[0] == "energetic"]
    calm = [v for v in measured.values() if v[0] == "calm"]
    assert len(energetic) == len(calm) == 4
    assert min(e[1] for e in energetic) > max(c[1] for c in calm) + 8  # dB
    assert min(e[2] for e in energetic) > 2 * max(c[2] for c in calm)  # onsets per second
    assert min(e[2] for e in energetic) > 5


# ---------------------------------------------------------------------------
# Files


def test_write_songbook_is_idempotent_and_readable(tmp_path):
    folder = tmp_path / "songs"
    paths = write_songbook(folder, n=5, seconds=3.0, sample_rate=8000)
    assert [p.name for p in paths] == [f"{i:02d}-{s.name}.wav" for i, s in enumerate(songbook_specs(5, 3.0), 1)]
    assert sorted(p.name for p in folder.iterdir()) == sorted([p.name for p in paths] + ["songbook.csv"])
    before = {p: p.read_bytes() for p in [*paths, folder / "songbook.csv"]}

    old = 1_000_000_000
    for p in before:
        os.utime(p, (old, old))
    again = write_songbook(folder, n=5, seconds=3.0, sample_rate=8000)
    assert again == paths
    for p, data in before.items():
        assert p.read_bytes() == data
        assert p.stat().st_mtime == old, f"{p.name} was rewritten"

    paths[1].write_bytes(b"damaged")
    write_songbook(folder, n=5, seconds=3.0, sample_rate=8000)
    assert paths[1].read_bytes() == before[paths[1]]
    assert paths[0].stat().st_mtime == old
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]

    rows = songbook.read_songbook(folder)
    specs = songbook_specs(5, 3.0)
    assert [r["file"] for r in rows] == [p.name for p in paths]
    for row, spec in zip(rows, specs):
        assert (row["name"], row["mood"], row["key"], row["mode"]) == (spec.name, spec.mood, spec.key, spec.mode)
        assert float(row["tempo"]) == spec.tempo_bpm

    # the files are ordinary audio: decoded at the fingerprint rate, the same samples
    x = audio.load(paths[0], C.sample_rate)
    assert x.shape == (3 * C.sample_rate,)
    np.testing.assert_allclose(x, render(specs[0], 8000), atol=1 / 32768 + 1e-6)


def test_same_bytes_twice(tmp_path):
    a = write_songbook(tmp_path / "a", n=3, seconds=2.0, sample_rate=8000)
    b = write_songbook(tmp_path / "b", n=3, seconds=2.0, sample_rate=8000)
    for p, q in zip(a, b):
        assert p.read_bytes() == q.read_bytes()
    assert (tmp_path / "a" / "songbook.csv").read_bytes() == (tmp_path / "b" / "songbook.csv").read_bytes()
