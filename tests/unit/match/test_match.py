"""Tests of audiosim.match.matcher and audiosim.match.calibrate.

Voting, hub and threshold logic run on constructed arrays. The end-to-end
tests (a degraded copy is found at the right offset, an absent song is not)
need the trained model ``models/fingerprint.pt`` (or ``$AUDIOSIM_TEST_MODEL``)
and the synthetic songbook; nothing here needs the dev corpus.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiosim
from audiosim.config import IndexConfig
from audiosim.fingerprint.model import DEFAULT_FINGERPRINT_MODEL
from audiosim.index.reader import Neighbours
from audiosim.index.thresholds import Calibration, CalibrationBin
from audiosim.match.matcher import (
    Matcher,
    clip_score,
    drop_local_hubs,
    hub_limit,
    score_segments,
)
from audiosim.match.voting import Candidate

SR = 8000


def trained_model() -> Path:
    path = Path(os.environ.get("AUDIOSIM_TEST_MODEL", DEFAULT_FINGERPRINT_MODEL))
    if not path.is_file():
        pytest.skip(f"needs the trained fingerprint model at {path} (ships as models/fingerprint.pt)")
    return path


# --------------------------------------------------------------------------
# Constructed arrays
# --------------------------------------------------------------------------


def _nn(track: np.ndarray, time: np.ndarray, sim: np.ndarray, item: np.ndarray) -> Neighbours:
    return Neighbours(track.astype(np.int64), time.astype(np.float32), sim.astype(np.float32), item.astype(np.int64))


def _unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
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


def _grid_track(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A track of random unit vectors on a 0.5 s grid: (times, vectors)."""
    times = np.arange(0.0, seconds, 0.5, dtype=np.float32)
    return times, _unit(rng, len(times))


def _clip_of(track: tuple[np.ndarray, np.ndarray], offset: float, q: np.ndarray) -> np.ndarray:
    """Query vectors of a clean clip at ``offset``: each segment is the track's nearest grid item."""
    return track[1][np.round((offset + q) / 0.5).astype(int)]


def test_clip_score() -> None:
    assert clip_score([]) == 0.0
    assert clip_score([Candidate(1, 0.0, 3.0, 4), Candidate(2, 1.0, 1.25, 2)]) == pytest.approx(3.0)


def test_local_hub_is_dropped_and_true_match_kept() -> None:
    # 40 query segments 0.1 s apart. Neighbour 0: track 7 at a consistent
    # offset of 12 s (a true match; each item near 2 s of segments at most).
    # Neighbour 1: item 999 of track 3, retrieved by every segment (a hub).
    q = np.arange(40) * 0.1
    t_true = np.round((12.0 + q) / 0.5) * 0.5
    item_true = 1000 + (t_true / 0.5).astype(int)
    track = np.stack([np.full(40, 7), np.full(40, 3)], 1)
    time = np.stack([t_true, np.full(40, 5.0)], 1)
    sim = np.stack([np.full(40, 0.8), np.full(40, 0.95)], 1)
    item = np.stack([item_true, np.full(40, 999)], 1)
    nn = _nn(track, time, sim, item)
    limit = hub_limit(IndexConfig(), 0.1)
    assert limit == 21
    cleaned = drop_local_hubs(nn, limit)
    assert (cleaned.track[:, 1] == -1).all(), "the hub item is ignored"
    assert (cleaned.track[:, 0] == 7).all(), "items of the true match are kept"
    rng = np.random.default_rng(1)
    true = _grid_track(rng, 60.0)
    qv = _clip_of(true, 12.0, q)
    index = FakeIndex({7: true, 3: (np.array([5.0], np.float32), qv[:1])})
    cs = score_segments(index, qv, q, nn, IndexConfig(), 0.1)
    assert [c.track for c in cs.candidates] == [7], "the hub's track is not even a candidate"
    assert abs(cs.best.offset - 12.0) <= 0.25
    assert cs.best.votes == 40
    # Each segment is compared with the items within 0.5 s of where it should be, its own among them.
    assert cs.score == pytest.approx(40.0, abs=1e-4) and cs.score == pytest.approx(cs.best.score)


