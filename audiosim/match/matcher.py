"""Identify clips against the index, and monitor long recordings.

A clip is cut into segments every ``query_hop_seconds`` (a whole number of
feature frames), near-silent ones are dropped, the rest are embedded and
each one's nearest indexed segments are fetched from every shard. Items of
tombstoned tracks and global hubs are never returned (see
:mod:`audiosim.index.reader`); items that one clip retrieves from too many of its
segments (local hubs) are ignored. Offset-consistent voting
(:func:`audiosim.match.voting.vote`) then proposes (track, offset) candidates,
and verification (:mod:`audiosim.match.verify`) scores each by comparing every
query segment with the track where the candidate says it should be.

The clip's *score* is the verified score of the best candidate: the sum,
over the clip's audible segments, of their best cosine similarity with the
track's indexed segments within ``verify_window`` s of the aligned time.
It grows with the clip's length, so the clip matches when its score
exceeds the threshold calibrated for its number of segments
(:mod:`audiosim.match.calibrate`): by default at most 1 % of clips of absent
music match. A one-segment (1 s) clip's score is its similarity with the
best candidate, with a threshold of its own.

A clip that does not match as given can be tried again as if it had been
played faster or slower (``IndexConfig.query_speeds``, :func:`unsped`);
the calibration then tries the same speeds, so the thresholds hold.

(Measured alternatives: the vote score alone, i.e. only the segments whose
neighbours agreed, matched 8 points fewer degraded 5 s clips at the same
false-match rate; the margin between the best and the runner-up track was
never better, much worse for 1 s clips, and would refuse clips of songs the
catalogue holds twice, e.g. in two encodings.)
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from audiosim.config import DecodeConfig, IndexConfig
from audiosim.fingerprint.model import Encoder
from audiosim.index.reader import Index, Neighbours, embed_logmel, resolve_model
from audiosim.index.thresholds import STATISTIC, Calibration, is_current
from audiosim.match.verify import verify_candidates
from audiosim.match.voting import Candidate, vote
from audiosim.signal import audio
from audiosim.signal import features as F
from audiosim.store.home import DataHome

# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """The answer for one clip.

    Attributes
    ----------
    clip : str
        The clip's path, or ``<array>``.
    track_id : int or None
        Best candidate track (None when nothing was retrieved); check ``matched``.
    path, title : str or None
        From the catalogue.
    offset : float
        Seconds into the track where the clip starts.
    score : float
        Verified score of the best (track, offset): summed similarity of
        the clip's segments with the track there (see module doc).
    votes : int
        Query segments whose neighbours agreed on the best (track, offset).
    n_segments : int
        Audible query segments the clip gave.
    matched : bool
        ``score > threshold``.
    threshold : float
        The threshold applied (calibrated for ``n_segments``, or given).
    seconds : float
        Wall-clock time taken (decode excluded when the clip is an array).
    clip_seconds : float
        Duration of the clip.
    speed : float
        Playback speed the clip was scored at: 1.05 means it matched as if
        played 5 % fast (see ``IndexConfig.query_speeds``).
    """

    clip: str
    track_id: int | None
    path: str | None
    title: str | None
    offset: float
    score: float
    votes: int
    n_segments: int
    matched: bool
    threshold: float
    seconds: float
    clip_seconds: float
    speed: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (for tables, JSON, CSV)."""
        return asdict(self)


@dataclass(frozen=True)
class TimelineRow:
    """A stretch of a recording identified as one track.

    Attributes
    ----------
    track_id : int
    path, title : str or None
    start, end : float
        Seconds in the recording (from the first to the last agreeing segment).
    offset : float
        Seconds into the track at ``start``.
    score : float
        Mean score of the windows merged.
    windows : int
        Windows merged into the row.
    """

    track_id: int
    path: str | None
    title: str | None
    start: float
    end: float
    offset: float
    score: float
    windows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClipScore:
    """Scored candidates for one clip, before the threshold.

    Attributes
    ----------
    candidates : list of Candidate
        Best verified score first, one per track.
    n_segments : int
    score : float
        ``candidates[0].score`` (0 without candidates), see :func:`clip_score`.
    speed : float
        The playback speed the clip was scored at (see :func:`unsped`).
    """

    candidates: list[Candidate]
    n_segments: int
    score: float
    speed: float = 1.0

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


