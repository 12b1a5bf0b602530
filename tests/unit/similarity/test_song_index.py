"""The song index (built under the writer lock, published atomically, rebuilt when stale) and `similar`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from audiosim.config import ConfigMismatchError, SimilarityConfig
from audiosim.fingerprint.model import model_digest
from audiosim.similarity.song_index import (
    build_index,
    ensure_index,
    open_index,
    resolve_track,
    similar,
    song_index_dir,
    song_manifest_path,
    track_by_title,
)

# Every test here builds an index or runs a model over songs: seconds each.
pytestmark = pytest.mark.slow

SMALL = SimilarityConfig(excerpt_seconds=3.0, n_trees=4)


def test_similar_excludes_query_and_ranks_by_score(songs):
    home, paths, model, _ = songs
    res = similar("1", home, k=3, model=model, cfg=SMALL)
    assert list(res["rank"]) == [1, 2, 3]
    assert 1 not in set(res["id"])
    assert list(res["score"]) == sorted(res["score"], reverse=True)
    assert res["score"].between(-1.0001, 1.0001).all()
    by_path = similar(str(paths[0]), home, k=3, model=model, cfg=SMALL)
    assert list(by_path["id"]) == list(res["id"])


def test_uncatalogued_file_is_analysed_on_the_fly(songs, tmp_path):
    home, paths, model, _ = songs
    copy = tmp_path / "outside.wav"
    shutil.copy(paths[2], copy)
    res = similar(str(copy), home, k=2, model=model, cfg=SMALL)
    assert 3 not in set(res["id"])  # the same content (track 3) is left out
    assert len(res) == 2
    q = resolve_track(str(copy), home)
    assert q.track_id is None and q.content_hash is not None


def test_unknown_track_is_a_lookup_error(songs):
    home, _, model, _ = songs
    with pytest.raises(LookupError, match="no track with id 999"):
        similar("999", home, model=model, cfg=SMALL)


@pytest.mark.slow
def test_index_checks_model_and_rebuilds_when_stale(songs, tmp_path, make_model):
    shared, paths, model, root = songs
    home = tmp_path / "home"
    shutil.copytree(shared, home)  # this test adds a song
    idx = build_index(home, model, SMALL)
    assert len(idx) == 6
    other = make_model(tmp_path / "other.pt", seed=1)
    with pytest.raises(ConfigMismatchError, match=model_digest(other)):
        open_index(home, other, SMALL)
    logs: list[str] = []
    idx2 = ensure_index(home, other, SMALL, log=logs.append)
    assert len(idx2) == 6 and "model or settings changed" in logs[0]
    ann_files = list((Path(home) / "index" / "songs").glob("songs-*.ann"))
    assert len(ann_files) == 1  # the superseded file is removed
    # a catalogue change triggers a rebuild; an unchanged one does not
    logs.clear()
    ensure_index(home, other, SMALL, log=logs.append)
    assert logs == []
    from audiosim.demo.songbook import write_songbook
    from audiosim.ingest.ingest import ingest_many

    extra = write_songbook(tmp_path / "more", n=7, seconds=8.0, sample_rate=8000)[-1:]
    ingest_many(extra, home)
    idx3 = ensure_index(home, other, SMALL, log=logs.append)
    assert len(idx3) == 7 and "catalogue changed" in logs[0]


def test_build_publishes_under_the_writer_lock_and_leaves_no_temp_files(songs, tmp_path):
    shared, _, model, _ = songs
    home = tmp_path / "home"
    shutil.copytree(shared, home)
    folder = song_index_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    leftover = folder / ".songs-old.ann.elsewhere-1.x.tmp"  # a killed build's half-written file
    leftover.write_bytes(b"half")
    os.utime(leftover, (0, 0))
    idx = build_index(home, model, SMALL)
    assert (folder / ".lock").exists()  # audiosim.index.writer.writer_lock's file
    assert not leftover.exists() and not list(folder.glob(".*.tmp"))
    assert song_manifest_path(home).is_file() and (folder / idx.manifest["ann"]).is_file()
    assert idx.manifest["model_digest"] == model_digest(model)


TITLED = pd.DataFrame({"title": ["Castle Walls", "Castle", "Green Fields", None],
                       "path": ["/m/a.wav", "/m/b.wav", "/m/c.wav", "/m/Untitled Demo.wav"]},
                      index=pd.Index([1, 2, 3, 4], name="id"))


@pytest.mark.parametrize(("text", "track_id"), [
    ("castle", 2),  # a whole title wins over the titles it is part of
    ("green", 3),  # a unique part, in any case
    ("  WALLS ", 1),
    ("untitled", 4),  # an untitled track by its file's name
])
def test_a_title_or_a_unique_part_of_one_names_a_track(text: str, track_id: int) -> None:
    assert track_by_title(text, TITLED) == track_id


def test_a_part_of_several_titles_lists_the_candidates() -> None:
    with pytest.raises(LookupError, match=r"'e' is in 4 titles; name one by id .*1: Castle Walls \(/m/a.wav\); "
                                          r"2: Castle \(/m/b.wav\)"):
        track_by_title("e", TITLED)


def test_text_in_no_title_says_what_it_was_looked_up_as() -> None:
    with pytest.raises(LookupError, match="^Moat: no such file, and no catalogue id or title"):
        track_by_title("Moat", TITLED)


def test_similar_accepts_a_title(songs):
    home, paths, model, _ = songs
    from audiosim.store.catalog import Catalog
    with Catalog(home / "catalog.sqlite") as cat:
        row = cat.get(2)
    title = row.title or Path(row.path).stem
    assert resolve_track(title.upper(), home).track_id == 2
