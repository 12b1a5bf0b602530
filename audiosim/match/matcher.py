"""Identify clips against the index: decide whether a clip matches, and name the track.

A :class:`Matcher` opens an index and its model once and checks they belong
together. Each clip is scored (:mod:`audiosim.match.scoring`) and judged by
a :class:`ThresholdPolicy`: the clip matches when its score exceeds the
threshold calibrated for its number of segments
(:mod:`audiosim.match.calibrate`; by default at most 1 % of clips of absent
music match), or a fixed threshold when one is given. A clip a little under
its threshold is checked on its spectrum as well: it matches when its
spectral peaks line up with its best candidate's at the matched offset
(:mod:`audiosim.match.spectral`), with thresholds calibrated on the same
absent clips so that both ways together stay within the false-match rate
(:meth:`~audiosim.index.thresholds.Calibration.rule`; the index's
calibration must hold peaks, and the data home its features). Candidates of tracks
removed or changed in the catalogue since indexing are skipped, and the
answer names the track from the catalogue (:class:`CatalogueView`).

Every answer (:class:`Match`) says what happened: ``status`` is
``matched``, ``no-match`` (the clip was heard and is not in the catalogue)
or ``error`` (it could not be heard: unreadable, too short, silence...),
with a ``reason``; the best candidate is kept apart from the answer, so a
no-match never names a track where a match would. Bad input raises
:class:`~audiosim.signal.audio.AudioError` from :meth:`Matcher.match`;
:meth:`Matcher.answer` turns it into an ``error`` answer for batches.

A lookup is a small batch (one clip's segments), for which torch's
default of one thread per core costs more in coordination than it gains,
all the more on a busy machine: lookups run on ``Matcher(threads=1)`` torch
threads unless told otherwise.

:func:`identify` is the one-call form; long recordings are
:mod:`audiosim.match.monitor`'s.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch

from audiosim.config import IndexConfig
from audiosim.fingerprint.model import Encoder
from audiosim.index.manifest import MANIFEST_NAME
from audiosim.index.reader import Index, check_compatible, resolve_model
from audiosim.index.thresholds import STATISTIC, Calibration, Rule
from audiosim.match.clips import Clip, clip_name, load_clip, unscorable
from audiosim.match.scoring import ClipScore, query_hop_frames, score_wave, unsped
from audiosim.match.spectral import TrackLogMels, peak_map
from audiosim.signal import features as F
from audiosim.signal.audio import AudioError
from audiosim.store.catalog import Catalog
from audiosim.store.home import DataHome

# --------------------------------------------------------------------------
# Answers and the values they are decided with
# --------------------------------------------------------------------------


Status = Literal["matched", "no-match", "error"]

NO_MATCH_REASONS = {
    "below-threshold": "the best candidate's score did not beat the threshold",
    "no-candidate": "no indexed segment of a current track was near the clip's",
    "uncalibrated": "the index has no thresholds, and none was given",
}
"""Why a clip that was heard matched nothing (errors have :class:`AudioError`'s reasons)."""


@dataclass(frozen=True)
class Match:
    """The answer for one clip: what happened, the track if it matched, and the best candidate.

    Attributes
    ----------
    clip : str
        The clip's path, or ``<array>``.
    status : {"matched", "no-match", "error"}
        ``no-match``: the clip was heard and is not in the catalogue;
        ``error``: it could not be heard (see ``reason``).
    reason : str
        Empty for a match; for a no-match one of :data:`NO_MATCH_REASONS`;
        for an error :class:`AudioError`'s (``too-short``, ``silence``,
        ``unreadable``, ``not-audio``, ``corrupt``...).
    track_id : int or None
        The matching track; None unless ``status`` is ``matched``.
    path, title : str or None
        The matching track's, from the catalogue (None unless matched).
    offset : float or None
        Seconds into the matching track where the matched passage starts
        (None unless matched). Never negative: see ``clip_start``.
    clip_start : float
        Seconds into the clip where the best candidate's passage starts:
        0 unless the clip begins with something else (silence, another
        track) before the track's own start.
    score : float
        The clip's score: the best candidate's verified score, summed
        similarity of the clip's segments with the track there (see
        :mod:`audiosim.match.scoring`); 0 without a candidate.
    threshold : float
        The threshold the score had to beat (calibrated for
        ``n_segments``, or given; inf without thresholds).
    peaks : float or None
        Share of the clip's spectral peaks on the best candidate's
        (:func:`~audiosim.match.spectral.peak_agreement`); None unless the
        score fell between ``peak_gate`` and ``threshold``, where it decides.
    peak_gate, peak_threshold : float
        The score above which peaks are checked, and the agreement they had
        to beat (inf when the spectral check is off).
    votes : int
        Query segments whose neighbours agreed on the best candidate.
    n_segments : int
        Audible query segments the clip gave.
    candidate_track_id : int or None
        The best candidate's track, matched or not (None when nothing was
        retrieved): what a no-match came closest to.
    candidate_path, candidate_title : str or None
        From the catalogue.
    candidate_offset : float or None
        Seconds into the candidate track where its passage starts (never negative).
    seconds : float
        Wall-clock time taken, decoding included.
    decode_seconds : float
        Of which decoding the file (0 for an array).
    clip_seconds : float
        Duration of the clip (0 when it could not be decoded).
    speed : float
        Playback speed the clip was scored at: 1.05 means it matched as if
        played 5 % fast (see ``IndexConfig.query_speeds``).
    detail : str
        What went wrong, for people (empty unless ``status`` is ``error``).
    """

    clip: str
    status: Status
    reason: str = ""
    track_id: int | None = None
    path: str | None = None
    title: str | None = None
    offset: float | None = None
    clip_start: float = 0.0
    score: float = 0.0
    threshold: float = math.inf
    peaks: float | None = None
    peak_gate: float = math.inf
    peak_threshold: float = math.inf
    votes: int = 0
    n_segments: int = 0
    candidate_track_id: int | None = None
    candidate_path: str | None = None
    candidate_title: str | None = None
    candidate_offset: float | None = None
    seconds: float = 0.0
    decode_seconds: float = 0.0
    clip_seconds: float = 0.0
    speed: float = 1.0
    detail: str = ""

    @property
    def matched(self) -> bool:
        """Whether the clip matched a catalogue track."""
        return self.status == "matched"

    @property
    def lookup_seconds(self) -> float:
        """Time taken after decoding: segmenting, embedding, searching, verifying, deciding."""
        return self.seconds - self.decode_seconds

    @classmethod
    def failed(cls, error: AudioError, seconds: float = 0.0, name: str | None = None) -> "Match":
        """The ``error`` answer for a clip that could not be heard."""
        return cls(name or error.path, "error", error.reason, seconds=seconds, detail=error.detail or str(error))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields and ``matched`` (for tables, JSON, CSV)."""
        return {**asdict(self), "matched": self.matched}


def passage_start(offset: float) -> tuple[float, float]:
    """``(offset in the track, start in the clip)`` of a candidate's passage.

    A candidate's offset is the track time at the clip's start; it is
    negative when the clip holds the track's beginning after something
    else (e.g. 5 s of silence or of another song, then the track from its
    start: -5.0). The passage then starts ``-offset`` s into the clip, at
    the track's 0.

    >>> passage_start(12.5), passage_start(-5.0)
    ((12.5, 0.0), (0.0, 5.0))
    """
    return (offset, 0.0) if offset >= 0 else (0.0, -offset)


@dataclass(frozen=True)
class ThresholdPolicy:
    """How scores are judged: a fixed threshold, or the calibrated one for a target rate.

    Built once per matcher and passed whole; a caller that wants other
    settings for one clip passes :meth:`overridden`.

    Attributes
    ----------
    calibration : Calibration or None
        The index's thresholds (None: nothing matches unless ``fixed`` is set).
    max_false_match : float
        Target share of absent clips that match; picks the thresholds from
        the calibration's stored scores.
    fixed : float or None
        A threshold on the score that replaces the calibrated ones (and
        the spectral check).
    peak_share, peak_gate : float
        The spectral check's settings (``IndexConfig.peak_share`` and
        ``peak_gate``); ``peak_share`` 0 turns it off.
    """

    calibration: Calibration | None
    max_false_match: float
    fixed: float | None = None
    peak_share: float = 0.0
    peak_gate: float = 1.0

    def __post_init__(self) -> None:
        check_max_false_match(self.max_false_match)
        if not 0.0 <= self.peak_share < 1.0:
            raise ValueError(f"peak_share must be in [0, 1), not {self.peak_share}")
        if not 0.0 <= self.peak_gate <= 1.0:
            raise ValueError(f"peak_gate must be in [0, 1], not {self.peak_gate}")

    def overridden(self, threshold: float | None = None, max_false_match: float | None = None) -> "ThresholdPolicy":
        """This policy with whichever of ``threshold`` and ``max_false_match`` are given replaced."""
        if threshold is None and max_false_match is None:
            return self
        return replace(
            self,
            fixed=self.fixed if threshold is None else threshold,
            max_false_match=self.max_false_match if max_false_match is None else max_false_match,
        )

    def threshold(self, n_segments: int) -> float:
        """The score threshold for a clip of ``n_segments`` audible segments
        judged on its score alone (inf without thresholds)."""
        if self.fixed is not None:
            return float(self.fixed)
        if self.calibration is None:
            return math.inf
        return self.calibration.threshold(n_segments, self.max_false_match)

    def rule(self, n_segments: int) -> Rule:
        """How a clip of ``n_segments`` is judged: its score threshold, and
        the spectral check's gate and threshold when the calibration has peaks."""
        if self.fixed is not None or self.calibration is None:
            return Rule(self.threshold(n_segments))
        return self.calibration.rule(n_segments, self.max_false_match, self.peak_share, self.peak_gate)

    def matches(self, cs: ClipScore) -> bool:
        """Whether a clip's score alone exceeds its threshold (:meth:`threshold`)."""
        return cs.score > self.threshold(cs.n_segments)


