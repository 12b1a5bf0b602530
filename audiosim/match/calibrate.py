"""Calibrate the no-match threshold on music known to be absent.

A clip's score (see :mod:`audiosim.match.scoring`) grows with its number of
segments, so the threshold is set per clip length: for each length in
``IndexConfig.calibration_seconds`` (1, 2, 3, 5 and 10 s by default),
``IndexConfig.calibration_clips`` clips of absent music are scored and the
threshold is the score that only a share ``max_false_match`` (1 % by
default) of them exceed. Lengths in between are interpolated on the number
of segments; longer clips extrapolate the last two lengths' trend.

Where does absent music come from?

- :func:`calibrate_leave_one_out` (what ``audiosim index`` runs): clips cut
  from the catalogue's own tracks, but every neighbour from the clip's own
  track is ignored, so the clip behaves like music the index does not hold.
  Tracks that hold the same music as the source (another encoding, an
  edit, a variant; found by :func:`shared_content`) are ignored as well:
  finding them would be right, not a false match; so is a clip whose
  match, checked on the audio, holds the same passage
  (:func:`drop_shared_passages`). Nothing beyond the catalogue is needed.
- :func:`calibrate`: clips of files you know are not in the catalogue.

Every clip is scored exactly as a query of its length would be, on the
same number of segments and at the same ``IndexConfig.query_speeds``
(:func:`excerpt_best`), because thresholds are looked up by segment count.
With absent music (and the data home's features), each clip's best
candidate is also checked on the spectrum as a query's is
(:func:`prefix_peaks`), so the spectral check has thresholds too
(:meth:`~audiosim.index.thresholds.Calibration.rule`); leave-one-track-out
records scores only, and such an index judges on the score alone.

Half the clips are clean, half degraded like real captures (noise at 0 to
20 dB SNR, reverberation, EQ or phone band, gain; the training
distribution of :class:`~audiosim.config.AugmentConfig`). The scores are
kept (sorted) in the returned :class:`~audiosim.index.thresholds.Calibration`,
which the index writer stores in the manifest, so the false-match target can
be changed at query time without recalibrating. Nothing here publishes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf
import torch

from audiosim.config import AugmentConfig, FeatureConfig, IndexConfig
from audiosim.fingerprint.model import Encoder, model_digest
from audiosim.index.reader import Index, Neighbours, check_compatible, resolve_model
from audiosim.index.thresholds import Calibration, CalibrationBin, sorted_bin, speed_set
from audiosim.match.scoring import (
    clip_at_speeds,
    common_count,
    neighbours_of,
    query_hop_frames,
    score_segments,
    speeds_to_try,
)
from audiosim.match.spectral import TrackLogMels, peak_map
from audiosim.match.voting import vote
from audiosim.signal import audio, augment
from audiosim.signal import features as F
from audiosim.store.catalog import Catalog
from audiosim.store.home import DataHome


@dataclass(frozen=True)
class ExcerptScore:
    """How a calibration clip of one length scored.

    Attributes
    ----------
    score : float
        The clip's score (see :func:`audiosim.match.scoring.clip_score`).
    track : int or None
        The best candidate track (None when nothing was retrieved).
    offset : float
        Where in that track the clip would start (s).
    start : int
        The clip's first frame within the excerpt it was cut from (a
        window's, :func:`window_scores`; 0 for a prefix).
    """

    score: float
    track: int | None
    offset: float
    start: int = 0


# --------------------------------------------------------------------------
# Clips
# --------------------------------------------------------------------------


def segments_in(seconds: float, model: Encoder, config: IndexConfig) -> int:
    """Query segments a fully audible clip of ``seconds`` is scored on.

    At each of ``config.query_speeds`` the clip is resampled
    (:func:`audiosim.match.scoring.unsped`) and every speed that yields segments is
    scored on as many as the fewest of them (:func:`audiosim.match.scoring.score_wave`).
    """
    f = model.features
    hop = query_hop_frames(config, model)
    return common_count([len(F.segment_starts(F.n_frames(int(round(seconds * v * f.sample_rate)), f), hop, f))
                         for v in speeds_to_try(config)])


def read_excerpt(path: str | Path, start: float, seconds: float, sample_rate: int) -> np.ndarray:
    """Decode ``seconds`` of ``path`` from ``start`` (s), mono, at ``sample_rate``.

    Seeks instead of decoding the whole file; short reads are zero-padded.

    Raises
    ------
    AudioError
        If the file cannot be read.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            orig = f.samplerate
            f.seek(max(0, int(start * orig)))
            data = f.read(int(math.ceil(seconds * orig)) + 64, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise audio.AudioError(path, "unreadable", str(e)) from e
    x = audio.resample(data.mean(axis=1), orig, sample_rate)
    n = int(round(seconds * sample_rate))
    return np.pad(x[:n], (0, max(0, n - len(x[:n])))).astype(np.float32)


# --------------------------------------------------------------------------
# Scoring calibration clips
# --------------------------------------------------------------------------


Run = tuple[float, np.ndarray, np.ndarray, Neighbours]
"""One query speed of an excerpt: (speed, segment start frames, their
embeddings, their nearest indexed segments)."""


def excerpt_best(
    index: Index,
    model: Encoder,
    wave: np.ndarray,
    lengths: Sequence[float],
    exclude_tracks: Sequence[int] | int | None = None,
) -> list[ExcerptScore | None]:
    """Score the clips made of the first ``L`` seconds of ``wave``, for each ``L``.

    The excerpt is segmented, embedded and searched once per query speed;
    each clip is scored over the segments that lie inside it, at every
    speed on the same number of segments, keeping the best: exactly what
    identifying the shorter clip would do (frames are not centred, see
    :func:`audiosim.match.scoring.score_wave`).

    Returns
    -------
    list of ExcerptScore or None
        Per length; None when the length exceeds the excerpt.
    """
    f = model.features
    cfg = index.config
    hop = query_hop_frames(cfg, model)
    runs = []
    for speed, lm, starts in clip_at_speeds(model, np.asarray(wave, np.float32), cfg, hop):
        vecs = model.embed(F.segments(lm, starts, f)).numpy()
        runs.append((speed, starts, vecs, index.search(vecs, cfg.neighbours, exclude_tracks=exclude_tracks)))
    return prefix_scores(index, runs, len(wave) / f.sample_rate, lengths, f, hop)


def prefix_scores(
    index: Index, runs: Sequence[Run], seconds: float, lengths: Sequence[float], features: FeatureConfig, hop: int
) -> list[ExcerptScore | None]:
    """The scores of an excerpt's clips of each length, from its searched segments.

    Parameters
    ----------
    runs : sequence of Run
        The excerpt at each query speed (see :func:`excerpt_best`).
    seconds : float
        The excerpt's duration: longer lengths get None.
    hop : int
        Frames between query segments.
    """
    f = features
    cfg = index.config
    out: list[ExcerptScore | None] = []
    for length in lengths:
        if length > seconds + 1.0 / f.sample_rate:
            out.append(None)
            continue
        # The first L s of the clip are the first L * speed s of its unsped copy.
        sels = [np.flatnonzero(starts + f.segment_frames <= F.n_frames(int(round(length * speed * f.sample_rate)), f))
                for speed, starts, _, _ in runs]
        n = common_count([len(sel) for sel in sels])
        if n == 0:
            out.append(ExcerptScore(0.0, None, 0.0))
            continue
        best = None
        for (speed, starts, vecs, nn), sel in zip(runs, sels):
            if len(sel) == 0:
                continue
            sel = sel[:n]
            res = score_segments(index, vecs[sel], starts[sel] / f.frames_per_second, neighbours_of(nn, sel), cfg,
                                 hop / f.frames_per_second)
            if best is None or res.score > best.score:
                best = res
        top = best.best
        out.append(ExcerptScore(best.score, None if top is None else int(top.track),
                                0.0 if top is None else float(top.offset)))
    return out


def window_starts(frames: int, span: int, hop: int, most: int) -> list[int]:
    """First frames of up to ``most`` windows of ``span`` frames spread over ``frames``.

    As many as fit side by side (at most ``most``), the first at 0 and the
    last as late as the hop grid allows, so neighbours overlap by less than
    one hop; none when ``span`` exceeds ``frames``.

    >>> window_starts(633, 61, 18, 4)
    [0, 180, 378, 558]
    >>> window_starts(633, 313, 18, 4), window_starts(633, 633, 18, 4), window_starts(60, 61, 18, 4)
    ([0, 306], [0], [])
    """
    n = min(int(most), frames // span) if span <= frames else 0
    if n <= 1:
        return [0] * n
    return [int(x // hop) * hop for x in np.linspace(0, frames - span, n)]


def window_scores(
    index: Index, run: Run, seconds: float, lengths: Sequence[float], features: FeatureConfig, hop: int, most: int
) -> list[list[ExcerptScore]]:
    """Per length, the scores of up to ``most`` windows of that length spread over an excerpt.

    Each window is scored exactly as a clip of that length would be (its
    segments, re-timed from the window's start, through
    :func:`prefix_scores`); the first window is the excerpt's prefix, and
    windows without an audible segment are left out (such a clip is
    refused as silence). One excerpt so gives several samples of short
    clips' scores for the price of its searches alone.

    Parameters
    ----------
    run : Run
        The excerpt at speed 1 (its searched segments).
    seconds : float
        The excerpt's duration.
    """
    f = features
    speed, starts, vecs, nn = run
    total = F.n_frames(int(round(seconds * f.sample_rate)), f)
    out = []
    for length in lengths:
        span = F.n_frames(int(round(length * f.sample_rate)), f)
        got = []
        for o in window_starts(total, span, hop, most):
            sel = np.flatnonzero((starts >= o) & (starts + f.segment_frames <= o + span))
            if len(sel) == 0:  # no audible segment: a query would be refused as silence, not scored
                continue
            shifted = (speed, starts[sel] - o, vecs[sel], neighbours_of(nn, sel))
            res = prefix_scores(index, [shifted], seconds - o / f.frames_per_second, [length], f, hop)[0]
            if res is not None:
                got.append(replace(res, start=int(o)))
        out.append(got)
    return out


def shared_content(index: Index, sample: int = 120, min_fraction: float = 0.3) -> dict[int, set[int]]:
    """Tracks that hold the same music as another track (re-encodings, edits, variants).

    Up to ``sample`` evenly spaced indexed segments of each track are looked
    up in the rest of the index and voted on as one long clip; another track
    that a ``min_fraction`` share of them agree on (one consistent offset)
    shares the music. Uses the stored vectors only, no model.

    Returns
    -------
    dict
        Track id -> ids of the tracks sharing its music (symmetric; tracks
        without any are absent).
    """
    out: dict[int, set[int]] = {}
    live = index.live_tracks()
    for s in index.shards:
        for tid, h in s.info.tracks:
            if live.get(tid) != h:
                continue
            items = np.flatnonzero(s.usable & (s.track == tid))
            if len(items) < 4:
                continue
            items = items[np.linspace(0, len(items) - 1, min(sample, len(items))).round().astype(int)]
            nn = index.search(np.stack([s.vector(i) for i in items]), exclude_tracks=tid)
            need = max(3, int(math.ceil(min_fraction * len(items))))
            for c in vote(s.time[items], nn.track, nn.time, nn.sim, index.config.index_hop_seconds, top=3):
                if c.votes >= need:
                    out.setdefault(tid, set()).add(c.track)
                    out.setdefault(c.track, set()).add(tid)
    return out


def score_bins(
    scores: list[list[float | None]], lengths: Sequence[float], model: Encoder, config: IndexConfig,
    peaks: list[list[float | None]] | None = None,
) -> list[CalibrationBin]:
    """One bin per length that has scores: the scores sorted high to low.

    ``peaks``, shaped as ``scores``, gives each clip's peak agreement
    (:mod:`audiosim.match.spectral`); a bin keeps them only when every
    clip of its length has one.
    """
    bins = []
    for j, length in enumerate(lengths):
        rows = [k for k, row in enumerate(scores) if row[j] is not None]
        if not rows:
            continue
        p = None if peaks is None else [peaks[k][j] for k in rows]
        bins.append(sorted_bin(float(length), segments_in(length, model, config), [scores[k][j] for k in rows],
                               None if p is None or any(x is None for x in p) else p))
    return bins


def _score_excerpts(
    index: Index,
    model: Encoder,
    excerpts: list[np.ndarray],
    exclude: Sequence[Sequence[int] | None],
    lengths: Sequence[float],
    g: torch.Generator,
    progress: Callable[[str, dict], None] | None,
    spectra: TrackLogMels | None = None,
) -> tuple[list[list[ExcerptScore | None]], list[list[float | None]] | None]:
    """Degrade every other excerpt (its first half second is reverb context), then
    score; per excerpt, the :func:`excerpt_best` of each length, and with
    ``spectra`` each clip's peak agreement with its best candidate (:func:`prefix_peaks`)."""
    sr = model.features.sample_rate
    ctx = sr // 2
    scores, peaks = [], []
    for i, (x, ex) in enumerate(zip(excerpts, exclude)):
        t = torch.from_numpy(x)[None]
        y = augment.Degrader(AugmentConfig(), sr)(t, t.shape[1] - ctx, g)[0] if i % 2 else t[0, ctx:]
        scores.append(excerpt_best(index, model, y.numpy(), lengths, ex))
        if spectra is not None:
            peaks.append(prefix_peaks(y.numpy(), scores[-1], lengths, model.features, spectra))
        if progress:
            progress("calibrate-clips", {"done": i + 1, "total": len(excerpts)})
    return scores, (peaks if spectra is not None else None)


def prefix_peaks(
    wave: np.ndarray, best: list[ExcerptScore | None], lengths: Sequence[float], features: FeatureConfig,
    spectra: TrackLogMels,
) -> list[float | None]:
    """Per length, the peak agreement of the excerpt's first ``L`` s with its best candidate
    (:func:`~audiosim.match.spectral.peak_agreement`, at speed 1; None where ``best`` has
    no score, 0 without a candidate or its log-mel)."""
    with torch.inference_mode():
        peaks = peak_map(F.log_mel(torch.from_numpy(np.asarray(wave, np.float32)), features).numpy())
    out: list[float | None] = []
    for length, b in zip(lengths, best):
        span = F.n_frames(int(round(length * features.sample_rate)), features)
        agree = None if b is None or b.track is None else spectra.agreement(peaks[:, :span], b.track, b.offset)
        out.append(None if b is None else 0.0 if agree is None else agree)
    return out


def _scores(best: list[list[ExcerptScore | None]]) -> list[list[float | None]]:
    """The scores alone of :func:`excerpt_best` results."""
    return [[None if b is None else b.score for b in row] for row in best]


def drop_shared_passages(
    best: list[list[ExcerptScore | None]],
    excerpts: list[np.ndarray],
    paths: dict[int, str],
    lengths: Sequence[float],
    features: FeatureConfig,
    top_share: float = 0.1,
    min_similarity: float = 0.8,
) -> tuple[list[list[float | None]], int]:
    """Scores with the clips that did find their own music removed.

    A leave-one-track-out clip stands in for absent music only if the track
    it matched does not hold the same passage: catalogues repeat music across
    files (variants, medleys, a shared intro) more often than
    :func:`shared_content`'s track-level test catches. Among the
    ``top_share`` highest-scoring clips of each length (the ones that set the
    threshold), a clip is dropped when the clean audio of the matched track at
    the matched offset is the clip's passage: their log-mels correlate above
    ``min_similarity`` in most one-segment windows, each at its best shift up
    to 0.25 s (:func:`~audiosim.signal.features.passage_similarity`). Windows
    are compared one by one because variants of one theme can correlate
    less as whole clips than segment by segment.

    Parameters
    ----------
    best : list of list of ExcerptScore or None
        Per excerpt and length (:func:`excerpt_best`).
    excerpts : list of ndarray
        The clean excerpts, each with half a second of context first.
    paths : dict
        Track id -> audio file of the catalogue's tracks.

    Returns
    -------
    scores : list of list of float or None
        Per excerpt and length; dropped clips are None.
    dropped : int
        Clips dropped, over all lengths.
    """
    sr = features.sample_rate
    ctx = sr // 2
    scores = _scores(best)
    lag = F.seconds_to_frames(0.25, features)
    dropped = 0
    for j, length in enumerate(lengths):
        rows = [i for i, row in enumerate(best) if row[j] is not None and row[j].track in paths]
        rows.sort(key=lambda i: -best[i][j].score)
        n = int(length * sr)
        for i in rows[: max(1, math.ceil(top_share * len(rows)))]:
            hit = best[i][j]
            clean = excerpts[i][ctx : ctx + n]
            if len(clean) < n:
                continue
            try:
                found = read_excerpt(paths[hit.track], hit.offset, length, sr)
            except audio.AudioError:
                continue
            with torch.inference_mode():
                lm = F.log_mel(torch.from_numpy(np.stack([clean, found]).astype(np.float32)), features)
            if F.passage_similarity(lm[0], lm[1], features.segment_frames, lag) > min_similarity:
                scores[i][j] = None
                dropped += 1
    return scores, dropped


# --------------------------------------------------------------------------
# Calibration runs
# --------------------------------------------------------------------------


def _catalogue_paths(home: DataHome, live: dict[int, str]) -> dict[int, str]:
    """Track id -> audio file of the live tracks whose file is still the one indexed."""
    paths: dict[int, str] = {}
    if home.catalog_path.exists():
        with Catalog(home.catalog_path, create=False) as cat:
            for tid in live:
                row = cat.get(tid)
                if row is not None and row.content_hash == live[tid] and Path(row.path).is_file():
                    paths[tid] = row.path
    return paths


def calibrate_leave_one_out(
    index: Index,
    model: Encoder,
    home: str | Path | DataHome | None = None,
    seconds: Sequence[float] | None = None,
    clips: int | None = None,
    max_false_match: float | None = None,
    seed: int = 0,
    progress: Callable[[str, dict], None] | None = None,
) -> Calibration | None:
    """Calibrate with clips of the catalogue's own tracks, ignoring their source track.

    ``clips`` excerpts as long as the longest length are cut at random
    audible moments of random tracks (weighted by duration), half of them
    degraded; the clip of each length is the start of an excerpt. Each is
    scored with every neighbour from its own track ignored. This is a
    :class:`~audiosim.index.thresholds.Calibrator`: the index writer calls
    it on an index about to be published and stores what it returns.

    Parameters
    ----------
    index : Index
    model : Encoder
        The index's model.
    home : str, Path or DataHome, optional
        Data home whose catalogue gives the tracks' paths (default: the
        index folder's parent).
    seconds : sequence of float, optional
        Clip lengths (default ``index.config.calibration_seconds``).
    clips : int, optional
        Clips per length (default ``index.config.calibration_clips``).
    max_false_match : float, optional
        Default ``index.config.max_false_match``.
    seed : int
    progress : callable, optional
        ``progress(stage, info)``: ``calibrate-clips`` with ``done`` and
        ``total`` after each clip is scored, ``calibrate-shared`` with the
        clips dropped for holding their own music.

    Returns
    -------
    Calibration or None
        None when fewer than two tracks have readable audio (nothing can
        stand in for absent music).
    """
    cfg = index.config
    lengths = sorted(seconds or cfg.calibration_seconds)
    dh = DataHome.resolve(home) if home is not None else DataHome(index.directory.parent)
    sr = model.features.sample_rate
    live = index.live_tracks()
    paths = _catalogue_paths(dh, live)
    starts: dict[int, np.ndarray] = {}
    durations: dict[int, float] = {}
    for s in index.shards:  # start times to draw from: the track's audible (indexed) segments
        for (tid, h), dur in zip(s.info.tracks, s.info.track_seconds):
            if tid in paths and live.get(tid) == h:
                t = s.time[s.usable & (s.track == tid)]
                if len(t) and dur >= lengths[0] + 0.5:
                    starts[tid], durations[tid] = t, dur
    if len(starts) < 2:
        return None
    ok = sorted(starts)
    weights = np.array([durations[t] for t in ok])
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    ctx = sr // 2
    excerpts, exclude = [], []
    n = int(clips or cfg.calibration_clips)
    for attempt in range(3 * n):
        if len(excerpts) == n:
            break
        tid = ok[int(rng.choice(len(ok), p=weights / weights.sum()))]
        span = min(lengths[-1], durations[tid] - 0.25)
        t0 = float(rng.choice(starts[tid])) + float(rng.uniform(0, cfg.index_hop_seconds))
        t0 = max(0.0, min(t0, durations[tid] - span))
        try:
            x = read_excerpt(paths[tid], t0 - ctx / sr, span + ctx / sr, sr)
        except audio.AudioError:
            continue
        excerpts.append(x)
        exclude.append(tid)
    shared = shared_content(index)
    excluded = [sorted({tid, *shared.get(tid, ())}) for tid in exclude]
    best, _ = _score_excerpts(index, model, excerpts, excluded, lengths, g, progress)
    scores, dropped = drop_shared_passages(best, excerpts, paths, lengths, model.features)
    if progress and dropped:
        progress("calibrate-shared", {"dropped": dropped})
    bins = score_bins(scores, lengths, model, cfg)
    if not bins:
        return None
    return Calibration(
        "leave-one-track-out", cfg.max_false_match if max_false_match is None else float(max_false_match),
        bins, tracks=len(set(exclude)), model_digest=model_digest(model),
        shared=sorted({(min(a, b), max(a, b)) for a, bs in shared.items() for b in bs}),
        query_speeds=speed_set(cfg.query_speeds), scoring=cfg.scoring(),
    )


def _absent_excerpts(
    waves: list[np.ndarray], n: int, seconds: float, features: FeatureConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """``n`` excerpts of ``seconds`` (plus half a second of context) drawn from
    ``waves`` weighted by length, preferring audible ones as queries are."""
    sr = features.sample_rate
    ctx = sr // 2
    weights = np.array([len(w) for w in waves], np.float64)
    excerpts = []
    for _ in range(n):
        w = waves[int(rng.choice(len(waves), p=weights / weights.sum()))]
        size = min(len(w), ctx + int(round(seconds * sr)))
        for _ in range(10):  # prefer audible excerpts, as queries are
            s0 = int(rng.integers(0, len(w) - size + 1))
            piece = w[s0 : s0 + size]
            if 10 * np.log10(float(np.mean(piece[ctx:] ** 2)) + 1e-12) > features.silence_db:
                break
        excerpts.append(np.ascontiguousarray(piece, dtype=np.float32))
    return excerpts


def calibrate(
    index: Index | str | Path | DataHome | None,
    absent_paths: Sequence[str | Path],
    model: Encoder | str | Path | None = None,
    seconds: Sequence[float] | None = None,
    clips: int | None = None,
    max_false_match: float | None = None,
    seed: int = 0,
    progress: Callable[[str, dict], None] | None = None,
) -> Calibration:
    """Calibrate with clips of audio files known not to be in the catalogue.

    Returns the thresholds; publishing them is the caller's
    (:func:`audiosim.index.writer.store_calibration`, which the index flow
    calls for ``audiosim index --absent``).

    Parameters
    ----------
    index : Index, str, Path or DataHome
        An opened index, or a data home.
    absent_paths : sequence of str or Path
        Music files that are not in the catalogue (undecodable ones are skipped).
    model : Encoder, str or Path, optional
        Default: the index's model.
    seconds, clips, max_false_match, seed, progress
        As in :func:`calibrate_leave_one_out`.

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        If no absent file could be decoded.
    """
    opened = not isinstance(index, Index)
    idx = Index.open(index) if opened else index
    try:
        enc = resolve_model(model, idx.manifest, idx.manifest.feature_config)
        check_compatible(idx.manifest, idx.directory, enc)
        cfg = idx.config
        lengths = sorted(seconds or cfg.calibration_seconds)
        sr = enc.features.sample_rate
        waves = []
        for p in absent_paths:
            try:
                waves.append(audio.load(p, sr))
            except audio.AudioError:
                continue
        if not waves:
            raise ValueError("no absent-music file could be decoded")
        rng = np.random.default_rng(seed)
        g = torch.Generator().manual_seed(seed)
        excerpts = _absent_excerpts(waves, int(clips or cfg.calibration_clips), lengths[-1], enc.features, rng)
        # the spectral check's thresholds too, where a query's would be checked (at speed 1 only)
        spectra = (TrackLogMels.open(DataHome(idx.directory.parent), enc.features, idx.live_tracks())
                   if speed_set(cfg.query_speeds) == (1.0,) else None)
        best, peaks = _score_excerpts(idx, enc, excerpts, [None] * len(excerpts), lengths, g, progress, spectra)
        return Calibration(
            "absent-music", cfg.max_false_match if max_false_match is None else float(max_false_match),
            score_bins(_scores(best), lengths, enc, cfg, peaks), tracks=len(waves), model_digest=model_digest(enc),
            query_speeds=speed_set(cfg.query_speeds), scoring=cfg.scoring(),
        )
    finally:
        if opened:
            idx.close()