def test_hub_limit_respects_config() -> None:
    assert hub_limit(IndexConfig(hub_limit=5), 0.1) == 5
    nn = _nn(np.zeros((3, 1)), np.zeros((3, 1)), np.ones((3, 1)), np.zeros((3, 1)))
    assert drop_local_hubs(nn, 5) is nn  # fewer segments than the limit: untouched


def test_scattered_votes_lose_to_consistent_ones() -> None:
    rng = np.random.default_rng(0)
    q = np.arange(30) * 0.1
    track = rng.integers(0, 50, (30, 5))
    time = rng.uniform(0, 100, (30, 5))
    sim = rng.uniform(0.5, 0.7, (30, 5))
    item = rng.integers(0, 10**6, (30, 5))
    track[::2, 0], time[::2, 0], sim[::2, 0] = 77, 30.0 + q[::2], 0.6  # half the segments agree
    item[::2, 0] = np.arange(15) + 5 * 10**6
    tracks = {t: _grid_track(rng, 120.0) for t in range(50)}
    tracks[77] = _grid_track(rng, 60.0)
    qv = _clip_of(tracks[77], 30.0, q)
    cs = score_segments(FakeIndex(tracks), qv, q, _nn(track, time, sim, item), IndexConfig(), 0.1)
    assert cs.best.track == 77 and abs(cs.best.offset - 30.0) < 0.3
    assert cs.score == pytest.approx(30.0, abs=1e-4)
    assert all(c.score < 15.0 for c in cs.candidates[1:]), "chance tracks resemble the clip far less"


def test_verification_outranks_a_louder_vote() -> None:
    # Track 5 gets more votes (a repeated passage its segments retrieved), but
    # track 9 holds the clip where it says: verification ranks 9 first.
    rng = np.random.default_rng(2)
    q = np.arange(30) * 0.1
    index = FakeIndex({5: _grid_track(rng, 60.0), 9: _grid_track(rng, 30.0)})
    qv = _clip_of(index.tracks[9], 8.0, q)
    track = np.full((30, 2), -1)
    time = np.zeros((30, 2))
    sim = np.zeros((30, 2))
    item = np.full((30, 2), -1)
    track[:, 0], time[:, 0], sim[:, 0], item[:, 0] = 5, np.round((40.0 + q) / 0.5) * 0.5, 0.9, 100 + np.arange(30)
    track[::3, 1], time[::3, 1], sim[::3, 1], item[::3, 1] = 9, np.round((8.0 + q[::3]) / 0.5) * 0.5, 0.7, 200 + np.arange(10)
    cs = score_segments(index, qv, q, _nn(track, time, sim, item), IndexConfig(), 0.1)
    assert [c.track for c in cs.candidates] == [9, 5]
    assert cs.candidates[0].votes < cs.candidates[1].votes
    assert abs(cs.best.offset - 8.0) < 0.3


def test_aligned_similarity_compares_each_segment_where_it_should_be() -> None:
    from audiosim.match.verify import aligned_similarity

    rng = np.random.default_rng(3)
    times, vecs = _grid_track(rng, 20.0)
    qt = np.arange(5) * 0.5
    qv = _clip_of((times, vecs), 10.0, qt)
    assert aligned_similarity(qv, qt, times, vecs, 10.0, 0.25) == pytest.approx(np.ones(5), abs=1e-5)
    shifted = aligned_similarity(qv, qt, times, vecs, 13.0, 0.25)
    assert shifted.max() < 0.9, "at another offset the segments meet other music"
    # Beyond the track's end there is nothing to compare with: 0, not a penalty.
    tail = aligned_similarity(qv, qt, times, vecs, 18.5, 0.25)
    assert (tail[-2:] == 0).all()


def _cal() -> Calibration:
    bins = [
        CalibrationBin(1.0, 1, np.sort(np.linspace(0.0, 0.2, 101))[::-1]),
        CalibrationBin(2.0, 11, np.sort(np.linspace(0.0, 2.0, 101))[::-1]),
        CalibrationBin(5.0, 43, np.sort(np.linspace(0.0, 4.0, 101))[::-1]),
    ]
    return Calibration("leave-one-track-out", 0.01, bins)


