"""Tests of audiosim.match.background: thresholds from a bank of other music.

The bank is made of music that is neither in the catalogue nor the absent
music the tests query with, as the shipped bank is on a user's machine.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from match_support import SR, noisy, trained_model

from audiosim.config import IndexConfig
from audiosim.demo.songbook import write_songbook
from audiosim.fingerprint.model import load_encoder
from audiosim.index import writer as W
from audiosim.index.reader import Index
from audiosim.ingest.ingest import ingest_many
from audiosim.match import spectral
from audiosim.match.background import (
    BackgroundBank,
    bank_path,
    calibrate_background,
    clips_by_held_track,
    make_bank,
    self_calibrate,
)
from audiosim.match.matcher import Matcher
from audiosim.signal import audio

LENGTHS = (1.0, 2.0, 3.0, 5.0)


def tiny_bank(digest: str = "d", hop: int = 13) -> BackgroundBank:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(6, 4))
    v = np.round(v / np.linalg.norm(v, axis=1, keepdims=True) * 127).astype(np.int8)
    return BackgroundBank(v, np.array([0, 0, 0, 1, 1, 1], np.int32), np.array([0, 13, 26] * 2, np.int32),
                          np.array([0, 0], np.int32), np.array([False, True]), np.array([0], np.int32),
                          np.array(["abc"]), {"model_digest": digest, "query_hop_frames": hop, "query_speeds": [1.0],
                                              "seconds": 10.0})


def test_bank_round_trips_through_its_file(tmp_path) -> None:
    bank = tiny_bank()
    bank.save(tmp_path / "m.background.npz")
    back = BackgroundBank.load(tmp_path / "m.background.npz")
    assert np.array_equal(back.vectors, bank.vectors) and np.array_equal(back.clip, bank.clip)
    assert back.meta == bank.meta and list(back.track_hashes) == ["abc"]
    assert [list(r) for r in back.clip_rows()] == [[0, 1, 2], [3, 4, 5]]
    assert np.allclose(np.linalg.norm(back.unit_vectors(np.arange(6)), axis=1), 1.0)


def test_a_bank_keeps_each_clips_peak_map_and_one_made_without_them_still_loads(tmp_path) -> None:
    rng = np.random.default_rng(2)
    maps = [rng.random((64, 30)) < 0.05, rng.random((64, 40)) < 0.05]
    bits = np.concatenate([spectral.pack(x) for x in maps])
    bank = dataclasses.replace(tiny_bank(), peak_bits=bits, clip_frames=np.array([0, 30, 70]))
    bank.save(tmp_path / "m.background.npz")
    back = BackgroundBank.load(tmp_path / "m.background.npz")
    assert back.has_peaks and all(np.array_equal(back.clip_peaks(c, 64), maps[c]) for c in range(2))
    tiny_bank().save(tmp_path / "old.background.npz")  # vectors only: format 1
    old = BackgroundBank.load(tmp_path / "old.background.npz")
    assert not old.has_peaks and np.array_equal(old.vectors, bank.vectors)
    dataclasses.replace(bank, clip_frames=np.array([0, 30, 71])).save(tmp_path / "bad.background.npz")
    with pytest.raises(ValueError, match="bad.background.npz.*peak maps"):
        BackgroundBank.load(tmp_path / "bad.background.npz")


def test_a_bank_file_that_is_not_one_is_refused_naming_it(tmp_path) -> None:
    bad = tmp_path / "bad.background.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.background.npz"):
        BackgroundBank.load(bad)
    pickled = tmp_path / "pickled.background.npz"  # an object array would need unpickling: never done
    np.savez(pickled, format=np.array(1), meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled.background.npz"):
        BackgroundBank.load(pickled)


def test_the_shipped_model_ships_a_bank_made_for_it() -> None:
    from audiosim.fingerprint.model import DEFAULT_FINGERPRINT_MODEL
    from audiosim.match.background import load_bank

    model = load_encoder(DEFAULT_FINGERPRINT_MODEL)
    bank = load_bank(model)
    assert bank is not None and bank.fits(model, IndexConfig()) is None and bank.has_peaks
    assert bank.n_clips >= IndexConfig().background_clips
    assert bank.clip_degraded.sum() * 2 == bank.n_clips  # half clean, half degraded


def test_a_bank_is_refused_for_another_model_or_query_settings() -> None:
    model = load_encoder(trained_model())
    from audiosim.fingerprint.model import model_digest
    from audiosim.match.scoring import query_hop_frames

    hop = query_hop_frames(IndexConfig(), model)
    assert tiny_bank(model_digest(model), hop).fits(model, IndexConfig()) is None
    assert "another model" in tiny_bank("other", hop).fits(model, IndexConfig())
    assert "query hop" in tiny_bank(model_digest(model), hop + 1).fits(model, IndexConfig())
    assert "speeds" in tiny_bank(model_digest(model), hop).fits(model, IndexConfig(query_speeds=(1.0, 1.05)))


def test_a_bank_serves_every_query_hop_its_own_divides() -> None:
    model = load_encoder(trained_model())
    from audiosim.fingerprint.model import model_digest

    fps = model.features.frames_per_second
    bank = tiny_bank(model_digest(model), 13)  # segments at frames 0, 13, 26 of each clip
    assert bank.fits(model, IndexConfig(query_hop_seconds=26 / fps)) is None
    assert [list(r) for r in bank.clip_rows(26)] == [[0, 2], [3, 5]]  # what a query at that hop has
    assert "does not divide" in bank.fits(model, IndexConfig(query_hop_seconds=20 / fps))


# --------------------------------------------------------------------------
# On the songbook
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> list[Path]:
    """16 songbook songs: 1-8 the catalogue, 9-10 absent music to query with, 11-16 the bank's music."""
    return write_songbook(tmp_path_factory.mktemp("songs"), n=16, seconds=30.0, sample_rate=SR, seed=3)


