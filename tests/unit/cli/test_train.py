"""``audiosim train``: the split file it is given is checked before anything trains."""

from __future__ import annotations

import json

from audiosim.cli import main as cli


def test_an_unreadable_split_file_is_a_usage_error_naming_it(make_wav, tmp_path, capsys) -> None:
    songs = [make_wav(f"s{i}.wav", seconds=2.0, freq=300.0 + 100 * i) for i in range(2)]
    bad = tmp_path / "roles.json"
    bad.write_text("{not json")
    code = cli.main(["train", *map(str, songs), "--split", str(bad), "--out", str(tmp_path / "m.pt"),
                     "--home", str(tmp_path / "home")])
    assert code == 2
    assert "roles.json" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_a_split_without_validation_tracks_is_refused(make_wav, tmp_path, capsys) -> None:
    songs = [make_wav(f"s{i}.wav", seconds=2.0, freq=300.0 + 100 * i) for i in range(2)]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "validation": []}))
    code = cli.main(["train", *map(str, songs), "--split", str(split), "--out", str(tmp_path / "m.pt"),
                     "--home", str(tmp_path / "home")])
    assert code == 2
    assert "both sides of the split" in capsys.readouterr().err
