"""Reading playlists and finding their entries in the catalogue."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from audiosim.ingest.ingest import IngestResult
from audiosim.report.playlist import (
    NOT_CATALOGUED,
    PlaylistItem,
    allowed_folders,
    playlist_name,
    read_playlist,
    resolve_playlist,
    too_few_message,
    uncatalogued,
)
from audiosim.store.catalog import Catalog
from audiosim.store.home import DataHome


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
    allow = allowed_folders(lib.root / "any.m3u")
    df = resolve_playlist(items, lib.home, ingest=False, allow=allow)
    assert list(df["status"]) == ["ok", "ok", "missing", "missing", "duplicate"]
    assert "no track with id 99" in df.loc[2, "detail"] and df.loc[3, "detail"] == "no such file"
    not_yet = [PlaylistItem(str(paths[6]), path=paths[6])]
    assert resolve_playlist(not_yet, lib.home, ingest=False, allow=allow).loc[0, "status"] == "uncatalogued"
    assert resolve_playlist(not_yet, lib.home, ingest=True, allow=allow).loc[0, "status"] == "ingested"
    assert resolve_playlist(not_yet, lib.home, ingest=True, allow=allow).loc[0, "status"] == "ok"


# -- entries are catalogue tracks or files under the allowed folders ------------


@pytest.fixture
def music(tmp_path):
    """A playlist folder with one uncatalogued file, a file outside it, and an empty catalogue."""
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "new.wav").write_bytes(b"RIFF")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.wav").write_bytes(b"RIFF")
    home = DataHome(tmp_path / "home")
    Catalog(home.catalog_path).close()
    return tmp_path


class RecordingIngest:
    """An ingest that records what it was given and makes each file a catalogue track."""

    def __init__(self, home: DataHome):
        self.home, self.given = home, []

    def __call__(self, paths):
        self.given += [str(p) for p in paths]
        with Catalog(self.home.catalog_path) as cat:
            ids = [cat.upsert_ok(p, content_hash=f"{i:064x}", size=4, mtime_ns=1, duration=1.0,
                                 sample_rate=8000, channels=1)[0] for i, p in enumerate(paths, start=1)]
        return [IngestResult(str(p), "added", t) for p, t in zip(paths, ids)]


def playlist(folder: Path, *lines: str) -> Path:
    m3u = folder / "music" / "list.m3u"
    m3u.write_text("\n".join(lines) + "\n")
    return m3u


def test_paths_outside_the_allowed_folders_are_listed_and_never_ingested(music):
    home = DataHome(music / "home")
    m3u = playlist(music, "new.wav", "/etc/passwd", "../../etc/shadow", str(music / "elsewhere" / "secret.wav"))
    ingest = RecordingIngest(home)
    df = resolve_playlist(read_playlist(m3u), home, ingest=True, ingest_fn=ingest, allow=allowed_folders(m3u))
    assert list(df["status"]) == ["ingested", "outside", "outside", "outside"]
    assert ingest.given == [str(music / "music" / "new.wav")]
    assert all(d.startswith(f"{NOT_CATALOGUED}, and outside the allowed folders") for d in df["detail"][1:])
    with Catalog(home.catalog_path) as cat:
        assert [t.path for t in cat.iter_tracks()] == [str(music / "music" / "new.wav")]


def test_a_symlink_out_of_an_allowed_folder_is_outside(music):
    home = DataHome(music / "home")
    os.symlink(music / "elsewhere" / "secret.wav", music / "music" / "link.wav")
    m3u = playlist(music, "link.wav")
    ingest = RecordingIngest(home)
    df = resolve_playlist(read_playlist(m3u), home, ingest=True, ingest_fn=ingest, allow=allowed_folders(m3u))
    assert df.loc[0, "status"] == "outside" and ingest.given == []
    assert uncatalogued(read_playlist(m3u), home, allowed_folders(m3u)) == []


def test_allow_names_the_folders_that_may_be_ingested(music):
    home = DataHome(music / "home")
    m3u = playlist(music, "new.wav", str(music / "elsewhere" / "secret.wav"))
    allow = allowed_folders(m3u, [music / "elsewhere"])
    df = resolve_playlist(read_playlist(m3u), home, ingest=True, ingest_fn=RecordingIngest(home), allow=allow)
    assert list(df["status"]) == ["outside", "ingested"]  # --allow replaces the playlist's folder
    with pytest.raises(ValueError, match="not a folder"):
        allowed_folders(m3u, [music / "nowhere"])


def test_without_ingest_uncatalogued_files_are_reported_as_not_in_the_catalogue(music):
    home = DataHome(music / "home")
    m3u = playlist(music, "new.wav", "gone.wav", "/etc/passwd")
    df = resolve_playlist(read_playlist(m3u), home, ingest=False, allow=allowed_folders(m3u))
    assert list(df["status"]) == ["uncatalogued", "missing", "outside"]
    assert df.loc[0, "detail"].startswith(NOT_CATALOGUED) and df.loc[1, "detail"] == "no such file"
    assert df.loc[2, "detail"].startswith(NOT_CATALOGUED)


def test_catalogue_tracks_are_used_wherever_their_files_are(music):
    home = DataHome(music / "home")
    secret = music / "elsewhere" / "secret.wav"
    RecordingIngest(home)([secret])
    m3u = playlist(music, str(secret), "1")
    df = resolve_playlist(read_playlist(m3u), home, ingest=False, allow=allowed_folders(m3u))
    assert list(df["status"]) == ["ok", "duplicate"]


def test_a_folder_playlist_allows_its_own_folder(music):
    assert allowed_folders(music / "music") == (Path(os.path.realpath(music / "music")),)
    assert allowed_folders(music / "music" / "list.m3u") == (Path(os.path.realpath(music / "music")),)


def test_too_few_songs_message_reads_right():
    one = pd.DataFrame({"position": [1], "entry": ["a.wav"], "status": ["ok"], "detail": [""]})
    msg = too_few_message("p.m3u", one, one)
    assert msg == "p.m3u: a report compares songs, so it needs at least two that can be analysed; the playlist has 1 entry"
    two = pd.DataFrame({"position": [1, 2, 3], "entry": ["a.wav", "/etc/passwd", "b.wav"],
                        "status": ["ok", "outside", "ok"],
                        "detail": ["", "not in the catalogue, and outside the allowed folders (/m): not opened", ""]})
    msg = too_few_message("p.m3u", two, two.iloc[:1])
    assert msg.endswith("and 1 of its 3 entries can; not analysed: /etc/passwd (not in the catalogue, and outside "
                        "the allowed folders (/m): not opened); b.wav (no song vector)")
