"""Shared by the match tests and the identify CLI test: constructed neighbours
and tracks, the trained model, a songbook index built with it, and degraded
copies of clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from audiosim.config import IndexConfig
from audiosim.fingerprint.model import DEFAULT_FINGERPRINT_MODEL
from audiosim.index.reader import Neighbours

SR = 8000


# --------------------------------------------------------------------------
# Constructed arrays
# --------------------------------------------------------------------------


def make_neighbours(track: np.ndarray, time: np.ndarray, sim: np.ndarray, item: np.ndarray) -> Neighbours:
    return Neighbours(track.astype(np.int64), time.astype(np.float32), sim.astype(np.float32), item.astype(np.int64))


def unit_vectors(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class FakeIndex:
    """Just enough of :class:`~audiosim.index.reader.Index` for verification: tracks
    as (times, vectors) on a 0.5 s grid."""

    def __init__(self, tracks: dict[int, tuple[np.ndarray, np.ndarray]], dim: int = 16):
        self.tracks, self.dim = tracks, dim

    def track_segments(self, track: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        times, vecs = self.tracks.get(track, (np.zeros(0, np.float32), np.zeros((0, self.dim), np.float32)))
        keep = (times >= start - 1e-6) & (times <= end + 1e-6)
        return times[keep], vecs[keep]


def grid_track(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A track of random unit vectors on a 0.5 s grid: (times, vectors)."""
    times = np.arange(0.0, seconds, 0.5, dtype=np.float32)
    return times, unit_vectors(rng, len(times))


def clip_of(track: tuple[np.ndarray, np.ndarray], offset: float, q: np.ndarray) -> np.ndarray:
    """Query vectors of a clean clip at ``offset``: each segment is the track's nearest grid item."""
    return track[1][np.round((offset + q) / 0.5).astype(int)]


# --------------------------------------------------------------------------
# The trained model and the songbook
# --------------------------------------------------------------------------


def trained_model() -> Path:
    """The shipped fingerprint model (or ``$AUDIOSIM_TEST_MODEL``); skips the test without it."""
    path = Path(os.environ.get("AUDIOSIM_TEST_MODEL", DEFAULT_FINGERPRINT_MODEL))
    if not path.is_file():
        pytest.skip(f"needs the trained fingerprint model at {path} (ships as models/fingerprint.pt)")
    return path


def songbook_home(root: Path) -> tuple[Path, list[Path], Path]:
    """A data home with 8 songbook songs indexed and calibrated; songs 9 and 10 stay out.

    Returns ``(home, the 10 song files, model path)``.
    """
    from audiosim.demo.songbook import write_songbook
    from audiosim.index import writer as I
    from audiosim.ingest.ingest import ingest_many
    from audiosim.match.calibrate import calibrate_leave_one_out

    model = trained_model()
    paths = write_songbook(root / "songs", n=10, seconds=30.0, sample_rate=SR, seed=3)
    home = root / "home"
    res = ingest_many(paths[:8], home)
    assert all(r.status == "added" for r in res)
    cfg = IndexConfig(calibration_clips=100, calibration_seconds=(1.0, 2.0, 3.0, 5.0))
    result = I.update(home, model, cfg, calibrate=calibrate_leave_one_out)
    assert result.calibrated
    return home, paths, model


def noisy(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """``x`` plus white noise at ``snr_db``."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(x)).astype(np.float32)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return x + noise
