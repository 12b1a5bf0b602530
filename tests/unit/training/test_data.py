"""Training data: the track split, the wave cache, batches of segment pairs, negatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audiosim.config import AugmentConfig, FeatureConfig
from audiosim.training.data import (
    Batcher,
    TrackRef,
    load_audio_set,
    negative_mask,
    read_split,
    sample_moments,
    split_by_file,
    split_tracks,
    write_split,
)

FC = FeatureConfig()


def test_split_is_by_track_and_stable():
    tracks = [TrackRef(f"t{i}.wav", f"{i:064x}") for i in range(200)]
    train, val = split_tracks(tracks, 0.2, seed=0)
    assert not {t.content_hash for t in train} & {t.content_hash for t in val}
    assert 20 < len(val) < 60
    # adding tracks never moves an existing one
    train2, val2 = split_tracks(tracks + [TrackRef("new.wav", "f" * 64)], 0.2, seed=0)
    assert {t.path for t in val} <= {t.path for t in val2}


def test_split_file_round_trips_and_sorts_other_tracks(tmp_path):
    refs = [TrackRef(f"t{i}.wav", f"{i:064x}", f"t{i}") for i in range(6)]
    path = tmp_path / "m.split.json"
    write_split(path, refs[:3], refs[3:5])
    assert read_split(path) == ({r.content_hash for r in refs[:3]}, {r.content_hash for r in refs[3:5]})
    train, held, unknown = split_by_file(refs, path)
    assert (train, held, unknown) == (refs[:3], refs[3:5], refs[5:])


def test_a_split_file_records_the_tracks_left_out_altogether(tmp_path):
    import json

    refs = [TrackRef(f"t{i}.wav", f"{i:064x}", f"t{i}") for i in range(6)]
    path = tmp_path / "m.split.json"
    write_split(path, refs[:3], refs[3:4], held_out=refs[4:])
    assert [t["content_hash"] for t in json.loads(path.read_text())["held_out"]] == [r.content_hash for r in refs[4:]]
    assert read_split(path) == ({r.content_hash for r in refs[:3]}, {refs[3].content_hash})


def test_audio_is_decoded_once_then_read_from_the_cache(make_wav, tmp_path):
    refs = [TrackRef(str(make_wav(f"{i}.wav", seconds=3.0, freq=300.0 + 100 * i)), f"{i:064x}") for i in range(2)]
    cache = tmp_path / "cache"
    first = load_audio_set(refs, FC, cache, progress=False)
    assert first.names == ["0.wav", "1.wav"] and list(first.starts) == [0, first.lengths[0]]
    assert len(list(cache.glob("*.npy"))) == 4  # clean and codec copy of each
    for r in refs:
        Path(r.path).unlink()
    again = load_audio_set(refs, FC, cache, progress=False)  # the files are gone: only the cache can answer
    assert torch.equal(again.clean, first.clean.half().float()) and list(again.lengths) == list(first.lengths)


def test_unreadable_tracks_are_skipped(make_wav, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    refs = [TrackRef(str(bad), "b" * 64), TrackRef(str(make_wav("ok.wav")), "a" * 64)]
    data = load_audio_set(refs, FC, tmp_path / "cache", progress=False)
    assert data.names == ["ok.wav"]


def test_moments_are_audible_and_leave_room_around_them(toy_set):
    data = toy_set
    g = torch.Generator().manual_seed(0)
    tr, pos = sample_moments(data, 200, 4000, 9000, g)
    assert np.all(pos >= 4000) and np.all(pos <= data.lengths[tr] - 9000)


def test_the_same_seed_draws_the_same_batch(toy_set):
    data = toy_set
    batcher = Batcher(data, FC, AugmentConfig())
    a1, p1, tr1, t1 = batcher.pairs(8, torch.Generator().manual_seed(7))
    a2, p2, tr2, t2 = batcher.pairs(8, torch.Generator().manual_seed(7))
    assert torch.equal(a1, a2) and torch.equal(p1, p2) and np.array_equal(tr1, tr2) and np.array_equal(t1, t2)
    assert a1.shape == p1.shape == (8, FC.n_mels, FC.segment_frames)
    assert not torch.equal(a1, p1)  # the positive is degraded


def test_negative_mask_excludes_nearby_moments_of_the_same_track():
    m = negative_mask(np.array([0, 0, 0, 1]), np.array([10.0, 11.0, 30.0, 10.0]), 2.0)
    assert not m[0, 1] and not m[0, 0]
    assert m[0, 2] and m[0, 3]


def test_negative_mask_excludes_repeats_of_the_same_passage():
    g = torch.Generator().manual_seed(0)
    segs = torch.randn(4, 64, 60, generator=g)
    segs[1] = segs[0].roll(8, dims=-1)  # the passage again, 8 frames later (a loop)
    segs[3] = segs[2] + 0.05 * torch.randn(64, 60, generator=g)  # same sound in another track
    tracks, times = np.array([0, 0, 1, 2]), np.array([5.0, 65.0, 5.0, 5.0])
    plain = negative_mask(tracks, times, 2.0)
    assert plain[0, 1] and plain[2, 3]
    m = negative_mask(tracks, times, 2.0, segs, max_similarity=0.85, max_lag=16)
    assert not m[0, 1] and not m[1, 0] and not m[2, 3]
    assert m[0, 2] and m[1, 3]
    # a shift beyond max_lag is not forgiven
    far = negative_mask(tracks, times, 2.0, segs, max_similarity=0.85, max_lag=2)
    assert far[0, 1]


def test_a_speech_bank_can_hold_every_voice(make_wav):
    from audiosim.training.data import load_noise_bank

    voices = [make_wav(f"v{i}.wav", seconds=3.0, freq=200.0 + 50 * i) for i in range(3)]
    capped = load_noise_bank(voices, 8000, max_seconds=2.0)
    every = load_noise_bank(voices, 8000, max_seconds=None)
    assert capped.numel() == 3 * 8000  # the first voice only: the cap is reached after it
    assert every.numel() == 9 * 8000
    assert torch.allclose(every.reshape(3, -1).pow(2).mean(1), torch.ones(3), atol=1e-3)