def check_max_false_match(rate: float) -> None:
    """Refuse a target false-match rate outside [0, 1) (``ValueError``): 1 would match everything."""
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"max_false_match must be in [0, 1), not {rate}")


def _calibration(index: Index) -> Calibration | None:
    """The index's thresholds; None (with a warning) if for another score."""
    cal = index.manifest.calibration
    if cal is not None and not cal.is_current():
        warnings.warn(
            f"index {index.directory} was calibrated for score {cal.statistic!r}, not "
            f"{STATISTIC!r}: nothing will match until `audiosim index` recalibrates it", stacklevel=3,
        )
        return None
    changed = [] if cal is None else cal.changed_settings(index.config)
    if changed:
        warnings.warn(
            f"index {index.directory} was calibrated under other scoring settings ({'; '.join(changed)}): "
            "the false-match rate will differ from the one asked for; run `audiosim index` to recalibrate",
            stacklevel=3,
        )
    return cal


# --------------------------------------------------------------------------
# The catalogue's side of an answer
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackInfo:
    """What the catalogue says of an indexed track (Nones when it does not know it)."""

    id: int
    path: str | None = None
    title: str | None = None
    artist: str | None = None
    content_hash: str | None = None
    status: str | None = None


class CatalogueView:
    """The catalogue rows of the tracks an index answers with, each read once.

    The catalogue is a nicety here (names for answers, and whether a track
    changed since it was indexed): the index decides, so a missing or
    unreadable catalogue gives unknown tracks, not errors.

    Parameters
    ----------
    home : DataHome
    live : dict
        Track id -> content hash of the index's live tracks.
    """

    def __init__(self, home: DataHome, live: dict[int, str]):
        self.home = home
        self.live = live
        self._catalog: Catalog | None = None
        self._rows: dict[int, TrackInfo] = {}

    def info(self, track_id: int) -> TrackInfo:
        """The catalogue's row for ``track_id``, cached."""
        if track_id not in self._rows:
            row = None
            try:
                if self._catalog is None and self.home.catalog_path.exists():
                    self._catalog = Catalog(self.home.catalog_path, create=False)
                if self._catalog is not None:
                    row = self._catalog.get(track_id)
            except Exception:  # the catalogue is a nicety here: the index decides
                row = None
            self._rows[track_id] = (
                TrackInfo(track_id, row.path, row.title, row.artist, row.content_hash, row.status)
                if row is not None else TrackInfo(track_id)
            )
        return self._rows[track_id]

    def is_current(self, track_id: int) -> bool:
        """False when the catalogue says the track was removed or changed since indexing."""
        if not self.home.catalog_path.exists():
            return True
        t = self.info(track_id)
        return t.status == "ok" and t.content_hash == self.live.get(track_id)

    def reset(self, live: dict[int, str]) -> None:
        """Forget the rows read (a newer index was opened)."""
        self.live = live
        self._rows.clear()

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