@pytest.fixture(scope="module")
def bank(songs, tmp_path_factory) -> tuple[Path, BackgroundBank]:
    """A copy of the shipped model with a bank of songs 11-16 beside it."""
    folder = tmp_path_factory.mktemp("model")
    src = trained_model()
    model_path = folder / "fingerprint.pt"
    shutil.copy(src, model_path)
    shutil.copy(src.with_suffix(".json"), model_path.with_suffix(".json"))
    model = load_encoder(model_path)
    b = make_bank(model, songs[10:], excerpts=60, seed=1)
    b.save(bank_path(model))
    return model_path, b


def indexed(root: Path, paths: list[Path], model_path: Path) -> Path:
    home = root / "home"
    assert all(r.status == "added" for r in ingest_many(paths, home))
    W.update(home, model_path, IndexConfig(calibration_seconds=LENGTHS))
    return home


def clips(paths: list[Path], starts=(2.0, 9.0, 16.0, 23.0), seconds: float = 3.0) -> list[np.ndarray]:
    out = []
    for p in paths:
        x = audio.load(p, SR)
        out += [x[int(s * SR) : int((s + seconds) * SR)] for s in starts]
    return out


def clips_in(cal) -> int:
    """Scores behind a calibration's thresholds, over all its lengths."""
    return sum(len(x.scores) for x in cal.bins)


@pytest.mark.slow
def test_a_bank_at_a_coarser_hop_is_the_finer_banks_subset(songs, bank) -> None:
    model_path, _ = bank
    model = load_encoder(model_path)
    from audiosim.match.scoring import query_hop_frames

    fine = IndexConfig()
    hop = query_hop_frames(fine, model)
    coarse = dataclasses.replace(fine, query_hop_seconds=2 * hop / model.features.frames_per_second)
    a = make_bank(model, songs[10:12], excerpts=4, seed=2, config=fine)
    b = make_bank(model, songs[10:12], excerpts=4, seed=2, config=coarse)
    rows = np.concatenate(a.clip_rows(2 * hop))
    assert len(rows) == len(b.vectors) < len(a.vectors)
    assert np.array_equal(a.starts[rows], b.starts) and np.array_equal(a.clip[rows], b.clip)
    assert np.abs(a.vectors[rows].astype(int) - b.vectors).max() <= 1  # int8 rounding of the same embeddings


@pytest.mark.slow
def test_bank_calibration_keeps_absent_songs_out_and_matches_degraded_copies(songs, bank, tmp_path) -> None:
    model_path, b = bank
    home = indexed(tmp_path, songs[:8], model_path)
    model = load_encoder(model_path)
    with Index.open(home) as idx:
        cal = self_calibrate(idx, model, home=home)
    assert cal is not None and cal.method == "background" and cal.tracks == 6
    assert cal.has_peaks, "every window's best candidate checked on the spectrum, from the home's features"
    assert [bin_.seconds for bin_ in cal.bins] == list(LENGTHS)
    W.store_calibration(home, cal)
    m = Matcher(home, model)
    # 5 s clips that start after the intro (one or two bars, at most 4 s at every songbook tempo): an
    # intro is a bare chord pad over sparse drums made by one recipe for every song, so any two
    # intros are as alike as two passages of one song
    absent = [m.answer(c, SR) for c in clips(songs[8:10], starts=(4.0, 9.0, 14.0, 19.0, 24.0), seconds=5.0)]
    assert not [a for a in absent if a.matched], "absent songs must not match"
    present = [m.answer(noisy(c, 10.0, seed=i), SR) for i, c in enumerate(clips(songs[:8]))]
    assert np.mean([a.matched for a in present]) >= 0.9
    assert all(a.peak_threshold < 1.0 for a in present), "the spectral check is on"


@pytest.mark.slow
def test_each_bank_clip_gives_a_score_per_window_of_each_length(songs, bank, tmp_path) -> None:
    model_path, b = bank
    model = load_encoder(model_path)
    home = indexed(tmp_path, songs[:8], model_path)
    with Index.open(home) as idx:
        prefixes = calibrate_background(idx, model, b, seconds=LENGTHS, windows=1)
        spread = calibrate_background(idx, model, b, seconds=LENGTHS, windows=4)
    n = len(prefixes.bins[0].scores)
    # a 10 s clip holds four windows of 1 and 2 s, three of 3 s, two of 5 s
    assert [len(x.scores) for x in spread.bins] == [4 * n, 4 * n, 3 * n, 2 * n]
    for one, many in zip(prefixes.bins, spread.bins):  # the first window of each clip is its prefix
        rest = list(np.round(many.scores, 6))
        for score in np.round(one.scores, 6):
            rest.remove(score)


