"""The song-similarity model of ``--model``, shared by ``similar``, ``moods`` and ``report``."""

from __future__ import annotations

import argparse

from audiosim.cli.options import UsageError
from audiosim.fingerprint.model import Encoder
from audiosim.similarity.model import DEFAULT_SIMILARITY_MODEL, load_similarity_model


def load_song_model(args: argparse.Namespace) -> Encoder:
    """The model of ``--model`` (default ``models/similarity.pt``).

    Raises
    ------
    UsageError
        If there is no such file (saying how to train one).
    """
    path = args.model or DEFAULT_SIMILARITY_MODEL
    try:
        return load_similarity_model(path)
    except FileNotFoundError:
        raise UsageError(f"no similarity model at {path} (train one with `python scripts/train_similarity.py`)") from None
