"""Shared fixtures: synthetic audio files, a temporary data home, a Prefect harness.

Prefect is pointed at a temporary ``PREFECT_HOME`` before anything imports
it, so tests never touch ``~/.prefect`` or a configured Prefect server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

_PREFECT_HOME = tempfile.mkdtemp(prefix="audiosim-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_SERVER_LOGGING_LEVEL"] = "CRITICAL"
os.environ.pop("AUDIOSIM_HOME", None)


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path):
    """A fresh, not yet created data home in ``tmp_path``."""
    from audiosim.store.home import DataHome

    return DataHome(tmp_path / "home")


def tone(seconds: float = 3.0, sr: int = 8000, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A tone plus a little noise, float32, shape (frames,) or (frames, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture
def make_wav(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a synthetic WAV: ``make_wav("a.wav", seconds=3, freq=440, ...)``.

    Relative names go under ``tmp_path / "audio"``.
    """

    def make(name: str, seconds: float = 3.0, sr: int = 8000, freq: float = 440.0,
             channels: int = 1, seed: int = 0, subtype: str = "PCM_16") -> Path:
        p = Path(name)
        if not p.is_absolute():
            p = tmp_path / "audio" / p
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, tone(seconds, sr, freq, channels, seed), sr, subtype=subtype)
        return p

    return make


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    """Files that must fail, keyed by the reason they must fail with."""
    d = tmp_path / "audio"
    d.mkdir(parents=True, exist_ok=True)
    sr = 8000
    files: dict[str, Path] = {}

    files["empty"] = d / "empty.wav"
    files["empty"].write_bytes(b"")

    files["not-audio"] = d / "text.wav"
    files["not-audio"].write_text("this is not audio\n" * 20)

    good = d / "_good.wav"
    sf.write(good, tone(2.0, sr), sr)
    files["truncated"] = d / "truncated.wav"  # header cut before the data chunk
    files["truncated"].write_bytes(good.read_bytes()[:30])
    good.unlink()

    flac = d / "_good.flac"
    sf.write(flac, tone(3.0, sr), sr)
    data = bytearray(flac.read_bytes())
    data[200:] = np.random.default_rng(0).integers(0, 256, len(data) - 200, dtype=np.uint8).tobytes()
    files["corrupt"] = d / "corrupt.flac"
    files["corrupt"].write_bytes(bytes(data))
    flac.unlink()

    files["silence"] = d / "silence.wav"
    sf.write(files["silence"], np.zeros(3 * sr, np.float32), sr)

    nan = tone(3.0, sr)
    nan[1000:1010] = np.nan
    files["non-finite"] = d / "nan.wav"
    sf.write(files["non-finite"], nan, sr, subtype="FLOAT")

    files["too-short"] = d / "short.wav"
    sf.write(files["too-short"], tone(0.3, sr), sr)
    return files


EXPECTED_REASONS = {
    "empty": {"empty"},
    "not-audio": {"not-audio"},
    "truncated": {"truncated"},
    "corrupt": {"corrupt"},
    "silence": {"silence"},
    "non-finite": {"corrupt"},  # NaN samples are damaged data
    "too-short": {"too-short"},
}
"""The reason each of :func:`bad_files` must fail with: reasons from ``audiosim.signal.audio.REASONS``."""


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    """A temporary Prefect server and database for the whole session.

    Yields the API URL, which subprocesses can use via ``PREFECT_API_URL``.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_LOGGING_LEVEL,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    prefect_home = tmp_path_factory.mktemp("prefect-home")
    with temporary_settings(
        updates={
            PREFECT_HOME: str(prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED: False,
            PREFECT_SERVER_LOGGING_LEVEL: "CRITICAL",
        }
    ):
        # Generous: on a busy 2-core machine the server can take minutes to start.
        with prefect_test_harness(server_startup_timeout=600):
            yield PREFECT_API_URL.value()
