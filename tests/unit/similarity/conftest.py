"""Fixtures of the similarity tests: an ingested songbook home, a random model, songs of two moods."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import torch

from audiosim.config import SIMILARITY_MODEL, similarity_features
from audiosim.fingerprint.model import Encoder, save_encoder
from audiosim.similarity.model import load_similarity_model

SR = 22050
"""Sample rate of the descriptor and mood test signals."""


def random_model(path: Path, seed: int = 0, features=None) -> Encoder:
    """A randomly initialised similarity encoder saved to ``path`` and loaded back (so it has an identity)."""
    torch.manual_seed(seed)
    save_encoder(Encoder(SIMILARITY_MODEL, features or similarity_features()), path, {"kind": "test"})
    return load_similarity_model(path)


@pytest.fixture
def make_model() -> Callable[..., Encoder]:
    """:func:`random_model`: ``make_model(path, seed=0, features=None)``."""
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
    model = random_model(root / "model.pt")
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
