"""Fixtures of the training tests: songbook songs loaded as training and validation audio, toy audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosim.config import FeatureConfig
from audiosim.training.data import AudioSet, TrackRef, load_audio_set


@pytest.fixture(scope="session")
def songbook_sets(tmp_path_factory) -> tuple[AudioSet, AudioSet]:
    """Ten 20-second songbook songs at 8 kHz: seven to train on, three held out."""
    from audiosim.demo.songbook import write_songbook

    folder = tmp_path_factory.mktemp("songs")
    paths = write_songbook(folder, n=10, seconds=20.0, sample_rate=8000)
    refs = [TrackRef(str(p), f"{i:064x}", p.stem) for i, p in enumerate(paths)]
    cache = tmp_path_factory.mktemp("cache")
    fc = FeatureConfig()
    train = load_audio_set(refs[:7], fc, cache, progress=False)
    val = load_audio_set(refs[7:], fc, cache, progress=False)
    return train, val


@pytest.fixture(scope="session")
def toy_set() -> AudioSet:
    """Three 12-second tracks of coloured noise at 8 kHz, audible throughout (the codec copy is the clean audio)."""
    sr = 8000
    rng = np.random.default_rng(0)
    waves = []
    for i in range(3):
        x = rng.standard_normal(12 * sr)
        x = np.convolve(x, np.ones(i + 2) / (i + 2), mode="same")  # a different colour per track
        waves.append(torch.from_numpy((0.1 * x).astype(np.float32)))
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    block = sr // 4
    audible = [np.arange(0, len(w) - block + 1, block) for w in waves]
    clean = torch.cat(waves)
    return AudioSet(clean, clean.clone(), starts, lengths, [f"t{i}" for i in range(3)], audible, sr)
