"""Tests of audiosim.match.monitor: a timeline of the tracks heard in a long recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from match_support import make_neighbours, noisy

import audiosim
from audiosim.match.matcher import Matcher
from audiosim.match.monitor import _merge, _Window, timeline
from audiosim.match.scoring import ClipScore
from audiosim.match.voting import Candidate


def _windows(answers: list[tuple[int, float] | None], window: float = 5.0, hop: float = 2.5) -> list[_Window]:
    """Windows answering ``(track, offset)`` (None: unmatched), with no agreeing segment
    (so each run spans its windows)."""
    return [_Window(i * hop, i * hop + window,
                    ClipScore([Candidate(a[0], a[1], 10.0, 5)] if a else [], 40, 10.0 if a else 0.0),
                    a is not None, np.zeros(0, np.int64))
            for i, a in enumerate(answers)]


def _no_neighbours():
    return make_neighbours(*(np.zeros((0, 1)) for _ in range(4)))


def test_a_track_that_loops_to_another_passage_stays_one_row_listing_the_jump() -> None:
    # Windows at 0, 2.5, 5...: track 1 heard from 10 s, then (at 7.5 s) jumping back to its 0 s.
    answers = [(1, 10.0), (1, 12.5), (1, 15.0), (1, 0.0), (1, 2.5), (1, 5.0)]
    (run,) = _merge(_windows(answers), _no_neighbours(), np.zeros(0), 0.986, 1)
    assert (run.start, run.end, run.offset) == (0.0, 17.5, 10.0)
    assert run.jumps == [(0.0, 10.0), (7.5, 0.0)]


def test_rows_of_different_tracks_never_overlap() -> None:
    runs = _merge(_windows([(1, 0.0), (1, 2.5), (2, 30.0), (2, 32.5)]), _no_neighbours(), np.zeros(0), 0.986, 1)
    assert [r.track for r in runs] == [1, 2]
    first, second = runs
    assert first.end <= second.start and second.start == 6.25, "the overlap is split half-way"
    assert second.offset == 30.0 + (6.25 - 5.0), "the offset follows the start"


def test_a_gap_longer_than_allowed_starts_a_new_row() -> None:
    runs = _merge(_windows([(1, 0.0), None, (1, 5.0), None, None, (1, 12.5)]), _no_neighbours(), np.zeros(0), 0.986, 1)
    assert [len(r.scores) for r in runs] == [2, 1]


@pytest.mark.slow
def test_monitor_timeline(songbook_index) -> None:
    home, paths, model = songbook_index
    a, sr = sf.read(paths[0], dtype="float32")
    b, _ = sf.read(paths[8], dtype="float32")  # absent
    c, _ = sf.read(paths[5], dtype="float32")
    rec = noisy(np.concatenate([a[4 * sr : 19 * sr], b[: 10 * sr], c[10 * sr : 25 * sr]]), 15, 0)
    rows = audiosim.monitor(rec, sr, index=home, model=model)
    tracks = [Path(r.path).name for r in rows]
    assert tracks == [paths[0].name, paths[5].name], rows
    first, second = rows
    assert first.start <= 1.0 and 13.0 <= first.end <= 16.5
    assert abs(first.offset - (4.0 + first.start)) <= 0.5
    assert 24.0 <= second.start <= 27.0 and second.end >= 38.0
    assert abs(second.offset - (10.0 + second.start - 25.0)) <= 0.5
    with Matcher(home, model) as m:
        assert timeline(m, rec, sr) == rows, "the one-call form is the matcher's timeline"
        assert timeline(m, rec, sr, policy=m.policy.overridden(threshold=1e9)) == []


@pytest.mark.slow
def test_monitor_reads_a_recording_file_block_by_block(songbook_index, tmp_path: Path) -> None:
    home, paths, model = songbook_index
    a, sr = sf.read(paths[3], dtype="float32")
    y, _ = sf.read(paths[9], dtype="float32")
    rec = tmp_path / "rec.wav"
    sf.write(rec, np.concatenate([y[: 8 * sr], a[4 * sr : 24 * sr]]), sr)
    with Matcher(home, model) as m:
        (row,) = timeline(m, rec)
    assert row.path == str(paths[3].resolve()) and 6.5 <= row.start <= 9.5
    assert abs(row.offset - (4.0 + row.start - 8.0)) <= 0.5


@pytest.mark.slow
def test_a_looping_track_silence_and_another_looping_track_give_two_rows(songbook_index) -> None:
    home, paths, model = songbook_index
    a, sr = sf.read(paths[0], dtype="float32")
    c, _ = sf.read(paths[5], dtype="float32")

    def looped(x: np.ndarray) -> np.ndarray:  # 55 s of a 30 s song: it restarts at 30 s, as game music loops
        return np.concatenate([x, x[: 25 * sr]])

    rec = np.concatenate([looped(a), np.zeros(10 * sr, np.float32), looped(c)])
    rows = audiosim.monitor(rec, sr, index=home, model=model)
    assert [Path(r.path).name for r in rows] == [paths[0].name, paths[5].name], rows
    first, second = rows
    assert first.start <= 1.0 and 53.0 <= first.end <= 57.0 and first.end <= second.start
    assert 63.0 <= second.start <= 67.0 and second.end >= 115.0
    assert any(abs(at - 30.0) <= 2.5 and off <= 2.5 for at, off in first.offsets[1:]), first.offsets
    assert first.offsets[0] == (first.start, first.offset)
