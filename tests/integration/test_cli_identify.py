"""``audiosim identify`` and ``audiosim monitor`` as commands: output formats and exit codes.

Needs the trained model and builds a songbook index (minutes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from match_support import songbook_home

from audiosim.cli.identify import MATCH_COLUMNS
from audiosim.cli.main import main


@pytest.fixture(scope="module")
def songbook_index(tmp_path_factory: pytest.TempPathFactory):
    return songbook_home(tmp_path_factory.mktemp("songbook-index"))


def test_cli_identify_and_monitor(songbook_index, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    home, paths, model = songbook_index
    x, sr = sf.read(paths[3], dtype="float32")
    y, _ = sf.read(paths[9], dtype="float32")
    present, absent, rec = tmp_path / "present.wav", tmp_path / "absent.wav", tmp_path / "rec.wav"
    sf.write(present, x[6 * sr : 11 * sr], sr)
    sf.write(absent, y[6 * sr : 11 * sr], sr)
    sf.write(rec, np.concatenate([y[: 8 * sr], x[4 * sr : 24 * sr]]), sr)
    base = ["--home", str(home), "--model", str(model)]

    assert main(["identify", str(present), str(absent), *base, "--format", "json"]) == 1  # one clip unmatched
    rows = json.loads(capsys.readouterr().out)
    assert [r["matched"] for r in rows] == [True, False]
    assert rows[0]["path"] == str(paths[3].resolve()) and abs(rows[0]["offset"] - 6.0) <= 0.25
    assert rows[0]["score"] > rows[0]["threshold"] > rows[1]["score"]

    assert main(["identify", str(present), *base, "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split(",") == MATCH_COLUMNS
    assert MATCH_COLUMNS[:4] == ["clip", "status", "reason", "track_id"]
    assert main(["identify", str(present), *base, "--threshold", "1e9"]) == 1
    capsys.readouterr()

    assert main(["monitor", str(rec), *base, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["path"] == str(paths[3].resolve()) and 6.5 <= row["start"] <= 9.5 and abs(row["offset"] - (4.0 + row["start"] - 8.0)) <= 0.5
    assert row["offsets"][0] == {"at": row["start"], "offset": row["offset"]}

    assert main(["identify", str(present), "--home", str(tmp_path / "nowhere")]) == 2
    assert "no index" in capsys.readouterr().err


def test_cli_identify_says_what_happened_to_each_clip_of_a_batch(songbook_index, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    home, paths, model = songbook_index
    x, sr = sf.read(paths[3], dtype="float32")
    y, _ = sf.read(paths[9], dtype="float32")  # absent
    clips = {name: tmp_path / f"{name}.wav" for name in ("present", "absent", "short", "silence", "stream")}
    sf.write(clips["present"], x[6 * sr : 11 * sr], sr)
    sf.write(clips["absent"], y[6 * sr : 11 * sr], sr)
    sf.write(clips["short"], x[6 * sr : int(6.3 * sr)], sr)
    sf.write(clips["silence"], np.zeros(5 * sr, np.float32), sr)
    sf.write(clips["stream"], np.concatenate([y[: 5 * sr], x[: 10 * sr]]), sr)  # the track starts 5 s in
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio " * 64)
    base = ["--home", str(home), "--model", str(model)]

    args = ["identify", *map(str, clips.values()), str(junk), str(tmp_path / "missing.wav"), *base]
    assert main([*args, "--format", "json"]) == 1
    captured = capsys.readouterr()
    rows = {Path(r["clip"]).stem: r for r in json.loads(captured.out)}
    assert {k: (r["status"], r["reason"]) for k, r in rows.items()} == {
        "present": ("matched", ""), "absent": ("no-match", "below-threshold"), "short": ("error", "too-short"),
        "silence": ("error", "silence"), "stream": ("matched", ""), "junk": ("error", "not-audio"),
        "missing": ("error", "unreadable"),
    }
    absent = rows["absent"]
    assert absent["track_id"] is None and absent["title"] is None and absent["offset"] is None
    assert absent["candidate_track_id"] is not None and absent["candidate_title"], "the runner-up is a candidate"
    assert rows["stream"]["offset"] == 0.0 and abs(rows["stream"]["clip_start"] - 5.0) <= 0.25
    assert all(r["offset"] is None or r["offset"] >= 0 for r in rows.values())
    assert rows["short"]["score"] is None and rows["short"]["detail"]
    summary = captured.err.strip().splitlines()[-1]
    assert summary.startswith("identify: 7 clips: 2 matched, 1 no-match, 4 error; lookup median ")
    assert summary.endswith("ms (1 torch thread)") and " p95 " in summary
    for name in ("short", "silence", "junk", "missing"):
        assert f"audiosim identify: {tmp_path / name}" in captured.err

    assert main(["identify", str(clips["present"]), *base, "--format", "csv", "--threads", "2", "--stats"]) == 0
    err = capsys.readouterr().err
    assert "(2 torch threads)" in err and "median" in err and "p99" in err and "lookup" in err
    assert main(["identify", str(clips["present"]), *base, "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


def test_cli_monitor_of_an_absent_recording_says_nothing_was_identified(songbook_index, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    home, paths, model = songbook_index
    y, sr = sf.read(paths[9], dtype="float32")
    rec = tmp_path / "absent-rec.wav"
    sf.write(rec, np.concatenate([y, y]), sr)
    base = ["--home", str(home), "--model", str(model)]
    assert main(["monitor", str(rec), *base]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"nothing identified in {rec}") and "DataFrame" not in out and "Columns" not in out
    assert main(["monitor", str(rec), *base, "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [] and "nothing identified" in captured.err