def test_calibration_threshold_per_length() -> None:
    cal = _cal()
    # 101 scores evenly spread: at 1 %, one score (the top) may exceed the threshold.
    assert cal.threshold(1) == pytest.approx(0.198)
    assert cal.threshold(11) == pytest.approx(1.98)
    assert cal.threshold(27) == pytest.approx((1.98 + 3.96) / 2)  # interpolated on segments
    assert cal.threshold(75) > cal.threshold(43)  # extrapolated, never decreasing
    assert cal.threshold(11, max_false_match=0.1) == pytest.approx(1.8)  # another target, same scores
    assert cal.threshold(11, max_false_match=0.0) == pytest.approx(2.0)
    for b in cal.bins:  # the promise: at most the target share of absent scores exceed it
        assert np.mean(b.scores > cal.threshold(b.segments)) <= 0.01


def test_calibration_round_trips_through_json() -> None:
    import json

    cal = _cal()
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    for n in (1, 5, 11, 30, 43, 90):
        assert again.threshold(n) == pytest.approx(cal.threshold(n), abs=1e-4)
    assert [r["threshold"] for r in again.table()] == pytest.approx([0.198, 1.98, 3.96], abs=1e-4)


def test_identify_is_exposed_lazily() -> None:
    from audiosim.match import matcher as match

    assert audiosim.identify is match.identify
    assert audiosim.monitor is match.monitor
    with pytest.raises(AttributeError):
        audiosim.no_such_thing  # noqa: B018


# --------------------------------------------------------------------------
# End to end with the trained model and the songbook
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def songbook_index(tmp_path_factory: pytest.TempPathFactory):
    """A data home with 8 songbook songs indexed and calibrated; a 9th song stays out."""
    model = trained_model()
    from audiosim.demo.songbook import write_songbook
    from audiosim.index import writer as I
    from audiosim.ingest.ingest import ingest_many

    root = tmp_path_factory.mktemp("songbook-index")
    paths = write_songbook(root / "songs", n=10, seconds=30.0, sample_rate=SR, seed=3)
    home = root / "home"
    res = ingest_many(paths[:8], home)
    assert all(r.status == "added" for r in res)
    cfg = IndexConfig(calibration_clips=100, calibration_seconds=(1.0, 2.0, 3.0, 5.0))
    result = I.update(home, model, cfg)
    assert result.calibrated
    return home, paths, model


def _noisy(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(x)).astype(np.float32)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return x + noise


def test_shifted_noisy_copy_matches_at_the_right_offset(songbook_index) -> None:
    home, paths, model = songbook_index
    with Matcher(home, model) as m:
        for i, start in ((1, 7.3), (4, 12.05), (6, 21.7)):
            x, sr = sf.read(paths[i], dtype="float32")
            clip = _noisy(x[int(start * sr) : int((start + 5) * sr)], snr_db=10, seed=i)
            got = m.match(clip, sr)
            assert got.matched, got
            assert got.path == str(paths[i].resolve())
            assert got.track_id is not None and abs(got.offset - start) <= 0.25, got
            assert got.title and got.n_segments > 30 and got.votes > 5


def _played_fast(x: np.ndarray, sr: int, speed: float) -> np.ndarray:
    """``x`` played ``speed`` times too fast (pitch and tempo up), at rate ``sr``."""
    from audiosim.signal import audio

    return audio.resample(x, int(round(sr * speed)), sr)


def test_unsped_undoes_a_speed_change() -> None:
    from audiosim.match.matcher import unsped

    sr = 8000
    t = np.arange(2 * sr) / sr
    x = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    fast = _played_fast(x, sr, 1.06)
    assert len(fast) == pytest.approx(len(x) / 1.06, abs=2)

    def peak(y: np.ndarray) -> float:
        return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(np.abs(np.fft.rfft(y)))])

    assert peak(fast) == pytest.approx(440.0 * 1.06, abs=2)
    back = unsped(fast, sr, 1.06)
    assert peak(back) == pytest.approx(440.0, abs=2) and len(back) == pytest.approx(len(x), abs=2)
    assert unsped(x, sr, 1.0) is not None and np.array_equal(unsped(x, sr, 1.0), x)


