"""Reading playlists and finding their entries in the catalogue."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from audiosim.report.playlist import (
    PlaylistItem,
    playlist_name,
    read_playlist,
    resolve_playlist,
)


def test_read_m3u_with_relative_paths_comments_and_ids(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    m3u = tmp_path / "list.m3u"
    m3u.write_text("#EXTM3U\n#EXTINF:1,A\na.wav\n\n12\nmissing.ogg\n")
    items = read_playlist(m3u)
    assert [i.entry for i in items] == [str(tmp_path / "a.wav"), "12", str(tmp_path / "missing.ogg")]
    assert items[1].track_id == 12 and items[0].path == tmp_path / "a.wav"


def test_read_csv_by_column_name(tmp_path):
    csv = tmp_path / "p.csv"
    pd.DataFrame({"title": ["x", "y"], "Path": ["/abs/one.wav", "two.wav"]}).to_csv(csv, index=False)
    items = read_playlist(csv)
    assert [i.path for i in items] == [Path("/abs/one.wav"), tmp_path / "two.wav"]
    pd.DataFrame({"track_id": [3, 1]}).to_csv(csv, index=False)
    assert [i.track_id for i in read_playlist(csv)] == [3, 1]


def test_read_folder_and_reject_other_files(tmp_path, make_wav):
    make_wav(tmp_path / "f" / "b.wav")
    make_wav(tmp_path / "f" / "a.wav")
    assert [Path(i.entry).name for i in read_playlist(tmp_path / "f")] == ["a.wav", "b.wav"]
    with pytest.raises(ValueError, match="not a playlist"):
        read_playlist(tmp_path / "f" / "a.wav")
    with pytest.raises(FileNotFoundError):
        read_playlist(tmp_path / "nope.m3u")


def test_report_name_is_file_system_safe(tmp_path):
    (tmp_path / "Road trip: 2024!.m3u").write_text("")
    assert playlist_name(tmp_path / "Road trip: 2024!.m3u") == "Road-trip-2024"
    assert playlist_name(tmp_path / "???") == "playlist"


@pytest.mark.slow
def test_resolve_marks_missing_unknown_duplicates_and_ingests(lib):
    paths = lib.paths
    items = [PlaylistItem(str(paths[0]), path=paths[0]), PlaylistItem("2", track_id=2), PlaylistItem("99", track_id=99),
             PlaylistItem(str(lib.root / "gone.wav"), path=lib.root / "gone.wav"), PlaylistItem("1", track_id=1)]
    df = resolve_playlist(items, lib.home, ingest=False)
    assert list(df["status"]) == ["ok", "ok", "missing", "missing", "duplicate"]
    assert "no track with id 99" in df.loc[2, "detail"] and df.loc[3, "detail"] == "no such file"
    not_yet = [PlaylistItem(str(paths[6]), path=paths[6])]
    assert resolve_playlist(not_yet, lib.home, ingest=False).loc[0, "status"] == "missing"
    assert resolve_playlist(not_yet, lib.home, ingest=True).loc[0, "status"] == "ingested"
    assert resolve_playlist(not_yet, lib.home, ingest=True).loc[0, "status"] == "ok"
