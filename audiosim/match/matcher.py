"""Identify clips against the index: decide whether a clip matches, and name the track.

A :class:`Matcher` opens an index and its model once and checks they belong
together. Each clip is scored (:mod:`audiosim.match.scoring`) and judged by
a :class:`ThresholdPolicy`: the clip matches when its score exceeds the
threshold calibrated for its number of segments
(:mod:`audiosim.match.calibrate`; by default at most 1 % of clips of absent
music match), or a fixed threshold when one is given. Candidates of tracks
removed or changed in the catalogue since indexing are skipped, and the
answer names the track from the catalogue (:class:`CatalogueView`).

:func:`identify` is the one-call form; long recordings are
:mod:`audiosim.match.monitor`'s.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from audiosim.config import IndexConfig
from audiosim.fingerprint.model import Encoder
from audiosim.index.reader import Index, check_compatible, resolve_model
from audiosim.index.thresholds import STATISTIC, Calibration
from audiosim.match.clips import Clip, clip_name, load_clip
from audiosim.match.scoring import ClipScore, query_hop_frames, score_wave
from audiosim.store.catalog import Catalog
from audiosim.store.home import DataHome

# --------------------------------------------------------------------------
# Answers and the values they are decided with
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
        the clip's segments with the track there (see :mod:`audiosim.match.scoring`).
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
        A threshold on the score that replaces the calibrated ones.
    """

    calibration: Calibration | None
    max_false_match: float
    fixed: float | None = None

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
        """The threshold for a clip of ``n_segments`` audible segments (inf without thresholds)."""
        if self.fixed is not None:
            return float(self.fixed)
        if self.calibration is None:
            return math.inf
        return self.calibration.threshold(n_segments, self.max_false_match)

    def matches(self, cs: ClipScore) -> bool:
        """Whether a clip's score exceeds its threshold."""
        return cs.score > self.threshold(cs.n_segments)


def _calibration(index: Index) -> Calibration | None:
    """The index's thresholds; None (with a warning) if for another score."""
    cal = index.manifest.calibration
    if cal is not None and not cal.is_current():
        warnings.warn(
            f"index {index.directory} was calibrated for score {cal.statistic!r}, not "
            f"{STATISTIC!r}: nothing will match until `audiosim index` recalibrates it", stacklevel=3,
        )
        return None
    if cal is not None and not cal.is_current(index.config):
        warnings.warn(
            f"index {index.directory} was calibrated trying clips at speeds {list(cal.query_speeds)}, "
            f"not {list(index.config.query_speeds)}: the false-match rate will differ from the one asked for; "
            "run `audiosim index` to recalibrate", stacklevel=3,
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
            index.set_query_config(config)
        self.index = index
        self.model = resolve_model(model, index.manifest, index.manifest.feature_config)
        check_compatible(index.manifest, index.directory, self.model)
        self.config = index.config
        self.policy = ThresholdPolicy(
            _calibration(index),
            self.config.max_false_match if max_false_match is None else float(max_false_match),
            threshold,
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
        self._warm_up()

    def _warm_up(self) -> None:
        # The first forward pass and search pay one-off costs (allocations,
        # page faults of the memory-mapped shards): pay them here, not in
        # the first clip's time.
        f = self.model.features
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

    def decide(
        self, cs: ClipScore, name: str, clip_seconds: float, started: float, policy: ThresholdPolicy | None = None
    ) -> Match:
        """Judge a :class:`ClipScore` and name its track.

        ``started`` is when the work on the clip began (``time.perf_counter()``).
        """
        thr = (policy or self.policy).threshold(cs.n_segments)
        best = cs.best
        if best is None:
            return Match(name, None, None, None, 0.0, 0.0, 0, cs.n_segments, False, thr,
                         time.perf_counter() - started, clip_seconds, cs.speed)
        track = self.tracks.info(best.track)
        return Match(
            name, int(best.track), track.path, track.title, round(float(best.offset), 3), round(cs.score, 4),
            int(best.votes), cs.n_segments, bool(cs.score > thr), thr, time.perf_counter() - started, clip_seconds,
            cs.speed,
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

        Raises
        ------
        ValueError
            For an array without ``sr``.
        AudioError
            For a file that cannot be decoded.
        """
        started = time.perf_counter()
        rate = self.model.features.sample_rate
        wave = load_clip(clip, rate, sr)
        if not isinstance(clip, (str, Path)):
            started = time.perf_counter()
        policy = self.policy.overridden(threshold, max_false_match)
        cs = self.score(wave, policy=policy)
        return self.decide(cs, clip_name(clip, name), len(wave) / rate, started, policy)

    def identify(self, clip: Clip, sr: int | None = None, **overrides: float | None) -> Match | None:
        """The :class:`Match` when the clip matches, else None (``overrides`` as in :meth:`match`)."""
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
        self.policy = replace(self.policy, calibration=_calibration(new))
        self.tracks.reset(new.live_tracks())
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


def shared_matcher(index: Index | str | Path | DataHome | None, model: Encoder | str | Path | None) -> Matcher:
    """A matcher for :func:`identify` and :func:`~audiosim.match.monitor.monitor`.

    Homes are opened once and kept (with their model) for later calls, and
    a newer published index is picked up; an opened index or an encoder
    object gets a matcher of its own.
    """
    if isinstance(index, Index) or isinstance(model, Encoder):
        return Matcher(index, model)
    key_home = None if index is None else str(Path(index if not isinstance(index, DataHome) else index.root).resolve())
    m = _cached_matcher(key_home, None if model is None else str(Path(model).resolve()))
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
    return shared_matcher(index, model).identify(clip, sr, threshold=threshold, max_false_match=max_false_match)
