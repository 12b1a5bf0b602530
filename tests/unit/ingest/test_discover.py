"""Finding the files to ingest: folders, lists of paths, explicit files."""

from __future__ import annotations

import pytest

from audiosim.ingest.discover import discover, read_path_list, walk_audio


def test_discover_folders_lists_and_files(tmp_path, make_wav):
    a = make_wav("a.wav")
    b = make_wav("sub/deeper/b.flac")
    make_wav(".hidden/c.wav")
    (tmp_path / "audio" / "notes.pdf").write_text("x")
    explicit = tmp_path / "odd.bin"
    explicit.write_bytes(b"x")
    lst = tmp_path / "lists" / "files.txt"
    lst.parent.mkdir()
    lst.write_text(f"# my files\n\n../audio/a.wav\n  {b}  \nmissing.wav\n")
    m3u = tmp_path / "lists" / "p.m3u"
    m3u.write_text(f"#EXTM3U\n#EXTINF:3,A\n{a}\n")
    found = discover([tmp_path / "audio", lst, m3u, explicit, a])
    assert found == sorted({a, b, explicit, tmp_path / "lists" / "missing.wav"})
    assert read_path_list(m3u) == [a]
    with pytest.raises(FileNotFoundError) as e:
        discover([tmp_path / "nope"])
    assert "nope" in str(e.value)


def test_bad_list_file_named_in_error(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="l.txt"):
        discover([lst])


def test_list_accepts_file_urls_and_a_bom(tmp_path, make_wav):
    a = make_wav("a b.wav")
    lst = tmp_path / "l.m3u8"
    lst.write_bytes(b"\xef\xbb\xbf" + f"file://{str(a).replace(' ', '%20')}\n".encode())
    assert read_path_list(lst) == [a]


def test_a_list_that_lists_itself_is_read_once(tmp_path, make_wav):
    a = make_wav("a.wav")
    lst = tmp_path / "loop.txt"
    lst.write_text(f"{a}\n{lst}\n")
    assert discover([lst]) == [a]


def test_walk_audio_skips_hidden_and_non_audio_files(tmp_path, make_wav):
    a = make_wav("a.wav")
    make_wav(".hidden/b.wav")
    make_wav(".c.wav")
    (tmp_path / "audio" / "notes.pdf").write_text("x")
    assert list(walk_audio(tmp_path / "audio")) == [str(a)]