def clip_score(candidates: Sequence[Candidate]) -> float:
    """The score thresholds apply to: the best candidate's verified score (0 if none)."""
    return float(candidates[0].score) if candidates else 0.0


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


def query_hop_frames(config: IndexConfig, model: Encoder) -> int:
    """``query_hop_seconds`` as a whole number of frames (at least 1)."""
    return F.seconds_to_frames(config.query_hop_seconds, model.features)


def hub_limit(config: IndexConfig, hop_seconds: float) -> int:
    """Most query segments of one clip that may retrieve the same index item.

    A true item is near the query segments within about ±0.75 s of its
    time, so ``config.hub_limit == 0`` allows the segments of 2 s.
    """
    if config.hub_limit > 0:
        return int(config.hub_limit)
    return int(math.ceil(2.0 / hop_seconds)) + 1


def drop_local_hubs(nn: Neighbours, limit: int) -> Neighbours:
    """Ignore items retrieved by more than ``limit`` distinct query segments.

    Returns a copy of ``nn`` with those entries' track set to -1.
    """
    q_n, k = nn.item.shape
    if q_n <= limit:
        return nn
    items = nn.item.reshape(-1)
    valid = items >= 0
    rows = np.repeat(np.arange(q_n), k)
    pairs = np.unique(np.stack([items[valid], rows[valid]]), axis=1)  # one count per (item, segment)
    uniq, counts = np.unique(pairs[0], return_counts=True)
    hubs = uniq[counts > limit]
    if len(hubs) == 0:
        return nn
    track = nn.track.copy()
    track[np.isin(nn.item, hubs)] = -1
    return Neighbours(track, nn.time, nn.sim, nn.item)


def refine_offset(nn: Neighbours, query_times: np.ndarray, track: int, offset: float, window: float) -> float:
    """A finer offset for ``track``: the mean over query segments of the
    offset implied by their most similar neighbour of that track within
    ``window`` s of ``offset``.

    Indexed segments lie on a grid (``index_hop_seconds``), so each
    segment's implied offset is off by up to half a hop; the errors of
    segments at different clip times cancel in the mean, whereas the vote's
    own estimate (the offsets falling in the winning bin) is pulled to the
    bin's centre.
    """
    off = nn.time - query_times[:, None]
    ok = (nn.track == track) & (np.abs(off - offset) <= window)
    rows = np.flatnonzero(ok.any(axis=1))
    if len(rows) == 0:
        return offset
    sims = np.where(ok[rows], nn.sim[rows], -np.inf)
    best = off[rows, np.argmax(sims, axis=1)]
    return float(np.mean(best))


def score_segments(
    index: Index,
    vectors: np.ndarray,
    query_times: np.ndarray,
    nn: Neighbours,
    config: IndexConfig,
    hop_seconds: float,
) -> ClipScore:
    """Vote over a clip's neighbours, verify the candidates, score the clip.

    Parameters
    ----------
    index : Index
    vectors : ndarray, shape (Q, dim)
        The clip's segment embeddings.
    query_times : ndarray, shape (Q,)
        Their start times (s) within the clip.
    nn : Neighbours
        Their nearest indexed segments.
    config : IndexConfig
    hop_seconds : float
        Hop between query segments.

    Returns
    -------
    ClipScore
        Candidates ranked by verified score; the best one's offset is
        refined with :func:`refine_offset`.
    """
    nn = drop_local_hubs(nn, hub_limit(config, hop_seconds))
    cands = vote(query_times, nn.track, nn.time, nn.sim, bin_seconds=config.index_hop_seconds,
                 top=max(1, config.verify_candidates))
    cands = verify_candidates(index, vectors, query_times, cands, config.verify_window)
    if cands and len(query_times) > 1:
        b = cands[0]
        off = refine_offset(nn, query_times, b.track, b.offset, config.index_hop_seconds)
        off = refine_offset(nn, query_times, b.track, off, 0.75 * config.index_hop_seconds)
        cands[0] = replace(b, offset=off)
    return ClipScore(cands, len(query_times), clip_score(cands))


