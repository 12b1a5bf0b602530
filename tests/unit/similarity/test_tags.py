"""Tags ranked within the catalogue: percentiles, a track's top tags, the catalogue's tag table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audiosim.similarity import musicnn
from audiosim.similarity.descriptors import Descriptors
from audiosim.similarity.tags import (
    TAG_COLUMNS,
    catalogue_tags,
    tag_percentiles,
    track_tags,
)
from audiosim.similarity.vectors import TAG_MODELS, SongAnalysis, SongTable


def test_a_percentile_counts_the_songs_below_and_half_of_those_level() -> None:
    p = np.array([[0.1], [0.2], [0.2], [0.4]])
    assert tag_percentiles(p)[:, 0].tolist() == [12.5, 50.0, 50.0, 87.5]


def test_a_song_from_outside_is_ranked_among_the_catalogue_without_joining_it() -> None:
    ref = np.array([[0.1, 0.5], [0.2, 0.6], [0.3, 0.7], [0.4, 0.8]])
    out = tag_percentiles(np.array([[0.5, 0.0]]), ref)
    assert out.tolist() == [[100.0, 0.0]]


def test_an_empty_catalogue_gives_no_percentile() -> None:
    assert np.isnan(tag_percentiles(np.array([[0.3]]), np.zeros((0, 1)))).all()


def _table(n: int, seed: int = 0) -> SongTable:
    rng = np.random.default_rng(seed)
    tracks = pd.DataFrame({"path": [f"/m/{i}.wav" for i in range(n)]}, index=pd.Index(range(1, n + 1), name="id"))
    tags = {m: rng.uniform(0.001, 0.3, (n, len(musicnn.tag_names(m)))).astype(np.float32) for m in TAG_MODELS}
    return SongTable(tracks, np.zeros((n, 2), np.float32), tags)


def _song(table: SongTable, row: int) -> SongAnalysis:
    d = Descriptors(**{k: 0.0 for k in Descriptors.__dataclass_fields__})
    return SongAnalysis(np.zeros(2, np.float32), {m: table.tags[m][row] for m in TAG_MODELS}, d)


def test_a_tracks_top_tags_come_per_model_most_probable_first_with_their_percentile() -> None:
    table = _table(10)
    df = track_tags(_song(table, 3), table, top=4)
    assert list(df.columns) == TAG_COLUMNS
    assert df["model"].tolist() == ["msd"] * 4 + ["mtt"] * 4
    for m in TAG_MODELS:
        rows = df[df["model"] == m]
        assert rows["probability"].is_monotonic_decreasing
        j = musicnn.tag_names(m).index(rows["tag"].iloc[0])
        assert rows["probability"].iloc[0] == round(float(table.tags[m][3, j]), 4)
        assert rows["percentile"].iloc[0] == round(float(tag_percentiles(table.tags[m])[3, j]), 1)
    assert df["percentile"].between(0, 100).all()


def test_the_catalogue_tag_table_has_every_tags_probability_and_percentile_by_track_id() -> None:
    table = _table(5)
    t = catalogue_tags(table)
    assert list(t.index) == [1, 2, 3, 4, 5]
    assert "msd:happy" in t and "pct:msd:happy" in t and "pct:mtt:quiet" in t
    assert t.filter(like="pct:").stack().between(0, 100).all()
    assert sorted(t["pct:msd:sad"]) == [10.0, 30.0, 50.0, 70.0, 90.0]