def test_a_copy_played_fast_matches_at_that_speed(songbook_index) -> None:
    import dataclasses

    from audiosim.match.matcher import score_wave

    home, paths, model = songbook_index
    x, sr = sf.read(paths[5], dtype="float32")
    start = 9.0
    clip = _played_fast(x[int(start * sr) : int((start + 5.3) * sr)], sr, 1.06)  # about 5 s, 6 % fast
    with Matcher(home, model) as m:
        as_given = score_wave(m.index, m.model, clip)
        cfg = dataclasses.replace(m.config, query_speeds=(0.95, 1.0, 1.05))
        tried = score_wave(m.index, m.model, clip, config=cfg)
        assert tried.speed == 1.05 and tried.best.track == as_given.best.track
        assert abs(tried.best.offset - start) <= 0.3, tried.best
        assert tried.score > as_given.score + 2.0, (tried.score, as_given.score)
        # A clip that is good enough as given is not tried at other speeds.
        calls = []
        orig = m.index.search
        m.index.search = lambda *a, **k: calls.append(1) or orig(*a, **k)
        try:
            plain = x[int(start * sr) : int((start + 5) * sr)]
            done = score_wave(m.index, m.model, plain, config=cfg, enough=lambda cs: cs.score > 10.0)
        finally:
            m.index.search = orig
        assert done.speed == 1.0 and len(calls) == 1


def test_calibrated_segment_counts_are_those_of_real_clips(songbook_index) -> None:
    """Thresholds are looked up by segment count: calibration must count as queries do."""
    import dataclasses

    from audiosim.match.calibrate import excerpt_best, segments_in
    from audiosim.match.matcher import score_wave

    home, paths, model = songbook_index
    x, sr = sf.read(paths[2], dtype="float32")
    with Matcher(home, model) as m:
        for speeds in ((1.0,), (0.95, 1.0, 1.05)):
            cfg = dataclasses.replace(m.config, query_speeds=speeds)
            for seconds in (1.0, 2.0, 5.0):
                clip = x[4 * sr : 4 * sr + int(seconds * sr)]
                assert score_wave(m.index, m.model, clip, config=cfg).n_segments == segments_in(seconds, m.model, cfg)
        assert segments_in(5.0, m.model, m.config) == 43 and segments_in(5.0, m.model, cfg) == 41
        # Prefixes of one calibration excerpt score like the clips themselves.
        m.index.config = cfg
        try:
            best = excerpt_best(m.index, m.model, x[4 * sr : 9 * sr], [2.0, 5.0])
        finally:
            m.index.config = m.config
        for (score, _, _), seconds in zip(best, (2.0, 5.0)):
            clip = x[4 * sr : 4 * sr + int(seconds * sr)]
            assert score == pytest.approx(score_wave(m.index, m.model, clip, config=cfg).score, rel=1e-4)


def test_calibration_must_be_for_the_speeds_tried() -> None:
    from audiosim.index.thresholds import STATISTIC, is_current
    from audiosim.index.writer import needs_calibration

    cal = {"statistic": STATISTIC, "index_tracks": 10, "query_speeds": [1.0]}
    assert is_current(cal) and is_current(cal, IndexConfig())
    wider = IndexConfig(query_speeds=(0.95, 1.0, 1.05))
    assert not is_current(cal, wider) and needs_calibration(cal, 0, wider)
    assert is_current(dict(cal, query_speeds=[1.05, 0.95, 1.0]), wider)


def test_song_not_in_catalogue_returns_none(songbook_index) -> None:
    home, paths, model = songbook_index
    for i in (8, 9):
        x, sr = sf.read(paths[i], dtype="float32")
        for start in (2.0, 14.0):
            clip = x[int(start * sr) : int((start + 5) * sr)]
            assert audiosim.identify(clip, sr, index=home, model=model) is None


def test_identify_path_and_threshold_override(songbook_index, tmp_path: Path) -> None:
    home, paths, model = songbook_index
    x, sr = sf.read(paths[2], dtype="float32")
    clip_path = tmp_path / "clip.wav"
    sf.write(clip_path, x[3 * sr : 6 * sr], sr)
    m = audiosim.identify(clip_path, index=home, model=model)
    assert m is not None and m.clip == str(clip_path) and abs(m.offset - 3.0) <= 0.25
    assert audiosim.identify(clip_path, index=home, model=model, threshold=math.inf) is None
    with Matcher(home, model) as mt:
        with pytest.raises(ValueError, match="sr="):
            mt.match(x[:SR * 3])


