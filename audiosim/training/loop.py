"""Train the fingerprint encoder with triplet loss, in one readable file.

Data: the clean waveforms of the training tracks (decoded once and cached in
the data home) plus, per track, an aligned lossy-codec copy. Each step draws
``batch_size`` random audible moments: the anchor is the clean segment, the
positive the same moment read at a slightly different speed and position,
possibly through the codec copy, then reverberated, mixed with noise,
equalised and scaled. Negatives are mined inside the batch.

Validation embeds every segment of held-out tracks (never seen in training)
at the index hop and asks, for degraded queries at random moments, whether
the nearest segment is the right track at the right time, by SNR; and
whether 1 s and 5 s clips are identified by offset-consistent voting.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from audiosim.config import (
    AugmentConfig,
    DecodeConfig,
    FeatureConfig,
    ModelConfig,
    TrainConfig,
)
from audiosim.fingerprint.model import (
    Encoder,
    load_checkpoint,
    load_encoder,
    save_encoder,
)
from audiosim.match.voting import vote
from audiosim.signal import audio, augment, features
from audiosim.store.atomic import atomic_save_npy, atomic_write_bytes
from audiosim.training.triplet import mine_triplets

CODECS = ("mp3", "opus", "vorbis")


@dataclass(frozen=True)
class TrackRef:
    """A track to train or validate on."""

    path: str
    content_hash: str
    name: str = ""


def split_tracks(tracks: Sequence[TrackRef], val_fraction: float, seed: int = 0) -> tuple[list[TrackRef], list[TrackRef]]:
    """Deterministic track-level split by content hash.

    A track's side depends only on its hash and ``seed``, so the split is
    stable when tracks are added, and a track never moves between sides.
    """
    train, val = [], []
    for t in tracks:
        h = int(hashlib.sha256(f"{seed}:{t.content_hash}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if h < val_fraction else train).append(t)
    return train, val


@dataclass
class AudioSet:
    """Tracks concatenated into one tensor (and an aligned codec copy)."""

    clean: torch.Tensor
    coded: torch.Tensor
    starts: np.ndarray
    lengths: np.ndarray
    names: list[str]
    audible: list[np.ndarray] = field(default_factory=list)
    """Per track, start samples of audible 0.25 s blocks."""
    sample_rate: int = 8000

    @property
    def hours(self) -> float:
        """Total duration (hours) at ``sample_rate``."""
        return float(self.lengths.sum()) / self.sample_rate / 3600


def _cached(path: Path, make: Callable[[], np.ndarray]) -> np.ndarray:
    if path.is_file():
        return np.load(path).astype(np.float32)
    x = make()
    atomic_save_npy(path, x.astype(np.float16))
    return x


def load_audio_set(
    tracks: Sequence[TrackRef],
    config: FeatureConfig,
    cache_dir: Path,
    decode: DecodeConfig = DecodeConfig(),
    progress: bool = True,
) -> AudioSet:
    """Decode (or read from ``cache_dir``) every track and its codec copy.

    Tracks that fail to decode are skipped with a message naming the file.
    """
    sr = config.sample_rate
    clean, coded, names, lengths, audible = [], [], [], [], []
    for t in tqdm(tracks, desc="loading audio", unit="track", disable=not progress):
        try:
            x = _cached(cache_dir / f"{t.content_hash}.npy", lambda: audio.load(t.path, sr, decode))
        except audio.AudioError as e:
            tqdm.write(f"skipped: {e}")
            continue
        codec = CODECS[int(t.content_hash[:8], 16) % len(CODECS)]
        y = _cached(cache_dir / f"{t.content_hash}.{codec}.npy", lambda: augment.lossy_copy(x, sr, codec))
        block = sr // 4
        n_blocks = len(x) // block
        rms_db = 10 * np.log10((x[: n_blocks * block].reshape(n_blocks, block) ** 2).mean(1) + 1e-12)
        audible.append(np.flatnonzero(rms_db > config.silence_db) * block)
        clean.append(torch.from_numpy(x))
        coded.append(torch.from_numpy(y))
        names.append(t.name or Path(t.path).name)
        lengths.append(len(x))
    lengths_a = np.array(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths_a)[:-1]]).astype(np.int64) if lengths else np.zeros(0, np.int64)
    return AudioSet(
        torch.cat(clean) if clean else torch.zeros(0),
        torch.cat(coded) if coded else torch.zeros(0),
        starts,
        lengths_a,
        names,
        audible,
        sr,
    )


# Samples of context read before each positive (it feeds the reverb tail).
def _context(config: FeatureConfig) -> int:
    return config.sample_rate // 2


def sample_moments(
    data: AudioSet, n: int, before: int, after: int, g: torch.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random (track, sample offset) pairs at audible moments, with room for
    ``before`` samples before and ``after`` samples after each."""
    weights = np.array([len(a) for a in data.audible], dtype=np.float64)
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
    tr = rng.choice(len(weights), size=n, p=weights / weights.sum())
    pick = (rng.random(n) * weights[tr]).astype(np.int64)
    jitter = rng.integers(0, data.sample_rate // 4, n)
    pos = np.array([data.audible[t][i] for t, i in zip(tr, pick)], dtype=np.int64) + jitter
    pos = np.clip(pos, before, np.maximum(data.lengths[tr] - after, before))
    return tr, pos


class Batcher:
    """Draws (anchor, positive) log-mel segment pairs from an :class:`AudioSet`."""

    def __init__(self, data: AudioSet, features_cfg: FeatureConfig, augment_cfg: AugmentConfig, noise_bank=None):
        self.data = data
        self.f = features_cfg
        self.a = augment_cfg
        self.degrader = augment.Degrader(augment_cfg, features_cfg.sample_rate, noise_bank)
        self.ctx = _context(features_cfg)
        if not any(len(a) for a in data.audible):
            raise ValueError("no audible audio to train on")

    def waves(
        self, n: int, seconds: float, g: torch.Generator, snr_db: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
        """Clean and degraded windows of ``seconds`` at random moments.

        Returns clean (n, S), degraded (n, S), track index (n,), start time (s, n).
        """
        f, a = self.f, self.a
        sr = f.sample_rate
        length = int(round(seconds * sr))
        margin = int(a.max_shift_seconds * sr) + 2
        before = int(self.ctx * a.speed[1]) + margin
        tr, pos = sample_moments(self.data, n, before, int(length * a.speed[1]) + margin, g)
        gpos = torch.from_numpy(self.data.starts[tr] + pos)
        clean = augment.gather_resampled(self.data.clean, gpos.double(), torch.ones(n), length)
        rates = augment.speed_factors(n, a, g)
        start = gpos.double() + augment.shifts(n, a, sr, g).double() - rates.double() * self.ctx
        use_codec = torch.rand(n, generator=g) < a.p_codec
        raw = torch.where(
            use_codec[:, None],
            augment.gather_resampled(self.data.coded, start, rates, self.ctx + length),
            augment.gather_resampled(self.data.clean, start, rates, self.ctx + length),
        )
        music = augment.gather_resampled(
            self.data.clean, torch.from_numpy(self.data.starts[tr] + pos).double().roll(7), torch.ones(n), self.ctx + length
        )
        degraded = self.degrader(raw, length, g, snr_db=snr_db, music=music)
        return clean, degraded, tr, pos / sr

    def pairs(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
        """Anchor and positive log-mel segments ``(n, n_mels, segment_frames)``."""
        clean, degraded, tr, t = self.waves(n, self.f.segment_samples / self.f.sample_rate, g)
        return features.log_mel(clean, self.f), features.log_mel(degraded, self.f), tr, t


def negative_mask(
    tracks: np.ndarray,
    times: np.ndarray,
    min_seconds: float,
    anchors: torch.Tensor | None = None,
    max_similarity: float = 1.0,
    max_lag: int = 0,
) -> torch.Tensor:
    """``mask[i, j]``: item ``j`` may be a negative for anchor ``i``.

    It may unless it is the same track less than ``min_seconds`` away, or,
    given the clean ``anchors`` and ``max_similarity < 1``, its clean content
    correlates with anchor ``i`` above ``max_similarity`` at some shift up to
    ``max_lag`` frames (a repeat of the same passage is not a negative).
    """
    same = tracks[:, None] == tracks[None, :]
    near = np.abs(times[:, None] - times[None, :]) < min_seconds
    mask = torch.from_numpy(~(same & near))
    if anchors is not None and max_similarity < 1.0:
        with torch.no_grad():
            mask &= features.shifted_similarity(anchors, max_lag) <= max_similarity
    return mask


@dataclass
class ValidationSet:
    """Fixed, seeded queries against every segment of the validation tracks."""

    index_emb_tracks: np.ndarray
    index_times: np.ndarray
    index_segments: torch.Tensor
    queries: dict[str, tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]]
    """name -> (log-mel windows, track, start time, segment hop in frames)."""


def build_validation(
    data: AudioSet,
    features_cfg: FeatureConfig,
    augment_cfg: AugmentConfig,
    n_queries: int = 400,
    index_hop_seconds: float = 0.5,
    seed: int = 1234,
) -> ValidationSet:
    """Index segments of every validation track and fixed degraded queries."""
    f = features_cfg
    hop = features.seconds_to_frames(index_hop_seconds, f)
    segs, trk, tms = [], [], []
    with torch.inference_mode():
        for i in range(len(data.names)):
            x = data.clean[data.starts[i] : data.starts[i] + data.lengths[i]]
            lm = features.log_mel(x, f)
            starts = features.audible_segments(lm, hop, f)
            segs.append(features.segments(lm, starts, f).half())
            trk.append(np.full(len(starts), i))
            tms.append(starts / f.frames_per_second)
    batcher = Batcher(data, f, augment_cfg)
    g = torch.Generator().manual_seed(seed)
    queries = {}
    conditions = [("clean", 1, None), *[(f"{s}dB", 1, float(s)) for s in (0, 5, 10, 20)], ("mixed-1s", 1, -1.0), ("mixed-5s", 5, -1.0)]
    for name, seconds, snr in conditions:
        clip_seconds = f.segment_samples / f.sample_rate if seconds == 1 else float(seconds)
        if name == "clean":
            clean, _, tr, t = batcher.waves(n_queries, clip_seconds, g)
            wav = clean
        else:
            snr_t = None if snr == -1.0 else torch.full((n_queries,), snr)
            _, wav, tr, t = batcher.waves(n_queries, clip_seconds, g, snr_db=snr_t)
        with torch.inference_mode():
            queries[name] = (features.log_mel(wav, f).half(), tr, t)
    return ValidationSet(np.concatenate(trk), np.concatenate(tms), torch.cat(segs), queries)


@torch.inference_mode()
def validate(model: Encoder, val: ValidationSet, query_hop_frames: int = 8, k: int = 5) -> dict[str, float]:
    """Top-1 hit rates on the validation set.

    For each condition ``name``: ``name`` is the share of queries whose answer
    is the right track, ``name@offset`` the share that also place it within
    0.5 s of the true position, and ``name@passage`` the share at the true
    position or at a repeat of the same passage (game music loops: its clean
    log-mel correlates above 0.85 with the true one at some shift up to
    0.25 s), which is not really an error.
    Segment conditions (``clean``, ``0dB`` ...) answer with the nearest
    indexed segment; clip conditions (``mixed-1s``, ``mixed-5s``) by
    offset-consistent voting over the clip's segments.
    """
    f = model.features
    index = model.embed(val.index_segments.float())
    out: dict[str, float] = {}
    for name, (lm, tr, t) in val.queries.items():
        lm = lm.float()
        starts = features.segment_starts(lm.shape[-1], query_hop_frames, f)
        segs = lm[:, :, starts[:, None] + np.arange(f.segment_frames)].permute(0, 2, 1, 3)  # (n, s, mels, frames)
        n, s = segs.shape[:2]
        emb = model.embed(segs.reshape(n * s, f.n_mels, f.segment_frames))
        top_s, top_i = (emb @ index.T).topk(k, dim=1)
        top_s = top_s.reshape(n, s, k).numpy()
        top_i = top_i.reshape(n, s, k).numpy()
        q_times = starts / f.frames_per_second
        track_hits = offset_hits = passage_hits = 0
        for j in range(n):
            if s == 1:
                best_t, best_off = val.index_emb_tracks[top_i[j, 0, 0]], val.index_times[top_i[j, 0, 0]]
            else:
                cands = vote(q_times, val.index_emb_tracks[top_i[j]], val.index_times[top_i[j]], top_s[j])
                best_t, best_off = (cands[0].track, cands[0].offset) if cands else (-1, 0.0)
            right_track = best_t == tr[j]
            right_offset = right_track and abs(best_off - t[j]) <= 0.5
            track_hits += int(right_track)
            offset_hits += int(right_offset)
            passage_hits += int(right_offset or (right_track and _same_passage(val, tr[j], t[j], best_off, f)))
        out[name] = track_hits / n
        out[f"{name}@offset"] = offset_hits / n
        out[f"{name}@passage"] = passage_hits / n
    return out


def _same_passage(val: ValidationSet, track: int, t: float, offset: float, f: FeatureConfig,
                  min_similarity: float = 0.85) -> bool:
    """Whether the clean audio of ``track`` at ``offset`` repeats the passage at ``t``."""
    rows = np.flatnonzero(val.index_emb_tracks == track)
    times = val.index_times[rows]
    a, b = rows[np.abs(times - t).argmin()], rows[np.abs(times - offset).argmin()]
    pair = val.index_segments[[a, b]].float()
    lag = features.seconds_to_frames(0.25, f)
    return bool(features.shifted_similarity(pair, lag)[0, 1] > min_similarity)


def lr_at(step: int, cfg: TrainConfig, warmup: int = 200) -> float:
    """Linear warm-up then cosine decay to 5 % of ``cfg.lr``."""
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    p = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def mining_at(step: int, cfg: TrainConfig) -> str:
    """The mining strategy in force at ``step``."""
    if cfg.mining == "semi_hard_then_hard":
        return "semi_hard" if step < cfg.semi_hard_fraction * cfg.steps else "batch_hard"
    return cfg.mining


def train_encoder(
    train_data: AudioSet,
    val_data: AudioSet,
    out: Path,
    features_cfg: FeatureConfig = FeatureConfig(),
    model_cfg: ModelConfig = ModelConfig(),
    augment_cfg: AugmentConfig = AugmentConfig(),
    cfg: TrainConfig = TrainConfig(),
    card: dict | None = None,
    resume: bool = True,
    noise_bank: torch.Tensor | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, validate, checkpoint; keep the best model at ``out``.

    A running checkpoint ``<out>.last.pt`` (model, optimiser, step, RNG,
    history) is written every ``cfg.checkpoint_every`` steps; with ``resume``
    a rerun continues from it. The best validation score (mean of the
    ``mixed-1s`` and ``mixed-5s`` hit rates) is saved at ``out`` with a card.

    Returns
    -------
    dict
        The card of the best model (configs, history, metrics).
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = Encoder(model_cfg, features_cfg)
    max_lag = features.seconds_to_frames(augment_cfg.max_shift_seconds, features_cfg)
    batcher = Batcher(train_data, features_cfg, augment_cfg, noise_bank)
    log("building validation set ...")
    val = build_validation(val_data, features_cfg, augment_cfg, index_hop_seconds=0.5)
    base_card = dict(card or {})
    base_card.update(
        train_config=cfg.to_dict(),
        augment_config=augment_cfg.to_dict(),
        train_tracks=len(train_data.names),
        train_hours=round(float(train_data.lengths.sum()) / features_cfg.sample_rate / 3600, 2),
        val_tracks=len(val_data.names),
        val_hours=round(float(val_data.lengths.sum()) / features_cfg.sample_rate / 3600, 2),
        hardware=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
    )

    def sample(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        anchors, positives, tr, t = batcher.pairs(n, g)
        allowed = negative_mask(tr, t, cfg.negative_min_seconds, anchors, cfg.negative_max_similarity, max_lag)
        return anchors, positives, allowed

    def start_from(m: Encoder) -> None:
        m.load_state_dict(load_encoder(cfg.init_from, features_cfg).state_dict())
        log(f"starting from the weights of {cfg.init_from}")

    task = TripletTask(sample, lambda m: validate(m, val), lambda v: (v["mixed-1s"] + v["mixed-5s"]) / 2)
    return fit_triplets(model, task, out, cfg, g, base_card, resume=resume,
                        init=start_from if cfg.init_from else None, progress=progress, log=log)


@dataclass
class TripletTask:
    """What differs between triplet-training runs (fingerprints, song similarity)."""

    sample: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    """``(n, g) -> (anchors, positives, allowed)``: log-mel batches ``(n, n_mels,
    frames)`` and the ``(n, n)`` mask of items that may be negatives for each anchor."""
    validate: Callable[[Encoder], dict[str, float]]
    """Metrics of the model (called in eval mode)."""
    score: Callable[[dict[str, float]], float]
    """Selection score of the metrics; the checkpoint with the highest is kept."""
    record_as: str = "validation"
    """Card key of the kept checkpoint's metrics."""


def _replan(cfg: TrainConfig, step: int, seconds: float, max_minutes: float) -> TrainConfig:
    """``cfg`` with fewer steps if the pace so far (``seconds`` for ``step``
    steps) would overrun ``max_minutes``; never more steps."""
    fit = step + int((max_minutes * 60 - seconds) / (seconds / step))
    return replace(cfg, steps=max(fit, step + 1)) if fit < cfg.steps else cfg


def fit_triplets(
    model: Encoder,
    task: TripletTask,
    out: Path,
    cfg: TrainConfig,
    g: torch.Generator,
    base_card: dict,
    resume: bool = True,
    init: Callable[[Encoder], None] | None = None,
    max_minutes: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """The triplet-training loop: steps, validation, best and running checkpoints.

    Each step draws ``task.sample(cfg.batch_size, g)``, embeds anchors and
    positives, mines triplets among the allowed negatives (``cfg.mining``
    schedule, :func:`mining_at`) and takes an AdamW step (:func:`lr_at`).
    Every ``cfg.validate_every`` steps the model is scored with
    ``task.score(task.validate(model))``; the best is saved at ``out`` with
    ``base_card`` plus history. A running checkpoint ``<out>.last.pt`` is
    written every ``cfg.checkpoint_every`` steps; with ``resume`` a rerun
    with the same ``cfg`` continues from it. ``init`` prepares a fresh
    (not resumed) model, e.g. loads weights. With ``max_minutes``, the pace
    after 20 steps and at every validation may cut ``cfg.steps`` so that
    training fits; the schedules follow the new length.

    Returns
    -------
    dict
        The card of the best model.
    """
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    last = out.with_name(out.stem + ".last.pt")
    step, history, best, elapsed = 0, [], -1.0, 0.0
    if resume and last.is_file():
        ck = load_checkpoint(last)
        if ck["card"].get("train_config") != cfg.to_dict():
            log(f"not resuming from {last}: it was made with another training config")
        else:
            model.load_state_dict(ck["state_dict"])
            opt.load_state_dict(ck["optimizer"])
            g.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            step, history, best, elapsed = ck["step"], ck["history"], ck["best"], ck["elapsed"]
            log(f"resuming from step {step} ({last})")
    if step == 0 and init is not None:
        init(model)
    bar = tqdm(total=cfg.steps, initial=step, desc="training", unit="step", disable=not progress)
    t0 = time.time() - elapsed
    run_loss, run_active = 0.0, 0.0
    model.train()
    while step < cfg.steps:
        if max_minutes and step > 0 and (step == 20 or step % cfg.validate_every == 0):
            planned = _replan(cfg, step, time.time() - t0, max_minutes)
            if planned.steps != cfg.steps:
                cfg = planned
                base_card = dict(base_card, train_config=cfg.to_dict())
                bar.total = cfg.steps
                log(f"{(time.time() - t0) / step:.2f} s/step so far: training {cfg.steps} steps to fit {max_minutes:g} minutes")
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        anchors, positives, allowed = task.sample(cfg.batch_size, g)
        emb = model(torch.cat([anchors, positives]))
        a, p = emb[: cfg.batch_size], emb[cfg.batch_size :]
        mined = mine_triplets(a, p, cfg.margin, mining_at(step, cfg), cfg.distance, allowed)
        if not torch.isfinite(mined.loss):
            raise FloatingPointError(
                f"training loss became {float(mined.loss.detach())} at step {step}: check the noise bank and "
                f"learning rate; the last good checkpoint is {last}"
            )
        opt.zero_grad(set_to_none=True)
        mined.loss.backward()
        opt.step()
        step += 1
        run_loss = 0.98 * run_loss + 0.02 * float(mined.loss.detach()) if step > 1 else float(mined.loss.detach())
        run_active = 0.98 * run_active + 0.02 * mined.active if step > 1 else mined.active
        bar.update(1)
        bar.set_postfix(loss=f"{run_loss:.3f}", active=f"{run_active:.2f}", mining=mining_at(step, cfg)[:4])
        if step % cfg.validate_every == 0 or step == cfg.steps:
            model.eval()
            metrics = task.validate(model)
            model.train()
            score = task.score(metrics)
            entry = dict(step=step, minutes=round((time.time() - t0) / 60, 1), loss=round(run_loss, 4),
                         active=round(run_active, 3), **{k: round(v, 4) for k, v in metrics.items()})
            history.append(entry)
            log(json.dumps(entry))
            if score > best:
                best = score
                best_card = dict(base_card, step=step, history=history, training_minutes=entry["minutes"])
                best_card[task.record_as] = entry
                save_encoder(model, out, best_card)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_encoder(
                model, last, dict(base_card, train_config=cfg.to_dict()),
                optimizer=opt.state_dict(), generator=g.get_state(), torch_rng=torch.get_rng_state(),
                step=step, history=history, best=best, elapsed=time.time() - t0,
            )
    bar.close()
    final = load_checkpoint(out)["card"]
    final["history"] = history
    save_encoder(load_encoder(out), out, final)
    return final


def load_noise_bank(paths: Sequence[str | Path], sample_rate: int, max_seconds: float = 1800.0) -> torch.Tensor:
    """Concatenate environmental recordings (each scaled to unit RMS) for use
    as background noise. Unreadable files are skipped."""
    parts, total = [], 0
    for p in paths:
        try:
            x = audio.load(p, sample_rate, DecodeConfig(min_seconds=0.2))
        except audio.AudioError:
            continue
        x = x / max(float(np.sqrt((x**2).mean())), 1e-6)
        parts.append(torch.from_numpy(x.astype(np.float32)))
        total += len(x)
        if total > max_seconds * sample_rate:
            break
    return torch.cat(parts) if parts else torch.zeros(0)


def track_refs(paths: Sequence[str | Path]) -> list[TrackRef]:
    """Hash each file into a :class:`TrackRef` (unreadable files are skipped)."""
    refs = []
    for p in paths:
        try:
            refs.append(TrackRef(str(p), audio.content_hash(p), _display_name(Path(p))))
        except audio.AudioError as e:
            print(f"skipped: {e}")
    return refs


def _display_name(p: Path) -> str:
    # Debian soundtrack paths are deep and generic (.../song.ogg): keep the parents.
    return "/".join(p.parts[-3:])


def write_split(path: Path, train: Sequence[TrackRef], val: Sequence[TrackRef]) -> None:
    """Record which tracks were trained on and which held out (names and hashes)."""
    doc = {
        "train": [{"name": t.name, "content_hash": t.content_hash} for t in train],
        "validation": [{"name": t.name, "content_hash": t.content_hash} for t in val],
    }
    atomic_write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode())


def train_from_tracks(
    tracks: Sequence[TrackRef],
    out: Path,
    cache_dir: Path,
    noise_paths: Sequence[str | Path] = (),
    features_cfg: FeatureConfig = FeatureConfig(),
    model_cfg: ModelConfig = ModelConfig(),
    augment_cfg: AugmentConfig = AugmentConfig(),
    cfg: TrainConfig = TrainConfig(),
    card: dict | None = None,
    resume: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Split ``tracks`` by track, load their audio, and train (see :func:`train_encoder`).

    Decoded waveforms are cached in ``cache_dir/wave-<rate>/``. The split is
    written beside the model as ``<out stem>.split.json`` so benchmarks can
    evaluate on tracks the model never saw.
    """
    train, val = split_tracks(tracks, cfg.val_fraction, cfg.seed)
    if not train or not val:
        raise ValueError(
            f"need tracks on both sides of the split: {len(train)} train, {len(val)} validation "
            f"(val_fraction={cfg.val_fraction}); ingest more tracks"
        )
    log(f"{len(train)} training tracks, {len(val)} validation tracks")
    cache = cache_dir / f"wave-{features_cfg.sample_rate}"
    train_set = load_audio_set(train, features_cfg, cache, progress=progress)
    val_set = load_audio_set(val, features_cfg, cache, progress=progress)
    bank = load_noise_bank(noise_paths, features_cfg.sample_rate) if noise_paths else None
    out.parent.mkdir(parents=True, exist_ok=True)
    write_split(out.with_name(out.stem + ".split.json"), train, val)
    card = dict(card or {})
    if bank is not None:
        card.setdefault("noise_seconds", round(bank.numel() / features_cfg.sample_rate))
    return train_encoder(
        train_set, val_set, out, features_cfg, model_cfg, augment_cfg, cfg, card,
        resume=resume, noise_bank=bank, progress=progress, log=log,
    )


def catalogue_tracks(home: "str | Path | None" = None) -> list[TrackRef]:
    """The ok tracks of a data home's catalogue as :class:`TrackRef` s."""
    from audiosim.store.catalog import Catalog
    from audiosim.store.home import DataHome

    h = DataHome.resolve(home)
    with Catalog(h.catalog_path, create=False) as cat:
        return [
            TrackRef(t.path, t.content_hash, t.title or Path(t.path).stem)
            for t in cat.iter_tracks(status="ok")
            if t.content_hash
        ]
