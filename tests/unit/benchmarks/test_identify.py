"""benchmarks/identify.py: which clips a run draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import benchmarks.identify as bench
from audiosim.config import FeatureConfig


@pytest.fixture()
def synthetic_audio(monkeypatch: pytest.MonkeyPatch) -> list[bench.Track]:
    """Six 30 s tracks of noise (three held, three absent), decoded from nowhere."""
    tracks = [bench.Track(f"t{i}.wav", f"{i:064x}", "held" if i < 3 else "absent") for i in range(6)]
    signals = {t.content_hash: np.random.default_rng(i).standard_normal(30 * bench.SR).astype(np.float32) * 0.1
               for i, t in enumerate(tracks)}
    monkeypatch.setattr(bench, "wave", lambda track, cache: signals[track.content_hash])
    monkeypatch.setattr(bench, "noise_bank", lambda: torch.randn(20 * bench.SR, generator=torch.Generator().manual_seed(0)))
    monkeypatch.setattr(bench, "log", lambda *a, **k: None)
    return tracks


def _draw(tracks: list[bench.Track], n_absent: int) -> list[bench.Query]:
    return bench.make_queries(tracks, ["clean", "noise-5dB"], [1.0, 2.0], 3, n_absent, None, 0, FeatureConfig())


def _key(q: bench.Query) -> tuple:
    return q.cond, q.length, q.track_hash, round(q.t0, 6), q.clip.tobytes()


def test_catalogue_clips_do_not_depend_on_the_number_of_absent_clips(synthetic_audio):
    few, many = _draw(synthetic_audio, 2), _draw(synthetic_audio, 5)
    assert [_key(q) for q in few if not q.absent] == [_key(q) for q in many if not q.absent]


def test_a_smaller_run_draws_the_first_absent_clips_of_a_larger_one(synthetic_audio):
    few, many = _draw(synthetic_audio, 2), _draw(synthetic_audio, 5)
    for length in (1.0, 2.0):
        small = [_key(q) for q in few if q.absent and q.length == length]
        large = [_key(q) for q in many if q.absent and q.length == length]
        assert len(small) == 2 and large[:2] == small


def test_each_length_and_kind_has_its_own_stream():
    draws = {(li, kind): bench.streams(0, li, kind)[0].integers(1 << 30, size=4).tolist()
             for li in range(2) for kind in ("catalogue", "absent")}
    assert len({tuple(v) for v in draws.values()}) == 4
    assert bench.streams(0, 1, "absent")[0].integers(1 << 30, size=4).tolist() == draws[(1, "absent")]
