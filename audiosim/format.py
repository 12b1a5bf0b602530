"""How audiosim writes values for people: one formatter per kind of value.

The CLI's tables, CSV and JSON output, the report's pages and tables and
the flows' artifacts all format through these functions, so one value reads
the same everywhere. This module imports nothing from audiosim: every stage
may use it.
"""

from __future__ import annotations

import math


def duration(seconds: float | None) -> str:
    """``h:mm:ss`` for an hour or more, else ``m:ss``; empty for a missing value.

    Examples
    --------
    >>> duration(75.4), duration(3725), duration(float("nan"))
    ('1:15', '1:02:05', '')
    """
    if seconds is None:
        return ""
    seconds = float(seconds)
    if not math.isfinite(seconds):
        return ""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
