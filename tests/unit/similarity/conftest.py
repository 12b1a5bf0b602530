"""Fixtures of the similarity tests: an ingested songbook home, the song model, songs of two moods."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from audiosim.config import SimilarityConfig
from audiosim.similarity.model import SongModel

SR = 22050
"""Sample rate of the descriptor and mood test signals."""
SMALL = SimilarityConfig(excerpt_seconds=3.0, n_trees=4)
"""Short excerpts and a small index: what the similarity tests use."""


def random_model(path: Path | None = None, seed: int = 0, features=None) -> SongModel:
    """A song model; ``seed`` 0 is the default one, any other the penultimate layer (a different model).

    (The song model is frozen: "another model" is another layer of it. ``path``
    and ``features`` are accepted for the tests written for trained encoders.)
    """
    return SongModel(SimilarityConfig(layer="midlevel" if seed == 0 else "penultimate"))


@pytest.fixture
def make_model() -> Callable[..., SongModel]:
    """:func:`random_model`: ``make_model(path, seed=0)``."""
    return random_model


@pytest.fixture(scope="session")
def songs(tmp_path_factory):
    """Six 8-second songbook songs at 8 kHz, ingested into a data home: (home, paths, model, root).

    Shared by the tests of a session: a test that changes the home works on a copy.
    """
    from audiosim.demo.songbook import write_songbook
    from audiosim.ingest.ingest import ingest_many

    root = tmp_path_factory.mktemp("sim")
    paths = write_songbook(root / "songs", n=6, seconds=8.0, sample_rate=8000)
    home = root / "home"
    results = ingest_many(paths, home)
    assert all(r.status == "added" for r in results)
    model = random_model()
    return home, paths, model, root


@pytest.fixture(scope="session")
def contrast():
    """Three fast loud major songs and three slow quiet minor songs (songbook), with descriptors."""
    from audiosim.demo.songbook import render, songbook_specs
    from audiosim.similarity.descriptors import analyse

    specs = [s for s in songbook_specs(n=15, seconds=12.0, seed=2) if s.mood in ("energetic", "melancholic")]
    rows = {s.name: analyse(render(s, SR), SR).to_dict() for s in specs}
    desc = pd.DataFrame.from_dict(rows, orient="index")
    return specs, desc