def unsped(wave: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """The clip as it sounds at normal speed, if it was played ``speed`` times too fast.

    Playing faster raises pitch and tempo together; resampling by ``speed``
    undoes both. ``speed=1.0`` returns the clip as given.

    Examples
    --------
    >>> len(unsped(np.zeros(8000, np.float32), 8000, 1.05))
    8400
    """
    if speed == 1.0:
        return np.asarray(wave, np.float32)
    return audio.resample(np.asarray(wave, np.float32), sample_rate, int(round(sample_rate * speed)))


def speeds_to_try(config: IndexConfig) -> list[float]:
    """``config.query_speeds``, the speed nearest 1.0 (the clip as given) first."""
    return sorted({float(x) for x in config.query_speeds}, key=lambda x: (abs(x - 1.0), x))


def clip_at_speeds(
    model: Encoder, wave: np.ndarray, config: IndexConfig, hop: int
) -> list[tuple[float, torch.Tensor, np.ndarray]]:
    """``(speed, log-mel, audible segment starts)`` of the clip unsped at each
    query speed (:func:`speeds_to_try` order); speeds at which it has no
    audible segment are left out."""
    f = model.features
    out = []
    with torch.inference_mode():
        for speed in speeds_to_try(config):
            lm = F.log_mel(torch.from_numpy(unsped(wave, f.sample_rate, speed)), f)
            starts = F.audible_segments(lm, hop, f)
            if len(starts):
                out.append((speed, lm, starts))
    return out


def common_count(counts: Sequence[int]) -> int:
    """Segments every speed is scored on: the fewest any speed has (speeds
    with none are skipped; 0 when none has any).

    >>> common_count([43, 41, 0, 45])
    41
    """
    have = [int(c) for c in counts if c]
    return min(have) if have else 0


def score_wave(
    index: Index,
    model: Encoder,
    wave: np.ndarray | torch.Tensor,
    exclude_tracks: Sequence[int] | int | None = None,
    config: IndexConfig | None = None,
    enough: Callable[[ClipScore], bool] | None = None,
) -> ClipScore:
    """Segment, embed, search and score one clip at the model's sample rate.

    With several ``config.query_speeds`` the clip is scored at each (see
    :func:`unsped`), every speed on the same number of segments (the fewest
    any speed gives; a speed at which the clip is too short for a segment
    is skipped), and the best score wins. The clip as given comes
    first; the other speeds are embedded and searched only while ``enough``
    says no (the clip is under its threshold, so another speed could still
    change the decision).

    Parameters
    ----------
    exclude_tracks : int or sequence of int, optional
        Ignore these tracks' items (leave-one-track-out calibration).
    enough : callable, optional
        ``enough(clip_score) -> bool``, asked after each speed.
    """
    cfg = config or index.config
    f = model.features
    hop = query_hop_frames(cfg, model)
    x = np.asarray(wave.numpy() if isinstance(wave, torch.Tensor) else wave, np.float32)
    clips = clip_at_speeds(model, x, cfg, hop)  # log-mels are cheap: all of them, to know the common count
    n = common_count([len(starts) for *_, starts in clips])
    if n == 0:
        return ClipScore([], 0, 0.0)
    best: ClipScore | None = None
    for speed, lm, starts in clips:
        starts = starts[:n]
        vecs = model.embed(F.segments(lm, starts, f)).numpy()
        times = starts / f.frames_per_second
        nn = index.search(vecs, cfg.neighbours, exclude_tracks=exclude_tracks)
        cs = replace(score_segments(index, vecs, times, nn, cfg, hop / f.frames_per_second), speed=speed)
        if best is None or cs.score > best.score:
            best = cs
        if enough is not None and enough(best):
            break
    assert best is not None
    return best


# --------------------------------------------------------------------------
# The matcher
# --------------------------------------------------------------------------


def _calibration(index: Index) -> Calibration | None:
    """The index's thresholds; None (with a warning) if missing or for another score."""
    cal = index.manifest.calibration
    if cal and not is_current(cal):
        warnings.warn(
            f"index {index.directory} was calibrated for score {cal.get('statistic')!r}, not "
            f"{STATISTIC!r}: nothing will match until `audiosim index` recalibrates it", stacklevel=3,
        )
        return None
    if cal and not is_current(cal, index.config):
        warnings.warn(
            f"index {index.directory} was calibrated trying clips at speeds {cal.get('query_speeds', [1.0])}, "
            f"not {list(index.config.query_speeds)}: the false-match rate will differ from the one asked for; "
            "run `audiosim index` to recalibrate", stacklevel=3,
        )
    return Calibration.from_dict(cal) if cal else None


class Matcher:
    """An index and a model loaded once, to identify many clips.

    Parameters
    ----------
    index : Index, str or Path, optional
        An opened index, or the data home (or index folder) to open.
        Default: ``$AUDIOSIM_HOME`` or ``./data``.
    model : Encoder, str or Path, optional
        Default: the checkpoint the index was built with, else
        ``models/fingerprint.pt``. It must be the index's model.
    threshold : float, optional
        Fixed threshold on the score, instead of the calibrated ones.
    max_false_match : float, optional
        Target share of absent clips that match (default: the index's
        ``IndexConfig.max_false_match``); picks thresholds from the
        calibration scores stored in the manifest.
    config : IndexConfig, optional
        Query settings overriding the index's (``search_k``, ``neighbours``...).
    home : str or Path, optional
        Data home whose catalogue gives paths and titles (default: the
        index's parent folder).

    Raises
    ------
    FileNotFoundError
        If there is no index.
    ConfigMismatchError
        If ``model`` is not the one the index was built with.
    """

    def __init__(
        self,
        index: Index | str | Path | DataHome | None = None,
        model: Encoder | str | Path | None = None,
        *,
        threshold: float | None = None,
        max_false_match: float | None = None,
        config: IndexConfig | None = None,
        home: str | Path | DataHome | None = None,
    ):
        if not isinstance(index, Index):
            index = Index.open(index, config=config)
        elif config is not None:
            index.config = config
            index._apply_masks()
        self.index = index
        self.model = resolve_model(model, index.manifest, index.manifest.feature_config)
        from audiosim.index.reader import check_compatible

        check_compatible(index.manifest, index.directory, self.model)
        self.config = index.config
        self.fixed_threshold = threshold
        self.max_false_match = self.config.max_false_match if max_false_match is None else float(max_false_match)
        self.calibration = _calibration(index)
        if not index.manifest.calibration and threshold is None:
            warnings.warn(
                f"index {index.directory} has no calibrated threshold: nothing will match; run "
                "`audiosim index` or pass threshold=", stacklevel=2,
            )
        self.home = DataHome.resolve(home) if home is not None else DataHome(index.directory.parent)
        self._hop = query_hop_frames(self.config, self.model)
        self._catalog = None
        self._rows: dict[int, tuple[str | None, str | None, str | None, str | None]] = {}
        self._live = index.live_tracks()
        self._warm_up()

    def _warm_up(self) -> None:
        # The first forward pass and search pay one-off costs (allocations,
        # page faults of the memory-mapped shards): pay them here, not in
        # the first clip's time.
        f = self.model.features
        self.model.embed(torch.zeros(1, f.n_mels, f.segment_frames))
        if self.index.n_items:
            self.index.search(np.ones((1, self.index.dim), np.float32), 1)
        if self._live:
            self._track_row(next(iter(self._live)))  # opens the catalogue

    # -- thresholds ----------------------------------------------------------

    def threshold(self, n_segments: int, threshold: float | None = None, max_false_match: float | None = None) -> float:
        """The threshold for a clip of ``n_segments`` audible segments.

        ``threshold`` and ``max_false_match`` override the matcher's settings.
        """
        fixed = self.fixed_threshold if threshold is None else threshold
        if fixed is not None:
            return float(fixed)
        if self.calibration is None:
            return math.inf
        return self.calibration.threshold(n_segments, self.max_false_match if max_false_match is None else max_false_match)

    # -- catalogue -----------------------------------------------------------

    def _track_row(self, track_id: int) -> tuple[str | None, str | None, str | None, str | None]:
        """(path, title, content hash, status) of a track, cached; Nones if unknown."""
        if track_id not in self._rows:
            row = None
            try:
                if self._catalog is None and self.home.catalog_path.exists():
                    from audiosim.store.catalog import Catalog

                    self._catalog = Catalog(self.home.catalog_path, create=False)
                if self._catalog is not None:
                    row = self._catalog.get(track_id)
            except Exception:  # the catalogue is a nicety here: the index decides
                row = None
            self._rows[track_id] = (
                (row.path, row.title, row.content_hash, row.status) if row is not None else (None, None, None, None)
            )
        return self._rows[track_id]

    def _current(self, track_id: int) -> bool:
        """False when the catalogue says the track was removed or changed since indexing."""
        if not self.home.catalog_path.exists():
            return True
        path, title, h, status = self._track_row(track_id)
        return status == "ok" and h == self._live.get(track_id)

    # -- clips ---------------------------------------------------------------

    def load_clip(self, clip: str | Path | np.ndarray, sr: int | None = None) -> np.ndarray:
        """Decode a path, or mix down and resample an array, to the model's rate.

        Raises
        ------
        ValueError
            For an array without ``sr``.
        AudioError
            For a file that cannot be decoded.
        """
        rate = self.model.features.sample_rate
        if isinstance(clip, (str, Path)):
            return audio.load(clip, rate, DecodeConfig(min_seconds=0.0))
        if sr is None:
            raise ValueError("identify(array) needs sr= (the array's sample rate)")
        x = np.asarray(clip, dtype=np.float32)
        if x.ndim == 2:
            x = audio.to_mono(x if x.shape[0] > x.shape[1] else x.T)
        return audio.resample(x, int(sr), rate)

    def score(
        self,
        wave: np.ndarray,
        exclude_tracks: Sequence[int] | int | None = None,
        threshold: float | None = None,
        max_false_match: float | None = None,
    ) -> ClipScore:
        """Score a clip already at the model's rate; stale tracks are skipped.

        Other ``query_speeds`` are tried only while the clip stays under its
        threshold (``threshold`` and ``max_false_match`` as in :meth:`match`).
        """
        def enough(cs: ClipScore) -> bool:
            return self._fresh(cs).score > self.threshold(cs.n_segments, threshold, max_false_match)

        return self._fresh(score_wave(self.index, self.model, wave, exclude_tracks, self.config, enough))

    def _fresh(self, cs: ClipScore) -> ClipScore:
        """``cs`` without candidates of tracks no longer current in the index."""
        fresh = [c for c in cs.candidates if self._current(c.track)]
        if len(fresh) == len(cs.candidates):
            return cs
        return ClipScore(fresh, cs.n_segments, clip_score(fresh), cs.speed)

    def match(
        self,
        clip: str | Path | np.ndarray,
        sr: int | None = None,
        name: str | None = None,
        *,
        threshold: float | None = None,
        max_false_match: float | None = None,
    ) -> Match:
        """Identify one clip and always return a :class:`Match` (see ``matched``).

        Parameters
        ----------
        clip : str, Path or ndarray
            A file, or samples ``(n,)`` / ``(n, channels)`` with ``sr``.
        sr : int, optional
            Sample rate of an array clip.
        name : str, optional
            Shown as ``Match.clip`` (default: the path, or ``<array>``).
        threshold, max_false_match : float, optional
            Override the matcher's settings for this clip.
        """
        t0 = time.perf_counter()
        wave = self.load_clip(clip, sr)
        if not isinstance(clip, (str, Path)):
            t0 = time.perf_counter()
        cs = self.score(wave, threshold=threshold, max_false_match=max_false_match)
        return self.decide(cs, name or (str(clip) if isinstance(clip, (str, Path)) else "<array>"),
                           len(wave) / self.model.features.sample_rate, t0, threshold, max_false_match)

    def decide(
        self,
        cs: ClipScore,
        name: str,
        clip_seconds: float,
        t0: float,
        threshold: float | None = None,
        max_false_match: float | None = None,
    ) -> Match:
        """Apply the threshold to a :class:`ClipScore`; ``t0`` is the start time (``perf_counter``)."""
        thr = self.threshold(cs.n_segments, threshold, max_false_match)
        best = cs.best
        if best is None:
            return Match(name, None, None, None, 0.0, 0.0, 0, cs.n_segments, False, thr,
                         time.perf_counter() - t0, clip_seconds, cs.speed)
        path, title, _, _ = self._track_row(best.track)
        return Match(
            name, int(best.track), path, title, round(float(best.offset), 3), round(cs.score, 4), int(best.votes),
            cs.n_segments, bool(cs.score > thr), thr, time.perf_counter() - t0, clip_seconds, cs.speed,
        )

    def identify(self, clip: str | Path | np.ndarray, sr: int | None = None, **overrides: float | None) -> Match | None:
        """The :class:`Match` when the clip matches, else None (``overrides`` as in :meth:`match`)."""
        m = self.match(clip, sr, **overrides)
        return m if m.matched else None

    # -- long recordings -----------------------------------------------------

    def monitor(
        self,
        recording: str | Path | np.ndarray,
        sr: int | None = None,
        window: float = 5.0,
        hop: float = 2.5,
        max_gap_windows: int = 1,
        threshold: float | None = None,
        max_false_match: float | None = None,
    ) -> list[TimelineRow]:
        """Identify a sliding window over a long recording and merge the answers.

        Every segment is embedded and searched once; each window votes over
        the segments it contains. Consecutive matched windows naming the
        same track at a consistent position (track time minus recording
        time within 1 s, so small speed drifts are tolerated) are merged
        into one row; a run of up to ``max_gap_windows`` unmatched windows
        between them does not break the row. Windows are scored as played:
        ``query_speeds`` other than 1 are not tried here (their thresholds
        still apply, so monitoring only gets more cautious).

        Parameters
        ----------
        recording : str, Path or ndarray
            A file (decoded block by block) or samples with ``sr``.
        window, hop : float
            Window length and hop in seconds.
        threshold, max_false_match : float, optional
            Override the matcher's settings.

        Returns
        -------
        list of TimelineRow
            In recording order.
        """
        f = self.model.features
        if isinstance(recording, (str, Path)):
            lm = F.log_mel_stream(audio.stream(recording, f.sample_rate, DecodeConfig(min_seconds=0.0)), f)
        else:
            with torch.inference_mode():
                lm = F.log_mel(torch.from_numpy(self.load_clip(recording, sr)), f).numpy()
        fps = f.frames_per_second
        vecs, starts = embed_logmel(self.model, lm, self._hop)
        if len(vecs) == 0:
            return []
        nn = self.index.search(vecs, self.config.neighbours)
        seg_times = starts / fps
        total = lm.shape[1] / fps
        span = f.segment_samples / f.sample_rate  # audio a segment covers: a window holds the segments a clip would
        windows = []
        w0 = 0.0
        while True:
            w1 = w0 + window
            sel = np.flatnonzero((seg_times >= w0 - 1e-6) & (seg_times + span <= w1 + 1e-6))
            if len(sel):
                sub = Neighbours(nn.track[sel], nn.time[sel], nn.sim[sel], nn.item[sel])
                cs = self._fresh(score_segments(self.index, vecs[sel], seg_times[sel] - w0, sub, self.config,
                                                self._hop / fps))
                best = cs.best
                ok = best is not None and cs.score > self.threshold(cs.n_segments, threshold, max_false_match)
                windows.append((w0, min(w1, total), cs, ok, sel))
            if w1 >= total:
                break
            w0 += hop
        return self._merge(windows, nn, seg_times, max_gap_windows)

    def _merge(self, windows: list, nn: Neighbours, seg_times: np.ndarray, max_gap: int) -> list[TimelineRow]:
        f = self.model.features
        seg_len = f.segment_samples / f.sample_rate
        rows: list[dict[str, Any]] = []
        gap = 0
        for w0, w1, cs, ok, sel in windows:
            if not ok:
                gap += 1
                continue
            best = cs.best
            anchor = w0 + 0.0 - best.offset  # recording time where the track would start
            cur = rows[-1] if rows else None
            # Agreeing segments locate the stretch more precisely than the window.
            agree = sel[
                np.any((nn.track[sel] == best.track)
                       & (np.abs(nn.time[sel] - (seg_times[sel][:, None] - w0 + best.offset)) <= 0.75), axis=1)
            ]
            a0 = float(seg_times[agree].min()) if len(agree) else w0
            a1 = float(seg_times[agree].max() + seg_len) if len(agree) else w1
            if cur is not None and cur["track"] == best.track and abs(cur["anchor"] - anchor) <= 1.0 and gap <= max_gap:
                cur["end"] = max(cur["end"], a1)
                cur["scores"].append(cs.score)
                cur["anchor"] = anchor
            else:
                rows.append({"track": best.track, "start": a0, "end": a1, "anchor": anchor, "scores": [cs.score],
                             "offset0": best.offset + (a0 - w0)})
            gap = 0
        out = []
        for r in rows:
            path, title, _, _ = self._track_row(r["track"])
            out.append(TimelineRow(int(r["track"]), path, title, round(r["start"], 2), round(r["end"], 2),
                                   round(float(r["offset0"]), 2), round(float(np.mean(r["scores"])), 4),
                                   len(r["scores"])))
        return out

    def refresh(self) -> bool:
        """Reopen the index if a newer manifest was published; True if it was."""
        if self.index.is_current():
            return False
        new = self.index.reopen()
        old, self.index = self.index, new
        old.close()
        self.config = new.config
        self.calibration = _calibration(new)
        self._live = new.live_tracks()
        self._rows.clear()
        return True

    def close(self) -> None:
        """Release the index and the catalogue connection."""
        self.index.close()
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def __enter__(self) -> "Matcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------
# Convenience functions
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _cached_matcher(home: str | None, model: str | None) -> Matcher:
    return Matcher(home, model)


def _matcher(index: Index | str | Path | DataHome | None, model: Encoder | str | Path | None) -> Matcher:
    if isinstance(index, Index) or isinstance(model, Encoder):
        return Matcher(index, model)
    key_home = None if index is None else str(Path(index if not isinstance(index, DataHome) else index.root).resolve())
    m = _cached_matcher(key_home, None if model is None else str(Path(model).resolve()))
    m.refresh()
    return m


def identify(
    clip: str | Path | np.ndarray,
    sr: int | None = None,
    index: Index | str | Path | DataHome | None = None,
    model: Encoder | str | Path | None = None,
    *,
    threshold: float | None = None,
    max_false_match: float | None = None,
) -> Match | None:
    """Identify a clip: the matching catalogue track and where the clip starts in it.

    Parameters
    ----------
    clip : str, Path or ndarray
        An audio file, or samples ``(n,)`` or ``(n, channels)``.
    sr : int, optional
        Sample rate of an array clip (required then).
    index : Index, str or Path, optional
        An opened index or a data home (default ``$AUDIOSIM_HOME`` or
        ``./data``). Homes are opened once and kept (with their model) for
        later calls; a newer published index is picked up automatically.
    model : Encoder, str or Path, optional
        Default: the index's own checkpoint, else ``models/fingerprint.pt``.
    threshold : float, optional
        Fixed score threshold instead of the calibrated one.
    max_false_match : float, optional
        Share of absent-music clips allowed to match (default 0.01).

    Returns
    -------
    Match or None
        None when the clip matches nothing in the catalogue.

    Examples
    --------
    >>> import audiosim
    >>> m = audiosim.identify("clip.wav", index="data")  # doctest: +SKIP
    >>> m.title, m.offset  # doctest: +SKIP
    ('Bleostrada', 42.4)
    """
    return _matcher(index, model).identify(clip, sr, threshold=threshold, max_false_match=max_false_match)


def monitor(
    recording: str | Path | np.ndarray,
    sr: int | None = None,
    index: Index | str | Path | DataHome | None = None,
    model: Encoder | str | Path | None = None,
    *,
    window: float = 5.0,
    hop: float = 2.5,
    threshold: float | None = None,
    max_false_match: float | None = None,
) -> list[TimelineRow]:
    """Timeline of the catalogue tracks heard in a long recording.

    See :meth:`Matcher.monitor`; the other parameters are as in :func:`identify`.
    """
    m = _matcher(index, model)
    return m.monitor(recording, sr, window=window, hop=hop, threshold=threshold, max_false_match=max_false_match)