def test_monitor_timeline(songbook_index) -> None:
    home, paths, model = songbook_index
    a, sr = sf.read(paths[0], dtype="float32")
    b, _ = sf.read(paths[8], dtype="float32")  # absent
    c, _ = sf.read(paths[5], dtype="float32")
    rec = np.concatenate([a[4 * sr : 19 * sr], b[: 10 * sr], c[10 * sr : 25 * sr]])
    rows = audiosim.monitor(_noisy(rec, 15, 0), sr, index=home, model=model)
    tracks = [Path(r.path).name for r in rows]
    assert tracks == [paths[0].name, paths[5].name], rows
    first, second = rows
    assert first.start <= 1.0 and 13.0 <= first.end <= 16.5
    assert abs(first.offset - (4.0 + first.start)) <= 0.5
    assert 24.0 <= second.start <= 27.0 and second.end >= 38.0
    assert abs(second.offset - (10.0 + second.start - 25.0)) <= 0.5


def test_cli_identify_and_monitor(songbook_index, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from audiosim.cli.main import main

    home, paths, model = songbook_index
    x, sr = sf.read(paths[3], dtype="float32")
    y, _ = sf.read(paths[9], dtype="float32")
    present, absent, rec = tmp_path / "present.wav", tmp_path / "absent.wav", tmp_path / "rec.wav"
    sf.write(present, x[6 * sr : 11 * sr], sr)
    sf.write(absent, y[6 * sr : 11 * sr], sr)
    sf.write(rec, np.concatenate([y[: 8 * sr], x[4 * sr : 24 * sr]]), sr)
    base = ["--home", str(home), "--model", str(model)]

    assert main(["identify", str(present), str(absent), *base, "--format", "json"]) == 1  # one clip unmatched
    rows = json.loads(capsys.readouterr().out)
    assert [r["matched"] for r in rows] == [True, False]
    assert rows[0]["path"] == str(paths[3].resolve()) and abs(rows[0]["offset"] - 6.0) <= 0.25
    assert rows[0]["score"] > rows[0]["threshold"] > rows[1]["score"]

    assert main(["identify", str(present), *base, "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split(",") == ["clip", "track_id", "path", "title", "offset", "score", "threshold", "matched", "seconds"]
    assert main(["identify", str(present), *base, "--threshold", "1e9"]) == 1
    capsys.readouterr()

    assert main(["monitor", str(rec), *base, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["path"] == str(paths[3].resolve()) and 6.5 <= row["start"] <= 9.5 and abs(row["offset"] - (4.0 + row["start"] - 8.0)) <= 0.5

    assert main(["identify", str(present), "--home", str(tmp_path / "nowhere")]) == 2
    assert "no index" in capsys.readouterr().err


def test_calibration_drops_clips_that_found_their_own_music(tmp_path):
    """A leave-one-out clip whose match holds the same passage is not absent music."""
    from audiosim.config import FeatureConfig
    from audiosim.demo.songbook import render, songbook_specs
    from audiosim.match.calibrate import drop_shared_passages

    fc = FeatureConfig()
    sr = fc.sample_rate
    a, b = (render(s, sr) for s in songbook_specs(2, seconds=12.0))
    medley = np.concatenate([b[: 4 * sr], a[2 * sr : 8 * sr]])  # holds a's 2-8 s from 4 s on
    sf.write(tmp_path / "medley.wav", medley, sr)
    sf.write(tmp_path / "b.wav", b, sr)
    paths = {2: str(tmp_path / "medley.wav"), 3: str(tmp_path / "b.wav")}
    ctx = sr // 2
    excerpt = a[2 * sr - ctx : 5 * sr].astype(np.float32)  # 3 s of a from 2 s, plus context
    best = [
        [(20.0, 2, 4.0)],  # matched the medley where it copies a: the same passage
        [(19.0, 3, 1.0)],  # matched another song: a real false match
        [(18.0, 2, 0.5)],  # the medley, but where it plays b
    ]
    scores, dropped = drop_shared_passages(best, [excerpt] * 3, paths, [3.0], fc, top_share=1.0)
    assert dropped == 1
    assert scores == [[None], [19.0], [18.0]]
