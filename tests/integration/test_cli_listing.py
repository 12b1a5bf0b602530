"""The listing commands (`catalog`, `moods`, `similar`): one writer, clean tables, titles, clear refusals."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest

import audiosim.cli.moods as moods_command
import audiosim.cli.similar as similar_command
from audiosim.cli.main import main
from audiosim.ingest.ingest import ingest_many
from audiosim.similarity.mood import MoodGroups, TooManyGroups


@pytest.fixture
def catalogued(tmp_path: Path, make_wav) -> Path:
    home = tmp_path / "home"
    files = [make_wav(name, seconds=3.0, freq=f) for name, f in
             (("Castle Walls.wav", 330.0), ("Castle Gate.wav", 440.0), ("Green Fields.wav", 550.0))]
    assert all(r.status == "added" for r in ingest_many(files, home))
    return home


def test_the_catalogue_table_has_one_header_line_with_the_id_first(catalogued: Path, capsys) -> None:
    assert main(["catalog", "--home", str(catalogued)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "status", "duration", "title", "artist", "album", "path"]
    assert lines[1].split()[:3] == ["1", "ok", "0:03"]
    assert lines[-1] == "3 ok, 0 failed"


def test_catalogue_csv_and_json_write_the_same_iso_8601_timestamps(catalogued: Path, capsys) -> None:
    assert main(["catalog", "--home", str(catalogued), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert main(["catalog", "--home", str(catalogued), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["added_at"] for r in rows] == [r["added_at"] for r in records]
    assert all(pd.Timestamp(r["added_at"]).tz is not None and r["added_at"].endswith("Z") for r in records)
    assert [int(r["id"]) for r in rows] == [r["id"] for r in records] == [1, 2, 3]


def test_moods_help_is_its_own_and_lists_every_format(capsys) -> None:
    assert main(["moods", "--format", "json", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: audiosim moods") and "{table,csv,json}" in out


def test_moods_writes_one_row_per_song_in_json(catalogued: Path, monkeypatch, capsys) -> None:
    per_song = pd.DataFrame({c: [1.0] for c in moods_command.SONG_COLUMNS}, index=pd.Index([1], name="id"))
    per_song["title"], per_song["group"], per_song["arousal"] = "Castle Walls", 1, 0.5
    monkeypatch.setattr("audiosim.cli.song_model.load_song_model", lambda args: None)
    monkeypatch.setattr("audiosim.similarity.mood.catalogue_moods",
                        lambda *a, **k: (MoodGroups(per_song, pd.DataFrame(), 1, float("nan")), per_song))
    assert main(["moods", "--home", str(catalogued), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["title"] for r in records] == ["Castle Walls"] and records[0]["id"] == 1
    assert main(["moods", "--home", str(catalogued), "--csv"]) == 0  # the older spelling of --format csv
    assert capsys.readouterr().out.startswith("id,group,group_name,mood,")


def test_more_mood_groups_than_songs_is_a_usage_error_naming_the_limit(catalogued: Path, monkeypatch, capsys) -> None:
    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise TooManyGroups("50 groups asked for 3 songs: at most 2 groups (one fewer than the songs)")

    monkeypatch.setattr("audiosim.cli.song_model.load_song_model", lambda args: None)
    monkeypatch.setattr("audiosim.similarity.mood.catalogue_moods", refuse)
    assert main(["moods", "--home", str(catalogued), "--groups", "50"]) == 2
    assert capsys.readouterr().err == ("audiosim moods: error: --groups 50: 50 groups asked for 3 songs: "
                                       "at most 2 groups (one fewer than the songs)\n")


@pytest.mark.parametrize(("track", "message"), [
    ("castle", "'castle' is in 2 titles; name one by id or a longer part of its title: 1: Castle Walls ("),
    ("Moat", "Moat: no such file, and no catalogue id or title (see `audiosim catalog`)"),
])
def test_similar_names_the_candidates_of_an_ambiguous_title(catalogued: Path, monkeypatch, capsys,
                                                            track: str, message: str) -> None:
    monkeypatch.setattr("audiosim.cli.song_model.load_song_model", lambda args: None)
    assert main(["similar", "--home", str(catalogued), track]) == 2
    assert capsys.readouterr().err.startswith(f"audiosim similar: error: {message}")


def test_similar_accepts_a_unique_part_of_a_title(catalogued: Path, monkeypatch, capsys) -> None:
    asked = []
    monkeypatch.setattr("audiosim.cli.song_model.load_song_model", lambda args: None)
    monkeypatch.setattr("audiosim.similarity.song_index.similar", lambda track, home, **kw: asked.append(track) or pd.DataFrame(
        columns=similar_command.TABLE_COLUMNS))
    assert main(["similar", "--home", str(catalogued), "GREEN"]) == 0
    assert capsys.readouterr().out.startswith("Songs most similar to Green Fields (id 3; ")
    assert asked == [str(Path(asked[0]))] and asked[0].endswith("Green Fields.wav")
