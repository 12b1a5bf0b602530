"""Tests of audiosim.index.half_hops: the 4-bit rows of the segments half an index hop later."""

from __future__ import annotations

import numpy as np
import pytest

from audiosim.index.half_hops import held, pack, split_half_hops, unpack


def _unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("dim, max_shift", [(96, 0.05), (7, 0.1)])  # the model's size, and an odd one
def test_coded_vectors_keep_their_direction_in_half_a_byte_per_dimension(dim: int, max_shift: float) -> None:
    v = _unit(500, dim)
    rows = pack(v)
    assert rows.dtype == np.uint8 and rows.shape == (500, (dim + 1) // 2)
    w = unpack(rows, dim)
    assert np.allclose(np.linalg.norm(w, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(v * w, axis=1)) > 0.98
    # What verification compares: cosines with other vectors move little.
    q = _unit(500, dim, seed=1)
    assert np.max(np.abs(np.sum(q * v, axis=1) - np.sum(q * w, axis=1))) < max_shift


def test_rows_without_a_segment_are_zero_and_decode_to_zero_vectors() -> None:
    v = _unit(3, 96)
    rows = pack(v, present=np.array([True, False, True]))
    assert held(rows).tolist() == [True, False, True]
    assert not rows[1].any()
    w = unpack(rows, 96)
    assert not w[1].any() and np.sum(v[0] * w[0]) > 0.98
    assert held(pack(np.zeros((1, 96), np.float32))).tolist() == [True]  # a zero vector is still a segment


def test_split_pairs_each_indexed_segment_with_the_one_half_a_hop_later() -> None:
    v = _unit(6, 96)
    starts = np.array([0, 16, 32, 64, 80, 112])  # 48 and 96 silent: no row after 32, none on the grid at 96
    main, main_starts, half = split_half_hops(v, starts, 32)
    assert main_starts.tolist() == [0, 32, 64]
    assert np.array_equal(main, v[[0, 2, 3]])
    assert held(half).tolist() == [True, False, True]
    w = unpack(half, 96)
    assert np.sum(w[0] * v[1]) > 0.98 and np.sum(w[2] * v[4]) > 0.98
    # The segment at 112 lies half a hop after 96, which is not indexed: it is dropped.
    assert len(main) == len(half) == 3


def test_a_track_of_one_segment_or_none_splits_cleanly() -> None:
    main, starts, half = split_half_hops(_unit(1, 96), np.array([0]), 32)
    assert starts.tolist() == [0] and held(half).tolist() == [False]
    main, starts, half = split_half_hops(np.zeros((0, 96), np.float32), np.zeros(0, np.int64), 32)
    assert main.shape == (0, 96) and half.shape == (0, 48)
