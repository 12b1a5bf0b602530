"""``audiosim tags``: a track's top tags of both models with their catalogue percentiles."""

from __future__ import annotations

import json

import pytest

from audiosim.cli import main as cli


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Three short songbook songs ingested into a data home."""
    from audiosim.demo.songbook import write_songbook
    from audiosim.ingest.ingest import ingest_many

    root = tmp_path_factory.mktemp("tags")
    paths = write_songbook(root / "songs", n=3, seconds=8.0, sample_rate=8000)
    ingest_many(paths, root / "home")
    return root / "home"


@pytest.mark.slow
def test_tags_lists_each_models_top_tags_with_their_catalogue_percentile(home, capsys) -> None:
    assert cli.main(["tags", "1", "--home", str(home), "--top", "3", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["msd"] * 3 + ["mtt"] * 3
    assert all(0 <= r["percentile"] <= 100 and 0 < r["probability"] < 1 for r in rows)
    assert cli.main(["tags", "1", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "percentile among 3 catalogue songs" in out and "probability" in out


@pytest.mark.slow
def test_tags_of_an_unknown_track_or_without_catalogue_is_a_usage_error(home, tmp_path, capsys) -> None:
    assert cli.main(["tags", "no such title", "--home", str(home)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["tags", "1", "--home", str(tmp_path / "none")]) == 2
    assert "no catalogue" in capsys.readouterr().err
    assert cli.main(["tags", "1", "--home", str(home), "--top", "0"]) == 2