@pytest.mark.slow
def test_the_same_song_twice_does_not_push_the_thresholds_up(songs, bank, tmp_path) -> None:
    model_path, b = bank
    model = load_encoder(model_path)
    once = indexed(tmp_path / "once", songs[:8], model_path)
    twice_dir = tmp_path / "twice-songs"
    twice_dir.mkdir()
    copy = twice_dir / "copy.flac"  # the same music again, another encoding: another content hash
    audio_x = audio.load(songs[0], SR)
    import soundfile as sf

    sf.write(copy, audio_x, SR, format="FLAC")
    twice = indexed(tmp_path / "twice", [*songs[:8], copy], model_path)
    thresholds = []
    for home in (once, twice):
        with Index.open(home) as idx:
            cal = calibrate_background(idx, model, b, seconds=LENGTHS)
        thresholds.append([cal.threshold(bin_.segments) for bin_ in cal.bins])
    assert np.all(np.array(thresholds[1]) <= np.array(thresholds[0]) * 1.05 + 0.05)


@pytest.mark.slow
def test_bank_music_that_the_catalogue_holds_is_scored_with_itself_left_out(songs, bank, tmp_path) -> None:
    model_path, b = bank
    model = load_encoder(model_path)
    without = indexed(tmp_path / "without", songs[:8], model_path)
    home = indexed(tmp_path / "with", [*songs[:8], songs[10]], model_path)  # song 11 is in the bank and the catalogue
    with Index.open(without) as idx:
        absent = calibrate_background(idx, model, b, seconds=LENGTHS)
    with Index.open(home) as idx:
        groups = clips_by_held_track(b, idx, range(len(b.clip_excerpt)))
        by_hash = calibrate_background(idx, model, b, seconds=LENGTHS)
    song11 = [c for c in range(len(b.clip_excerpt)) if b.excerpt_track[b.clip_excerpt[c]] == 0]
    assert sorted(groups) == [(), (9,)] and groups[(9,)] == song11  # song 11 is track 9 of the catalogue

    # every bank clip still calibrates, as when the catalogue lacks song 11, and the thresholds stay as low
    assert by_hash.tracks == absent.tracks == 6
    assert clips_in(by_hash) == clips_in(absent)
    for with_it, lacking in zip(by_hash.bins, absent.bins):
        assert with_it.threshold(0.01) <= lacking.threshold(0.01) * 1.05 + 0.05


@pytest.mark.slow
def test_bank_music_the_catalogue_holds_in_another_encoding_is_left_out(songs, bank, tmp_path) -> None:
    model_path, b = bank
    model = load_encoder(model_path)
    home = indexed(tmp_path, [*songs[:8], songs[10]], model_path)
    unknown = dataclasses.replace(b, track_hashes=np.array(["?"] * len(b.track_hashes)))  # as if re-encoded
    with Index.open(home) as idx:
        by_audio = calibrate_background(idx, model, unknown, seconds=LENGTHS)
        kept_all = calibrate_background(idx, model, unknown, seconds=LENGTHS, min_found_similarity=2.0)
    assert by_audio.tracks == 6

    # song 11's clips find their own music: left out, and they would have set the thresholds
    assert clips_in(by_audio) < clips_in(kept_all)
    top = max(range(len(kept_all.bins)), key=lambda j: kept_all.bins[j].seconds)
    assert by_audio.bins[top].threshold(0.01) < kept_all.bins[top].threshold(0.01)


@pytest.mark.slow
def test_without_a_bank_the_index_calibrates_leave_one_track_out(songs, tmp_path) -> None:
    model_path = tmp_path / "bare.pt"
    shutil.copy(trained_model(), model_path)
    home = indexed(tmp_path, songs[:4], model_path)
    events = []
    with Index.open(home) as idx:
        cal = self_calibrate(idx, load_encoder(model_path), home=home, progress=lambda s, i: events.append((s, i)))
    assert cal is not None and cal.method == "leave-one-track-out"
    assert ("calibrate-method", {"method": "leave-one-track-out", "why": "the model ships no background bank"}) in events


_RAN: list[str] = []


def _planted() -> str:
    _RAN.append("unpickled")
    return "planted"


class _Planted:
    def __reduce__(self):
        return (_planted, ())


def test_nothing_in_a_bank_file_is_unpickled(tmp_path) -> None:
    """A bank is read with ``allow_pickle=False``: a pickle planted in it is refused, never run."""
    path = tmp_path / "m.background.npz"
    tiny_bank().save(path)
    evil = tmp_path / "evil.background.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["meta"] = np.array([_Planted()], dtype=object)
    np.savez(evil, **arrays)
    with pytest.raises(ValueError, match="evil.background.npz"):
        BackgroundBank.load(evil)
    assert _RAN == []
