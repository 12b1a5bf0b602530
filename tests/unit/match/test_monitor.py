"""Tests of audiosim.match.monitor: a timeline of the tracks heard in a long recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from match_support import noisy

import audiosim
from audiosim.match.matcher import Matcher
from audiosim.match.monitor import timeline


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