# --------------------------------------------------------------------------
# The matcher
# --------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block on ``n`` torch intra-op threads, then restore the previous count (None: as is)."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Matcher:
    """An index and a model loaded once, to identify many clips.

    Parameters
    ----------
    index : Index, str or Path, optional
        An opened index, or the data home to open.
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
    threads : int or None
        Torch threads a lookup runs on (default 1: a clip is a small
        batch); the process's setting is restored after each lookup. None
        leaves torch's setting alone.

    Attributes
    ----------
    index : Index
    model : Encoder
    config : IndexConfig
        The query settings in use (``index.config``).
    policy : ThresholdPolicy
        How scores are judged, unless a call overrides it.
    tracks : CatalogueView
        Names and freshness of the index's tracks.

    Raises
    ------
    FileNotFoundError
        If there is no index.
    ConfigMismatchError
        If ``model`` is not the one the index was built with.
    ValueError
        For ``max_false_match`` outside [0, 1) or ``threads`` below 1.
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
        threads: int | None = 1,
    ):
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.threads = None if threads is None else int(threads)
        """Torch threads of a lookup (None: torch's setting)."""
        if max_false_match is not None:
            check_max_false_match(max_false_match)
        if not isinstance(index, Index):
            index = Index.open(index, config=config)
        elif config is not None:
            index.set_query_config(config)
        self.index = index
        self.model = resolve_model(model, index.manifest, index.manifest.feature_config)
        check_compatible(index.manifest, index.directory, self.model)
        self.config = index.config
        self.policy = ThresholdPolicy(
            _calibration(index),
            self.config.max_false_match if max_false_match is None else float(max_false_match),
            threshold, self.config.peak_share, self.config.peak_gate,
        )
        if index.manifest.calibration is None and threshold is None:
            warnings.warn(
                f"index {index.directory} has no calibrated threshold: nothing will match; run "
                "`audiosim index` or pass threshold=", stacklevel=2,
            )
        self.query_hop = query_hop_frames(self.config, self.model)
        """Frames between query segments."""
        self.tracks = CatalogueView(
            DataHome.resolve(home) if home is not None else DataHome(index.directory.parent), index.live_tracks()
        )
        self.spectra = self._open_spectra()
        """The tracks' log-mels for the spectral check (None without a feature store: the check is off)."""
        self._warm_up()

    def _open_spectra(self) -> TrackLogMels | None:
        spectra = TrackLogMels.open(DataHome(self.index.directory.parent), self.model.features, self.index.live_tracks())
        if spectra is None and self.policy.calibration is not None and self.policy.calibration.has_peaks:
            self.policy = replace(self.policy, peak_share=0.0)  # the thresholds for the score alone, then
        return spectra

    def _warm_up(self) -> None:
        # The first forward pass and search pay one-off costs (allocations,
        # page faults of the memory-mapped shards): pay them here, not in
        # the first clip's time.
        f = self.model.features
        with torch_threads(self.threads):
            self.model.embed(torch.zeros(1, f.n_mels, f.segment_frames))
        if self.index.n_items:
            self.index.search(np.ones((1, self.index.dim), np.float32), 1)
        if self.tracks.live:
            self.tracks.info(next(iter(self.tracks.live)))  # opens the catalogue

    @property
    def calibration(self) -> Calibration | None:
        """The index's thresholds in use (None when missing or for another score)."""
        return self.policy.calibration

    @property
    def home(self) -> DataHome:
        """The data home whose catalogue names the tracks."""
        return self.tracks.home

    def threshold(self, n_segments: int, threshold: float | None = None, max_false_match: float | None = None) -> float:
        """The threshold for a clip of ``n_segments`` audible segments.

        ``threshold`` and ``max_false_match`` override the matcher's settings.
        """
        return self.policy.overridden(threshold, max_false_match).threshold(n_segments)

    # -- scoring and deciding ------------------------------------------------

    def current(self, cs: ClipScore) -> ClipScore:
        """``cs`` without candidates of tracks no longer current in the catalogue."""
        return cs.keeping(self.tracks.is_current)

    def score(
        self,
        wave: np.ndarray,
        exclude_tracks: Sequence[int] | int | None = None,
        policy: ThresholdPolicy | None = None,
    ) -> ClipScore:
        """Score a clip already at the model's rate; stale tracks are skipped.

        Other ``query_speeds`` are tried only while the clip stays under its
        threshold (by ``policy``, default :attr:`policy`).
        """
        judge = policy or self.policy

        def enough(cs: ClipScore) -> bool:
            return judge.matches(self.current(cs))

        return self.current(score_wave(self.index, self.model, wave, exclude_tracks, self.config, enough))

    def peaks(self, wave: np.ndarray, cs: ClipScore) -> float | None:
        """The best candidate's peak agreement with the clip (at its speed and offset);
        None without a candidate or its log-mel."""
        best = cs.best
        if best is None or self.spectra is None or self.spectra.get(best.track) is None:
            return None
        f = self.model.features
        with torch.inference_mode():
            clip = F.log_mel(torch.from_numpy(unsped(wave, f.sample_rate, cs.speed)), f).numpy()
        return self.spectra.agreement(peak_map(clip), best.track, float(best.offset))

    def decide(
        self,
        cs: ClipScore,
        name: str,
        clip_seconds: float,
        started: float,
        policy: ThresholdPolicy | None = None,
        decode_seconds: float = 0.0,
        wave: np.ndarray | None = None,
    ) -> Match:
        """Judge a :class:`ClipScore` and name its track.

        ``started`` is when the work on the clip began (``time.perf_counter()``).
        With the clip's ``wave``, a score the spectral check decides is
        checked (:meth:`peaks`); without it, the score alone decides.
        """
        judge = policy or self.policy
        rule = judge.rule(cs.n_segments)
        thr = rule.threshold
        peaks = self.peaks(wave, cs) if wave is not None and rule.needs_peaks(cs.score) else None
        timing = dict(decode_seconds=decode_seconds, clip_seconds=clip_seconds, speed=cs.speed,
                      n_segments=cs.n_segments, threshold=thr, peak_gate=rule.gate,
                      peak_threshold=rule.peak_threshold, peaks=None if peaks is None else round(peaks, 4))
        best = cs.best
        if best is None:
            reason = "uncalibrated" if math.isinf(thr) else "no-candidate"
            return Match(name, "no-match", reason, seconds=time.perf_counter() - started, **timing)
        track = self.tracks.info(best.track)
        offset, clip_start = passage_start(round(float(best.offset), 3))
        matched = rule.matches(cs.score, peaks)
        answer = dict(track_id=int(best.track), path=track.path, title=track.title, offset=offset) if matched else {}
        return Match(
            name, "matched" if matched else "no-match", "" if matched else
            ("uncalibrated" if math.isinf(thr) else "below-threshold"),
            **answer, clip_start=clip_start, score=round(cs.score, 4), votes=int(best.votes),
            candidate_track_id=int(best.track), candidate_path=track.path, candidate_title=track.title,
            candidate_offset=offset, seconds=time.perf_counter() - started, **timing,
        )

    def match(
        self,
        clip: Clip,
        sr: int | None = None,
        name: str | None = None,
        *,
        threshold: float | None = None,
        max_false_match: float | None = None,
    ) -> Match:
        """Identify one clip that can be heard: a ``matched`` or ``no-match`` :class:`Match`.

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

        Raises
        ------
        ValueError
            For an array without ``sr``, or ``max_false_match`` outside [0, 1).
        AudioError
            For a clip that cannot be heard, with its ``reason``: a file that
            cannot be decoded, samples that are empty, NaN or at an
            impossible rate, a clip too short to fingerprint (``too-short``)
            or without an audible segment (``silence``).
        """
        started = time.perf_counter()
        label = clip_name(clip, name)
        policy = self.policy.overridden(threshold, max_false_match)
        rate = self.model.features.sample_rate
        wave = load_clip(clip, rate, sr, label)
        decoded = time.perf_counter()
        decode_seconds = decoded - started if isinstance(clip, (str, Path)) else 0.0
        if not isinstance(clip, (str, Path)):
            started = decoded  # an array's resampling is not the lookup's
        with torch_threads(self.threads):
            cs = self.score(wave, policy=policy)
        if cs.n_segments == 0:
            raise unscorable(label, wave, self.model.features)
        return self.decide(cs, label, len(wave) / rate, started, policy, decode_seconds, wave)

    def answer(self, clip: Clip, sr: int | None = None, name: str | None = None, **overrides: float | None) -> Match:
        """:meth:`match`, with a clip that cannot be heard answered as an ``error`` :class:`Match`.

        For batches: one bad clip is reported in its row and the others are
        still answered.
        """
        started = time.perf_counter()
        try:
            return self.match(clip, sr, name, **overrides)
        except AudioError as e:
            return Match.failed(e, time.perf_counter() - started, clip_name(clip, name))

    def identify(self, clip: Clip, sr: int | None = None, **overrides: float | None) -> Match | None:
        """The :class:`Match` when the clip matches, None for a real no-match (``overrides`` as in :meth:`match`).

        Raises :class:`AudioError` for a clip that cannot be heard, as :meth:`match` does.
        """
        m = self.match(clip, sr, **overrides)
        return m if m.matched else None

    # -- lifetime ------------------------------------------------------------

    def refresh(self) -> bool:
        """Reopen the index if a newer manifest was published; True if it was."""
        if self.index.is_current():
            return False
        new = self.index.reopen()
        old, self.index = self.index, new
        old.close()
        self.config = new.config
        self.policy = replace(self.policy, calibration=_calibration(new), peak_share=new.config.peak_share,
                              peak_gate=new.config.peak_gate)
        self.tracks.reset(new.live_tracks())
        self.spectra = self._open_spectra()
        return True

    def close(self) -> None:
        """Release the index and the catalogue connection."""
        self.index.close()
        self.tracks.close()

    def __enter__(self) -> "Matcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------
# One call
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _cached_matcher(home: str | None, model: str | None) -> Matcher:
    return Matcher(home, model)


def no_index_message(home: DataHome, given: bool) -> str:
    """Where an index was looked for and how to point elsewhere, for a home without one."""
    where = "" if given else (
        " (the default data home: $AUDIOSIM_HOME" + (" is " + str(home.root) if _home_from_env() else
                                                      " is not set, so ./data of the current folder")
        + "); pass index=DATA_HOME, set AUDIOSIM_HOME,"
    )
    return f"no index in {home.root.resolve()}{where} or build one with `audiosim index`"


def _home_from_env() -> bool:
    return bool(os.environ.get("AUDIOSIM_HOME"))


def shared_matcher(index: Index | str | Path | DataHome | None, model: Encoder | str | Path | None) -> Matcher:
    """A matcher for :func:`identify` and :func:`~audiosim.match.monitor.monitor`.

    Homes are opened once and kept (with their model) for later calls, and
    a newer published index is picked up; an opened index or an encoder
    object gets a matcher of its own.

    Raises
    ------
    FileNotFoundError
        When the home has no index, naming the folder looked in (and, for
        the default home, how it was chosen).
    """
    if isinstance(index, Index) or isinstance(model, Encoder):
        return Matcher(index, model)
    home = DataHome.resolve(index)
    if not (home.index_dir / MANIFEST_NAME).is_file():
        raise FileNotFoundError(no_index_message(home, index is not None))
    m = _cached_matcher(str(home.root.resolve()), None if model is None else str(Path(model).resolve()))
    m.refresh()
    return m


def identify(
    clip: Clip,
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
        An opened index or a data home. Default: ``$AUDIOSIM_HOME``, else
        ``./data`` of the current folder, as for the ``audiosim`` command.
        Homes are opened once and kept (with their model) for later calls;
        a newer published index is picked up automatically.
    model : Encoder, str or Path, optional
        Default: the index's own checkpoint, else ``models/fingerprint.pt``.
    threshold : float, optional
        Fixed score threshold instead of the calibrated one.
    max_false_match : float, optional
        Share of absent-music clips allowed to match, in [0, 1) (default:
        the index's, 0.01).

    Returns
    -------
    Match or None
        None only when the clip was heard and matches nothing in the catalogue.

    Raises
    ------
    AudioError
        For a clip that cannot be heard, with its ``reason``: ``too-short``
        (under about 1 s), ``silence``, ``empty``, ``corrupt`` (NaN
        samples), ``unsupported`` (e.g. ``sr=0``), ``unreadable``...
    FileNotFoundError
        When there is no index where it was looked for (the message says where).
    ValueError
        For an array without ``sr``, or ``max_false_match`` outside [0, 1).

    Examples
    --------
    >>> import audiosim
    >>> m = audiosim.identify("clip.wav")  # doctest: +SKIP
    >>> m.title, m.offset  # doctest: +SKIP
    ('Bleostrada', 42.4)
    """
    if max_false_match is not None:
        check_max_false_match(max_false_match)
    return shared_matcher(index, model).identify(clip, sr, threshold=threshold, max_false_match=max_false_match)
