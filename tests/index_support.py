"""Shared by the index tests and the Dask test: small songbooks, random encoders, answers to compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosim.config import IndexConfig
from audiosim.demo.songbook import write_songbook
from audiosim.fingerprint.model import Encoder, save_encoder
from audiosim.ingest.ingest import ingest_many
from audiosim.match.matcher import Matcher
from audiosim.match.scoring import score_wave

SR = 8000
# Exhaustive search on these small indexes, so shards and a compacted index
# must give identical neighbours; few calibration clips keep tests quick.
CFG = IndexConfig(search_k=100_000, calibration_clips=24, calibration_seconds=(1.0, 3.0))


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_songbook(tmp_path_factory.mktemp("songs"), n=8, seconds=20.0, sample_rate=SR, seed=11)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, songs: list[Path]) -> tuple[Path, Path]:
    """Two different random encoders saved as checkpoints.

    Their batch-norm statistics are estimated on songbook segments, so the
    random features are spread out (a fresh network maps everything to
    nearly the same vector, and exact ties would make answers arbitrary).
    """
    from audiosim.signal import features as F

    x, _ = sf.read(songs[0], dtype="float32")
    lm = F.log_mel(torch.from_numpy(x))
    segs = F.segments(lm, F.segment_starts(lm.shape[1], 8))
    d = tmp_path_factory.mktemp("models")
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        enc = Encoder()
        for m in enc.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # cumulative average
        enc.train()
        with torch.no_grad():
            for _ in range(3):
                enc(segs)
        path = d / f"random-{seed}.pt"
        save_encoder(enc.eval(), path, card={"step": 0, "note": "random weights for tests"})
        out.append(path)
    return out[0], out[1]


def make_home(tmp_path: Path, songs: list[Path], n: int) -> Path:
    home = tmp_path / "home"
    res = ingest_many(songs[:n], home)
    assert all(r.status == "added" for r in res), res
    return home


def clips_of(songs: list[Path], starts=(1.3, 6.7, 12.1), seconds: float = 3.0) -> list[np.ndarray]:
    out = []
    for p in songs:
        x, sr = sf.read(p, dtype="float32")
        assert sr == SR
        out += [x[int(s * SR) : int((s + seconds) * SR)] for s in starts]
    return out


def answers(home: Path, model: Path, clips: list[np.ndarray]) -> list[tuple]:
    """(track, offset, score) of the best candidate of each clip, before any threshold."""
    with Matcher(home, model, threshold=0.0) as m:
        out = []
        for c in clips:
            cs = score_wave(m.index, m.model, c)
            out.append((cs.best.track, round(cs.best.offset, 3), round(cs.score, 3)) if cs.best else None)
        return out


# --------------------------------------------------------------------------
