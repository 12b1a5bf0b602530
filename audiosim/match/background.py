"""Calibrate against a background of real music that ships with the model.

Why: the no-match threshold must be the score that only ``max_false_match``
of clips of music *absent* from the catalogue exceed. Leave-one-track-out
stand-ins (:func:`~audiosim.match.calibrate.calibrate_leave_one_out`) are
cut from the catalogue itself, so on a real catalogue their nearest
neighbours are the other tracks of the same album, composer and
instruments, and they score higher than absent music does: thresholds set
on them are too strict and cost hits. A user's absent music is, mostly,
other people's music.

The **background bank** is that other music, prepared once per model: clips
of soundtracks the model was never trained on (and that no benchmark uses),
each clean and degraded like real captures (noise, reverb, phone band,
speech babble), segmented and embedded with the model, and stored beside
it as ``<model>.background.npz`` (vectors and each clip's spectral peak
map, no audio; made by ``scripts/make_background.py`` with :func:`make_bank`). Calibrating an
index (:func:`calibrate_background`) only searches those vectors in the
index and scores windows of every calibrated length spread over each clip
exactly as queries are scored (:func:`~audiosim.match.calibrate.window_scores`;
several short windows per clip, so short clips' thresholds rest on more
scores): no decoding and no embedding, so it costs a fixed number of
searches whatever the catalogue's size. Each window's best candidate is
also checked on the spectrum as a query's is (:mod:`audiosim.match.spectral`,
against the candidate's log-mel in the data home's feature store), so the
thresholds of that second check are set on the same absent clips. A bank serves any query hop that
is a multiple of the one it was made at (:meth:`BackgroundBank.clip_rows`).

Bank music the catalogue does hold would be found, rightly, and push the
thresholds up. A bank track whose content hash is in the index is scored
with that track left out of its clips' searches (as leave-one-track-out
does), so a catalogue of the bank's own soundtracks still calibrates on
every bank clip (:func:`clips_by_held_track`); an excerpt whose clean clip
still matches the catalogue with a mean aligned similarity of at least
``min_found_similarity`` (the same recording in another encoding; absent
music never comes near it) is left out.

:func:`self_calibrate` is the calibrator ``audiosim index`` uses: the
bank when the model ships one made for it and the index's query settings,
leave-one-track-out otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from audiosim.config import AugmentConfig, FeatureConfig, IndexConfig
from audiosim.fingerprint.model import Encoder, model_digest
from audiosim.index.reader import Index
from audiosim.index.thresholds import Calibration, speed_set
from audiosim.match import spectral
from audiosim.match.calibrate import (
    ExcerptScore,
    calibrate_leave_one_out,
    score_bins,
    window_scores,
)
from audiosim.match.scoring import clip_at_speeds, neighbours_of, query_hop_frames
from audiosim.signal import audio, augment
from audiosim.signal import features as F
from audiosim.store.atomic import atomic_path
from audiosim.store.home import DataHome

BANK_SUFFIX = ".background.npz"
"""A model's bank is ``<model file without .pt>`` + this suffix."""

FORMAT = 2
"""Version of the bank file's layout (1: vectors only, without peak maps; still read)."""

QUANT = 127.0
"""Vectors are stored as int8: unit vectors times this, rounded."""

CONDITIONS = ("each excerpt twice: clean, and degraded with AugmentConfig() "
              "(noise or speech babble, reverb, EQ or phone band, in either order, gain)")


