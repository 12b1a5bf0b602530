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
    assert out[0].split(",") == ["clip", "track_id", "path", "title", "offset", "score", "threshold", "matched", "seconds"]
    assert main(["identify", str(present), *base, "--threshold", "1e9"]) == 1
    capsys.readouterr()

    assert main(["monitor", str(rec), *base, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["path"] == str(paths[3].resolve()) and 6.5 <= row["start"] <= 9.5 and abs(row["offset"] - (4.0 + row["start"] - 8.0)) <= 0.5

    assert main(["identify", str(present), "--home", str(tmp_path / "nowhere")]) == 2
    assert "no index" in capsys.readouterr().err
