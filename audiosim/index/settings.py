"""The index settings a build uses: the stored ones, with what the user overrides.

An index keeps its :class:`~audiosim.config.IndexConfig` in its manifest, so
every later update, calibration and query uses the same settings. A user may
change two of them when updating (``audiosim index --max-false-match``,
``--speeds``): the new value is stored as the index's default, and every
other setting stays as the index has it. This module reconciles the two, so
that the command line only parses text.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from audiosim.config import IndexConfig
from audiosim.index.manifest import Manifest
from audiosim.store.home import DataHome


def parse_speeds(text: str) -> tuple[float, ...]:
    """The playback speeds of a comma-separated list, sorted, with 1 always in.

    Parameters
    ----------
    text : str
        E.g. ``"0.95,1,1.05"``; empty items are ignored.

    Returns
    -------
    tuple of float
        Sorted, without repeats, always including 1.0 (a clip is always tried
        as given).

    Raises
    ------
    ValueError
        If an item is not a number, or a speed is outside [0.5, 2]; the
        message names the ``--speeds`` option, as the command line shows it.

    Examples
    --------
    >>> parse_speeds("1.05,0.95")
    (0.95, 1.0, 1.05)
    """
    try:
        speeds = tuple(sorted({1.0} | {float(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise ValueError(f"--speeds takes numbers separated by commas, like 0.95,1,1.05, not {text!r}") from None
    if not all(0.5 <= x <= 2.0 for x in speeds):
        raise ValueError(f"--speeds must be between 0.5 and 2, not {text!r}")
    return speeds


def stored_config(home: "str | Path | DataHome | None") -> IndexConfig:
    """The settings a home's index was built with (the defaults when it has no index yet)."""
    try:
        return Manifest.load(DataHome.resolve(home).index_dir).config
    except FileNotFoundError:
        return IndexConfig()


def index_config_for(
    home: "str | Path | DataHome | None",
    max_false_match: float | None = None,
    query_speeds: tuple[float, ...] | None = None,
) -> IndexConfig | None:
    """The settings to build a home's index with, given the user's overrides.

    Parameters
    ----------
    home : str, Path or DataHome, optional
        Data home whose index settings are the base (resolved as
        :meth:`DataHome.resolve` does).
    max_false_match : float, optional
        New default share of absent-music clips allowed to match.
    query_speeds : tuple of float, optional
        New default playback speeds (see :func:`parse_speeds`).

    Returns
    -------
    IndexConfig or None
        None when nothing is overridden (the build then keeps the index's own
        settings, or the defaults for a new index); otherwise the index's
        stored settings (the defaults when there is no index yet) with the
        given values replaced.
    """
    if max_false_match is None and query_speeds is None:
        return None
    base = stored_config(home)
    return dataclasses.replace(
        base,
        max_false_match=base.max_false_match if max_false_match is None else max_false_match,
        query_speeds=base.query_speeds if query_speeds is None else query_speeds,
    )
