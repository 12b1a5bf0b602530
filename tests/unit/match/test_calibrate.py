"""Tests of audiosim.match.calibrate: calibration clips are scored as queries are.

The thresholds' own maths (interpolation, round trip, currency) is
:mod:`audiosim.index.thresholds`', tested in ``tests/unit/index/test_thresholds.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from audiosim.config import FeatureConfig
from audiosim.demo.songbook import render, songbook_specs
from audiosim.index.manifest import Manifest
from audiosim.match.calibrate import (
    ExcerptScore,
    calibrate,
    drop_shared_passages,
    excerpt_best,
    segments_in,
)
from audiosim.match.matcher import Matcher
from audiosim.match.scoring import score_wave
from audiosim.store.home import DataHome


@pytest.mark.slow
def test_calibrated_segment_counts_are_those_of_real_clips(songbook_index) -> None:
    """Thresholds are looked up by segment count: calibration must count as queries do."""
    home, paths, model = songbook_index
    x, sr = sf.read(paths[2], dtype="float32")
    with Matcher(home, model) as m:
        for speeds in ((1.0,), (0.95, 1.0, 1.05)):
            cfg = dataclasses.replace(m.config, query_speeds=speeds)
            for seconds in (1.0, 2.0, 5.0):
                clip = x[4 * sr : 4 * sr + int(seconds * sr)]
                assert score_wave(m.index, m.model, clip, config=cfg).n_segments == segments_in(seconds, m.model, cfg)
        assert segments_in(5.0, m.model, m.config) == 15 and segments_in(5.0, m.model, cfg) == 14
        # Prefixes of one calibration excerpt score like the clips themselves.
        m.index.config = cfg
        try:
            best = excerpt_best(m.index, m.model, x[4 * sr : 9 * sr], [2.0, 5.0, 7.0])
        finally:
            m.index.config = m.config
        assert best[2] is None, "a length beyond the excerpt has no clip"
        for b, seconds in zip(best[:2], (2.0, 5.0)):
            clip = x[4 * sr : 4 * sr + int(seconds * sr)]
            cs = score_wave(m.index, m.model, clip, config=cfg)
            assert b.score == pytest.approx(cs.score, rel=1e-4)
            assert b.track == cs.best.track


@pytest.mark.slow
def test_calibration_on_absent_music_returns_thresholds_without_publishing(songbook_index) -> None:
    home, paths, model = songbook_index
    directory = DataHome(home).index_dir
    before = Manifest.load(directory)
    cal = calibrate(home, paths[8:], model=model, seconds=(1.0, 2.0), clips=6, max_false_match=0.05)
    assert cal.method == "absent-music" and cal.tracks == 2 and cal.max_false_match == 0.05
    assert [b.seconds for b in cal.bins] == [1.0, 2.0] and all(len(b.scores) == 6 for b in cal.bins)
    assert cal.is_current() and cal.model_digest == before.model_digest
    assert cal.has_peaks and all(((b.peaks >= 0) & (b.peaks <= 1)).all() for b in cal.bins), \
        "each clip checked on the spectrum as a query is, against the home's features"
    after = Manifest.load(directory)
    assert after.generation == before.generation, "publishing is the index writer's"
    assert after.calibration.to_dict() == before.calibration.to_dict()


@pytest.mark.slow
def test_calibration_without_decodable_absent_music_is_refused(songbook_index, tmp_path) -> None:
    home, _, model = songbook_index
    (tmp_path / "noise.wav").write_text("not audio")
    with pytest.raises(ValueError, match="no absent-music file"):
        calibrate(home, [tmp_path / "noise.wav"], model=model)


def test_calibration_drops_clips_that_found_their_own_music(tmp_path) -> None:
    """A leave-one-out clip whose match holds the same passage is not absent music."""
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
        [ExcerptScore(20.0, 2, 4.0)],  # matched the medley where it copies a: the same passage
        [ExcerptScore(19.0, 3, 1.0)],  # matched another song: a real false match
        [ExcerptScore(18.0, 2, 0.5)],  # the medley, but where it plays b
    ]
    scores, dropped = drop_shared_passages(best, [excerpt] * 3, paths, [3.0], fc, top_share=1.0)
    assert dropped == 1
    assert scores == [[None], [19.0], [18.0]]
