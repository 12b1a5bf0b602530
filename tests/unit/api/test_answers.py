"""Answers as JSON: every field of the answer's own ``to_dict``, and nothing JSON cannot hold."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiosim.api.answers import as_dict, jsonable


@dataclass(frozen=True)
class Plain:
    score: float
    path: Path


@dataclass(frozen=True)
class WithItsOwnDict:
    status: str

    @property
    def matched(self) -> bool:
        return self.status == "matched"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "matched": self.matched}


def test_an_answer_with_a_to_dict_is_serialised_by_it_so_its_added_fields_flow_through() -> None:
    assert as_dict(WithItsOwnDict("matched")) == {"status": "matched", "matched": True}


def test_an_answer_without_one_gives_its_fields() -> None:
    assert as_dict(Plain(0.5, Path("/a/b.wav"))) == {"score": 0.5, "path": "/a/b.wav"}


def test_infinite_and_nan_floats_become_null_and_numpy_values_python_ones() -> None:
    d = jsonable({"threshold": math.inf, "x": float("nan"), "n": np.int64(3), "v": np.float32(0.25),
                  "a": np.arange(2), "t": (1, 2)})
    assert d == {"threshold": None, "x": None, "n": 3, "v": 0.25, "a": [0, 1], "t": [1, 2]}
    json.dumps(d, allow_nan=False)