@dataclass(frozen=True)
class BackgroundBank:
    """Embedded clips of music that is absent from (almost) every catalogue.

    Attributes
    ----------
    vectors : ndarray, int8, shape (S, dim)
        Every clip's query segments, at speed 1.0, quantised (:data:`QUANT`).
    clip : ndarray, int32, shape (S,)
        The clip each segment belongs to (clips are contiguous, in order).
    starts : ndarray, int32, shape (S,)
        Each segment's first frame within its clip.
    clip_excerpt : ndarray, int32, shape (C,)
        The excerpt a clip was cut from: its clean and degraded clips share it.
    clip_degraded : ndarray, bool, shape (C,)
    excerpt_track : ndarray, int32, shape (E,)
        The bank track an excerpt comes from (an index into ``track_hashes``).
    track_hashes : ndarray, str, shape (T,)
        Content hashes of the bank's tracks (:func:`audiosim.signal.audio.content_hash`).
    peak_bits : ndarray, uint8, shape (frames, n_mels / 8), or None
        Every clip's spectral peak map (:func:`audiosim.match.spectral.peak_map`
        of its log-mel, :func:`~audiosim.match.spectral.pack`-ed), clips
        one after the other; None in a bank made without them (format 1).
    clip_frames : ndarray, int64, shape (C + 1,), or None
        Where each clip's frames start in ``peak_bits`` (and the total last).
    meta : dict
        ``model_digest``, ``seconds`` (clip length), ``query_hop_frames``,
        ``query_speeds``, ``conditions``, ``tracks`` (names), ``created``.
    """

    vectors: np.ndarray
    clip: np.ndarray
    starts: np.ndarray
    clip_excerpt: np.ndarray
    clip_degraded: np.ndarray
    excerpt_track: np.ndarray
    track_hashes: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    peak_bits: np.ndarray | None = None
    clip_frames: np.ndarray | None = None

    @property
    def n_clips(self) -> int:
        return len(self.clip_excerpt)

    def clip_rows(self, hop: int | None = None) -> list[np.ndarray]:
        """Per clip, the rows of its segments; with ``hop`` (frames, a
        multiple of the bank's), only those a query at that hop would have."""
        bounds = np.searchsorted(self.clip, np.arange(self.n_clips + 1))
        rows = [np.arange(bounds[i], bounds[i + 1]) for i in range(self.n_clips)]
        if hop is None or hop == self.hop_frames:
            return rows
        return [r[self.starts[r] % hop == 0] for r in rows]

    @property
    def hop_frames(self) -> int:
        """Frames between the bank's query segments."""
        return int(self.meta.get("query_hop_frames", -1))

    @property
    def has_peaks(self) -> bool:
        """Whether the bank holds its clips' peak maps (banks of format 1 do not)."""
        return self.peak_bits is not None and self.clip_frames is not None

    def clip_peaks(self, clip: int, n_mels: int) -> np.ndarray:
        """Clip ``clip``'s peak map, ``(n_mels, frames)`` bool (requires :attr:`has_peaks`)."""
        assert self.peak_bits is not None and self.clip_frames is not None
        a, b = int(self.clip_frames[clip]), int(self.clip_frames[clip + 1])
        return spectral.unpack(self.peak_bits[a:b], n_mels)

    def unit_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The float32 unit vectors of ``rows``."""
        v = self.vectors[rows].astype(np.float32) / QUANT
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-8)

    def fits(self, model: Encoder, config: IndexConfig) -> str | None:
        """Why this bank cannot calibrate an index of ``model`` with ``config``
        (None when it can)."""
        if self.meta.get("model_digest") != model_digest(model):
            return "it was made with another model"
        hop = query_hop_frames(config, model)
        if self.hop_frames <= 0 or hop % self.hop_frames:
            return (f"it was made for a query hop of {self.hop_frames} frames, which does not divide "
                    f"this index's {hop}")
        if speed_set(self.meta.get("query_speeds", [1.0])) != speed_set(config.query_speeds):
            return "it was made for other query speeds"
        return None

    def save(self, path: str | Path) -> None:
        """Write the bank atomically (a compressed ``.npz``, readable without pickle)."""
        names = ("vectors", "clip", "starts", "clip_excerpt", "clip_degraded", "excerpt_track", "track_hashes",
                 "peak_bits", "clip_frames")
        arrays = {k: getattr(self, k) for k in names if getattr(self, k) is not None}
        with atomic_path(Path(path)) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, format=np.array(FORMAT if self.has_peaks else 1),
                                    meta=np.array(json.dumps(self.meta)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "BackgroundBank":
        """Read a bank written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file is not a bank of this format (named in the message).
        """
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                version = int(z["format"])
                if version not in (1, FORMAT):
                    raise ValueError(f"{path}: background bank format {version}, expected {FORMAT} (or 1)")
                meta = json.loads(str(z["meta"]))
                peaks = (z["peak_bits"].astype(np.uint8), z["clip_frames"].astype(np.int64)) if version >= 2 else (None, None)
                bank = cls(z["vectors"].astype(np.int8), z["clip"].astype(np.int32), z["starts"].astype(np.int32),
                           z["clip_excerpt"].astype(np.int32), z["clip_degraded"].astype(bool),
                           z["excerpt_track"].astype(np.int32), z["track_hashes"].astype(str), meta, *peaks)
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable background bank ({e})") from e
        if len(bank.clip) != len(bank.vectors) or len(bank.starts) != len(bank.vectors):
            raise ValueError(f"{path}: background bank arrays do not line up")
        if bank.has_peaks and (len(bank.clip_frames) != bank.n_clips + 1 or bank.clip_frames[-1] != len(bank.peak_bits)):
            raise ValueError(f"{path}: background bank peak maps do not line up with its clips")
        return bank


def bank_path(model: Encoder) -> Path | None:
    """Where ``model``'s bank would be: beside its checkpoint (None for a model not loaded from a file)."""
    if model.identity is None or not model.identity.path:
        return None
    p = Path(model.identity.path)
    return p.with_name(p.stem + BANK_SUFFIX)


