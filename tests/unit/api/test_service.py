"""The service notices a newly published manifest by a stat, without reading it.

The service answering from a real index, and taking up a new generation
while requests run, is tests/integration/test_api.py's.
"""

from __future__ import annotations

from audiosim.api.service import _signature
from audiosim.store.atomic import atomic_write_json


def test_a_manifest_published_over_the_old_one_changes_its_signature(tmp_path) -> None:
    path = tmp_path / "manifest.json"
    assert _signature(path) is None
    atomic_write_json(path, {"generation": 1})
    first = _signature(path)
    assert first == _signature(path)  # stat-ing is not a change
    atomic_write_json(path, {"generation": 2})
    assert _signature(path) != first
