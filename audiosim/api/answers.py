"""Answers as JSON: the fields of the dataclasses the matcher returns, made JSON-safe.

An answer carries every field of :class:`~audiosim.match.matcher.Match`
(or :class:`~audiosim.match.monitor.TimelineRow`), taken from the object's
own ``to_dict()`` when it has one, so fields added there appear in the
service's answers too. JSON has no infinity or NaN: such floats (an
unbounded threshold when an index has no calibration) become ``null``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["as_dict", "jsonable"]


def as_dict(obj: Any) -> dict[str, Any]:
    """The fields of an answer dataclass: its ``to_dict()`` if it has one, else :func:`dataclasses.asdict`."""
    to_dict = getattr(obj, "to_dict", None)
    d = to_dict() if callable(to_dict) else dataclasses.asdict(obj)
    return jsonable(d)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python values, paths as strings, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