def load_bank(model: Encoder) -> BackgroundBank | None:
    """``model``'s bank, or None when it ships none (an unreadable one raises ``ValueError``)."""
    p = bank_path(model)
    return BackgroundBank.load(p) if p is not None and p.is_file() else None


# --------------------------------------------------------------------------
# Making a bank
# --------------------------------------------------------------------------


def _excerpt_starts(wave: np.ndarray, n: int, size: int, silence_db: float, rng: np.random.Generator) -> list[int]:
    """``n`` start samples of audible windows of ``size`` samples, spread over the track."""
    out = []
    span = len(wave) - size
    for k in range(n):
        for _ in range(10):  # prefer audible windows, as queries are
            s0 = int((k + rng.random()) / n * span) if span > 0 else 0
            piece = wave[s0 + size // 2 : s0 + size]
            if 10 * np.log10(float(np.mean(piece**2)) + 1e-12) > silence_db:
                break
        out.append(s0)
    return out


def make_bank(
    model: Encoder,
    paths: Sequence[str | Path],
    excerpts: int = 300,
    seconds: float = 10.0,
    config: IndexConfig = IndexConfig(),
    seed: int = 0,
    noise_bank: torch.Tensor | None = None,
    speech_bank: torch.Tensor | None = None,
    progress: Callable[[str, dict], None] | None = None,
) -> BackgroundBank:
    """Embed a background bank of ``excerpts`` excerpts of ``paths``, each clean and degraded.

    Excerpts are shared out over the tracks by duration and spread over
    each track. The degraded copy goes through the training degradations
    (:class:`~audiosim.signal.augment.Degrader` with ``AugmentConfig()``,
    ``noise_bank`` and ``speech_bank``), with half a second of the track
    before it feeding the reverb tail.

    Raises
    ------
    ValueError
        If no file could be decoded.
    """
    f = model.features
    sr = f.sample_rate
    hop = query_hop_frames(config, model)
    waves, hashes, names = [], [], []
    for p in paths:
        try:
            x = audio.load(p, sr)
            h = audio.content_hash(p)
        except audio.AudioError:
            continue
        if len(x) >= (seconds + 1.0) * sr:
            waves.append(x)
            hashes.append(h)
            names.append("/".join(Path(p).parts[-3:]))
    if not waves:
        raise ValueError("no background file could be decoded (or all are shorter than the clips)")
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    lengths = np.array([len(w) for w in waves], np.float64)
    counts = np.maximum(1, np.round(excerpts * lengths / lengths.sum())).astype(int)
    ctx = sr // 2
    size = ctx + int(round(seconds * sr))
    degrader = augment.Degrader(AugmentConfig(), sr, noise_bank, speech_bank)
    vecs, clip, starts, clip_excerpt, clip_degraded, excerpt_track, peaks = [], [], [], [], [], [], []
    n_done, total = 0, int(counts.sum())
    for t, (w, n) in enumerate(zip(waves, counts)):
        for s0 in _excerpt_starts(w, int(n), size, f.silence_db, rng):
            x = torch.from_numpy(np.ascontiguousarray(w[s0 : s0 + size], dtype=np.float32))
            x = torch.nn.functional.pad(x, (0, size - len(x)))
            dirty = degrader(x[None], size - ctx, g)[0]
            for degraded, y in ((False, x[ctx:]), (True, dirty)):
                runs = clip_at_speeds(model, y.numpy(), replace(config, query_speeds=(1.0,)), hop)
                if not runs:
                    continue
                _, lm, st = runs[0]
                emb = model.embed(F.segments(lm, st, f)).numpy()
                vecs.append(np.round(emb * QUANT).astype(np.int8))
                peaks.append(spectral.pack(spectral.peak_map(lm.numpy())))
                clip.append(np.full(len(st), len(clip_excerpt), np.int32))
                starts.append(st.astype(np.int32))
                clip_excerpt.append(len(excerpt_track))
                clip_degraded.append(degraded)
            excerpt_track.append(t)
            n_done += 1
            if progress:
                progress("background-clips", {"done": n_done, "total": total})
    meta = {
        "model_digest": model_digest(model), "seconds": float(seconds), "query_hop_frames": int(hop),
        "query_speeds": [1.0], "conditions": CONDITIONS, "tracks": names, "seed": int(seed),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return BackgroundBank(np.concatenate(vecs), np.concatenate(clip), np.concatenate(starts),
                          np.array(clip_excerpt, np.int32), np.array(clip_degraded, bool),
                          np.array(excerpt_track, np.int32), np.array(hashes), meta,
                          np.concatenate(peaks), np.cumsum([0] + [len(p) for p in peaks]).astype(np.int64))


# --------------------------------------------------------------------------
# Calibrating with a bank
# --------------------------------------------------------------------------


def spread_clips(bank: BackgroundBank, n: int) -> list[int]:
    """About ``n`` of the bank's clips: both clips of evenly spaced excerpts (all when ``n`` covers the bank).

    >>> b = BackgroundBank(*[np.zeros(0)] * 3, np.repeat(np.arange(5), 2), np.tile([False, True], 5),
    ...                    np.zeros(5, np.int32), np.array(["h"]))
    >>> spread_clips(b, 4)
    [0, 1, 8, 9]
    """
    excerpts = np.unique(bank.clip_excerpt)
    if n >= bank.n_clips:
        return list(range(bank.n_clips))
    per = bank.n_clips / max(len(excerpts), 1)
    keep = set(excerpts[np.linspace(0, len(excerpts) - 1, max(1, int(round(n / per)))).round().astype(int)].tolist())
    return [c for c in range(bank.n_clips) if int(bank.clip_excerpt[c]) in keep]


def clips_by_held_track(bank: BackgroundBank, index: Index, clips: Sequence[int]) -> dict[tuple[int, ...], list[int]]:
    """Bank clips grouped by the index tracks to leave out of their searches.

    A clip of a bank track that the catalogue holds (the same content hash)
    is searched without that track's items, as leave-one-track-out does,
    so it stands for music the catalogue lacks; the other clips (key
    ``()``) search the whole index.
    """
    ids_of: dict[str, list[int]] = {}
    for tid, h in index.live_tracks().items():
        ids_of.setdefault(str(h), []).append(int(tid))
    groups: dict[tuple[int, ...], list[int]] = {}
    for c in clips:
        own = tuple(sorted(ids_of.get(str(bank.track_hashes[bank.excerpt_track[bank.clip_excerpt[c]]]), ())))
        groups.setdefault(own, []).append(int(c))
    return groups


def calibrate_background(
    index: Index,
    model: Encoder,
    bank: BackgroundBank,
    seconds: Sequence[float] | None = None,
    max_false_match: float | None = None,
    min_found_similarity: float = 0.8,
    clips: int | None = None,
    windows: int | None = None,
    batch_clips: int = 64,
    progress: Callable[[str, dict], None] | None = None,
    spectra: spectral.TrackLogMels | None = None,
) -> Calibration | None:
    """Thresholds from the bank's clips scored against ``index``.

    Parameters
    ----------
    index : Index
    model : Encoder
        The index's model (the bank must be made with it, :meth:`BackgroundBank.fits`).
    bank : BackgroundBank
    seconds : sequence of float, optional
        Clip lengths (default ``index.config.calibration_seconds``; none may
        exceed the bank's clips).
    max_false_match : float, optional
        Default ``index.config.max_false_match``.
    min_found_similarity : float
        A clean clip that matches with at least this mean aligned similarity
        per segment holds catalogue music: its excerpt is left out.
    clips : int, optional
        Bank clips to score (default ``index.config.background_clips``): the
        clean and degraded clips of evenly spaced excerpts (:func:`spread_clips`).
    windows : int, optional
        Windows of each length scored per clip (default
        ``index.config.background_windows``; :func:`~audiosim.match.calibrate.window_scores`).
    batch_clips : int
        Clips searched together (one search call each batch).
    progress : callable, optional
        ``progress(stage, info)``: ``calibrate-clips`` with ``done`` and
        ``total``; ``calibrate-shared`` with the excerpts left out.
    spectra : TrackLogMels, optional
        The catalogue's log-mels: with them (and a bank with peak maps),
        every window's peak agreement with its best candidate is recorded
        too (:func:`window_peaks`), for the spectral check's thresholds.

    Returns
    -------
    Calibration or None
        None when no bank clip is left to calibrate with.

    Raises
    ------
    ValueError
        If the bank does not fit the model or the index's settings.
    """
    cfg = index.config
    why = bank.fits(model, cfg)
    if why:
        raise ValueError(f"the background bank cannot calibrate this index: {why}")
    f = model.features
    hop = query_hop_frames(cfg, model)
    lengths = sorted(float(x) for x in (seconds or cfg.calibration_seconds))
    clip_seconds = float(bank.meta["seconds"])
    rows = bank.clip_rows(hop)
    todo = [c for c in spread_clips(bank, cfg.background_clips if clips is None else int(clips)) if len(rows[c])]
    most = cfg.background_windows if windows is None else int(windows)
    best: dict[int, list[list[ExcerptScore]]] = {}
    peaks: dict[int, list[list[float]]] = {}
    check = spectra is not None and bank.has_peaks
    groups = clips_by_held_track(bank, index, todo)
    done = 0
    for own, group in groups.items():
        for b0 in range(0, len(group), batch_clips):
            chunk = group[b0 : b0 + batch_clips]
            sel = np.concatenate([rows[c] for c in chunk])
            vecs = bank.unit_vectors(sel)
            nn = index.search(vecs, cfg.neighbours, exclude_tracks=list(own) or None)
            at = 0
            for c in chunk:
                r = np.arange(at, at + len(rows[c]))
                at += len(rows[c])
                run = (1.0, bank.starts[rows[c]].astype(np.int64), vecs[r], neighbours_of(nn, r))
                best[c] = window_scores(index, run, clip_seconds, lengths, f, hop, most)
                if check:
                    peaks[c] = window_peaks(bank.clip_peaks(c, f.n_mels), best[c], lengths, f, spectra)
            done += len(chunk)
            if progress:
                progress("calibrate-clips", {"done": done, "total": len(todo)})
    held_tracks = sum(1 for own in groups if own)
    in_longest = F.n_frames(int(round(lengths[-1] * f.sample_rate)), f)
    found = {int(bank.clip_excerpt[c]) for c, res in best.items()
             if not bank.clip_degraded[c] and res[-1]
             and res[-1][0].score >= min_found_similarity * np.sum(bank.starts[rows[c]] + f.segment_frames <= in_longest)}
    kept = [(c, k) for c, res in best.items() if int(bank.clip_excerpt[c]) not in found
            for k in range(max(map(len, res), default=0))]
    scores = [[w[k].score if k < len(w) else None for w in best[c]] for c, k in kept]
    agree = [[w[k] if k < len(w) else None for w in peaks[c]] for c, k in kept] if check else None
    if progress and (found or held_tracks):
        progress("calibrate-shared", {"dropped": len(found), "tracks": held_tracks})
    bins = score_bins(scores, lengths, model, cfg, agree)
    if not bins:
        return None
    return Calibration(
        "background", cfg.max_false_match if max_false_match is None else float(max_false_match), bins,
        tracks=len(bank.track_hashes), conditions=str(bank.meta.get("conditions", "")),
        model_digest=model_digest(model), query_speeds=speed_set(cfg.query_speeds),
        scoring=cfg.scoring(),
    )


def window_peaks(
    clip_peaks: np.ndarray,
    windows: list[list[ExcerptScore]],
    lengths: Sequence[float],
    features: FeatureConfig,
    spectra: spectral.TrackLogMels,
) -> list[list[float]]:
    """Per length, each window's peak agreement with its best candidate, as a query's is checked.

    The window's slice of the clip's peak map is compared with the
    candidate's log-mel at the window's offset
    (:func:`~audiosim.match.spectral.peak_agreement`); a window without a
    candidate, or whose candidate's log-mel is not stored, agrees 0.
    """
    out = []
    for length, got in zip(lengths, windows):
        span = F.n_frames(int(round(length * features.sample_rate)), features)
        row = []
        for w in got:
            agree = None if w.track is None else spectra.agreement(clip_peaks[:, w.start : w.start + span],
                                                                   w.track, w.offset)
            row.append(0.0 if agree is None else agree)
        out.append(row)
    return out


def self_calibrate(
    index: Index,
    model: Encoder,
    home: str | Path | DataHome | None = None,
    progress: Callable[[str, dict], None] | None = None,
) -> Calibration | None:
    """The calibrator ``audiosim index`` uses (a :class:`~audiosim.index.thresholds.Calibrator`).

    With a bank beside the model that fits it and the index's settings
    (:func:`load_bank`, :meth:`BackgroundBank.fits`):
    :func:`calibrate_background`. Otherwise (a model trained here without
    a bank, other query speeds): leave-one-track-out
    (:func:`~audiosim.match.calibrate.calibrate_leave_one_out`), with a
    ``calibrate-method`` progress event saying why.
    """
    bank = load_bank(model)
    why = "the model ships no background bank" if bank is None else bank.fits(model, index.config)
    if bank is not None and why is None:
        spectra = spectral.TrackLogMels.open(DataHome.resolve(home), model.features, index.live_tracks())
        return calibrate_background(index, model, bank, progress=progress, spectra=spectra)
    if progress:
        progress("calibrate-method", {"method": "leave-one-track-out", "why": why})
    return calibrate_leave_one_out(index, model, home=home, progress=progress)
