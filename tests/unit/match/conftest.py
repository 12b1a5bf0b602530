"""The songbook index the match tests share (built once per session: it takes minutes)."""

from __future__ import annotations

import pytest
from match_support import songbook_home


@pytest.fixture(scope="session")
def songbook_index(tmp_path_factory: pytest.TempPathFactory):
    """``(home, song paths, model path)``: songs 1-8 indexed and calibrated, 9 and 10 absent."""
    return songbook_home(tmp_path_factory.mktemp("songbook-index"))
