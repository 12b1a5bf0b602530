"""The song model of ``--model``, shared by ``similar``, ``moods`` and ``report``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from audiosim.cli.options import UsageError

if TYPE_CHECKING:
    from audiosim.similarity.model import SongModel


def load_song_model(args: argparse.Namespace) -> SongModel:
    """The song model: frozen MSD musicnn features (``--model`` may only name their weights).

    Raises
    ------
    UsageError
        If ``--model`` names another file (the old trained encoder is no longer supported).
    """
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.similarity.model import load_similarity_model
    try:
        return load_similarity_model(args.model)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
