"""Tests of audiosim.fingerprint.embed: tracks embedded ahead (the Dask fan-out's unit of work).

Embedded ahead or by the index update itself, the shard comes out the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from index_support import CFG, answers, clips_of, make_home, models, songs  # noqa: E402,F401 (fixtures)

from audiosim.fingerprint import embed as E
from audiosim.index import reader as I
from audiosim.index import writer as IB
from audiosim.store.home import DataHome

# Every test here builds an index or runs a model over songs: seconds each.
pytestmark = pytest.mark.slow


def _shard_contents(home: Path) -> tuple[np.ndarray, np.ndarray]:
    with I.Index.open(home) as idx:
        (s,) = idx.shards
        ids = np.load(idx.directory / f"{s.info.name}.ids.npy")
        return ids, np.stack([s.vector(i) for i in range(s.info.items)])


def test_embeddings_computed_ahead_give_the_same_index(tmp_path: Path, songs, models) -> None:
    one = make_home(tmp_path / "one", songs, 4)
    two = make_home(tmp_path / "two", songs, 4)
    IB.update(one, models[0], CFG)

    job = IB.plan_embedding(two, models[0], CFG)
    assert len(job.tracks) == 4 and job.model_path == str(models[0].resolve())
    done = E.embed_tracks(two, job, job.tracks[:3]) + E.embed_tracks(two, job, job.tracks[2:])
    assert [n > 0 for _, n in done] == [True, True, True, False, True]  # the 3rd was there already
    files = sorted(Path(job.directory).glob("*.npz"))
    assert len(files) == 4 and Path(job.directory).is_relative_to(DataHome(two).cache_dir)
    assert IB.plan_embedding(two, models[0], CFG).tracks == ()  # nothing left to embed

    def no_embedding(*a, **k):
        raise AssertionError("the update embedded a track that was embedded ahead")

    real = IB.embed_logmel
    IB.embed_logmel = no_embedding
    try:
        res = IB.update(two, models[0], CFG)
    finally:
        IB.embed_logmel = real
    assert res.added_tracks == 4
    assert not Path(job.directory).exists()  # consumed files are removed after publishing
    ids1, v1 = _shard_contents(one)
    ids2, v2 = _shard_contents(two)
    assert np.array_equal(ids1, ids2)
    assert np.allclose(v1, v2, atol=1e-5)
    clips = clips_of(songs[:4], starts=(2.1, 9.4))
    assert answers(one, models[0], clips) == answers(two, models[0], clips)


def test_a_broken_embedding_file_is_recomputed(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 2)
    job = IB.plan_embedding(home, models[0], CFG)
    E.embed_tracks(home, job)
    first = Path(job.directory) / f"{job.tracks[0][1]}.npz"
    first.write_bytes(b"not an npz")
    assert E.load_embedding(first, 96) is None
    assert IB.update(home, models[0], CFG).added_tracks == 2
    with I.Index.open(home) as idx:
        assert len(idx.live_tracks()) == 2 and idx.n_items > 40



def test_a_model_made_in_memory_cannot_be_embedded_on_workers(tmp_path: Path, songs) -> None:
    from audiosim.fingerprint.model import Encoder

    home = make_home(tmp_path, songs, 1)
    with pytest.raises(ValueError, match="checkpoint file"):
        IB.plan_embedding(home, Encoder().for_inference(), CFG)  # type: ignore[arg-type]
