"""benchmarks/scale.py: choosing the tracks, the distractors' speed shift, reading smaps_rollup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.scale import COPY_SPEEDS, select, smaps_rollup, speed_shift


def test_a_faster_copy_is_shorter_and_its_tone_higher() -> None:
    sr = 8000
    t = np.arange(sr * 2) / sr
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    fast = speed_shift(tone, 1.10)
    assert abs(len(fast) - len(tone) / 1.10) <= 1
    spectrum = np.abs(np.fft.rfft(fast))
    peak = np.argmax(spectrum) * sr / len(fast)
    assert abs(peak - 440 * 1.10) < 5


def silent_tracks(folder: Path, seconds: list[int]) -> list[str]:
    """Write one silent 8 kHz WAV per length in ``seconds``; return their paths."""
    paths = []
    for i, n in enumerate(seconds):
        p = folder / f"t{i}.wav"
        sf.write(p, np.zeros(8000 * n, np.float32), 8000)
        paths.append(str(p))
    return paths


def test_base_absent_and_sources_never_share_a_track(tmp_path: Path) -> None:
    paths = silent_tracks(tmp_path, [20 + i for i in range(8)])
    sel = select(paths + [str(tmp_path / "missing.wav")], base_hours=50 / 3600, absent_tracks=2, seed=1)
    assert sum(sel.durations[p] for p in sel.base) >= 50
    assert len(sel.absent) == 2
    parts = [set(sel.base), set(sel.absent), set(sel.sources)]
    assert set().union(*parts) == set(paths)
    assert sum(len(s) for s in parts) == len(paths)


def test_the_whole_corpus_is_the_base_but_whole_soundtracks_kept_out_as_absent_music(tmp_path: Path) -> None:
    paths = []
    for name, n in (("small", 2), ("mid", 3), ("large", 6)):  # soundtracks: one folder each
        (tmp_path / name).mkdir()
        paths += silent_tracks(tmp_path / name, [20 + len(paths) + i for i in range(n)])
    copy = tmp_path / "large" / "z-copy.wav"
    copy.write_bytes(Path(paths[-1]).read_bytes())  # the same file packaged twice: the first path counts
    short = silent_tracks(tmp_path, [5])
    for seed in range(4):
        sel = select(paths + [str(copy)] + short, base_hours=None, absent_tracks=3, seed=seed)
        absent_folders = {Path(p).parent.name for p in sel.absent}
        assert absent_folders in ({"mid"}, {"small", "mid"})  # whole soundtracks until 3 tracks, never "large"
        assert not set(sel.base) & set(sel.absent)
        assert set(sel.base) | set(sel.absent) == set(paths)  # the copy and the short track are left out
        assert sorted(sel.sources) == sorted(sel.base)


def test_copies_of_catalogue_tracks_are_far_from_lookup_speeds_and_reach_thirty_times() -> None:
    assert all(abs(v - 1.0) >= 0.1 for v in COPY_SPEEDS)
    assert len(set(COPY_SPEEDS)) == len(COPY_SPEEDS)
    # hours of the copies, in multiples of the originals' (a copy at speed v lasts 1 / v as long)
    assert 1 + sum(1 / v for v in COPY_SPEEDS) >= 30


def test_smaps_rollup_reads_resident_memory_in_bytes() -> None:
    fields = smaps_rollup()
    assert fields["Rss"] > 0 and fields["Rss"] % 1024 == 0
    assert fields["Anonymous"] <= fields["Rss"]
