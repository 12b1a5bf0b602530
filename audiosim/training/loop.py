"""Train the fingerprint encoder with triplet loss: the loop, top to bottom.

:func:`train_from_tracks` is the entry point: it splits the tracks by track,
loads their audio (:mod:`audiosim.training.data`) and calls
:func:`train_encoder`, which builds the model, the batch sampler
(:class:`~audiosim.training.data.Batcher` plus
:func:`~audiosim.training.data.negative_mask`) and the validation set
(:mod:`audiosim.training.validate`) and hands them to :func:`fit_triplets`.

:func:`fit_triplets` is the loop itself, given a :class:`TripletTask`: each
step draws a batch, embeds anchors and positives, mines triplets in the
batch (:func:`~audiosim.training.triplet.mine_triplets`) and takes an AdamW
step on a warm-up plus cosine schedule (:func:`lr_at`); every
``validate_every`` steps it validates and keeps the best checkpoint, every
``checkpoint_every`` steps it writes a running checkpoint to resume from.
(The song-similarity head has its own in-memory loop,
:func:`audiosim.similarity.song_training.fit_head`, and shares the
schedules and the mining.)
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from audiosim.config import AugmentConfig, FeatureConfig, ModelConfig, TrainConfig
from audiosim.fingerprint.model import (
    Encoder,
    load_checkpoint,
    load_encoder,
    save_encoder,
)
from audiosim.signal import features
from audiosim.training.data import (
    AudioSet,
    Batcher,
    TrackRef,
    load_audio_set,
    load_noise_bank,
    load_speech_bank,
    negative_mask,
    split_tracks,
    write_split,
)
from audiosim.training.triplet import loss_card, mine_triplets
from audiosim.training.validate import build_validation, validate, validation_score

# --------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------


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


def _replan(cfg: TrainConfig, step: int, seconds: float, max_minutes: float) -> TrainConfig:
    """``cfg`` with fewer steps if the pace so far (``seconds`` for ``step``
    steps) would overrun ``max_minutes``; never more steps."""
    fit = step + int((max_minutes * 60 - seconds) / (seconds / step))
    return replace(cfg, steps=max(fit, step + 1)) if fit < cfg.steps else cfg


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------


@dataclass
class TripletTask:
    """What a triplet-training run draws, validates and keeps by."""

    sample: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    """``(n, g) -> (anchors, positives, allowed)``: log-mel batches ``(n, n_mels,
    frames)`` and the ``(n, n)`` mask of items that may be negatives for each anchor."""
    validate: Callable[[Encoder], dict[str, float]]
    """Metrics of the model (called in eval mode)."""
    score: Callable[[dict[str, float]], float]
    """Selection score of the metrics; the checkpoint with the highest is kept."""
    record_as: str = "validation"
    """Card key of the kept checkpoint's metrics."""


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
    with the same ``cfg`` continues from it. That file holds plain data only
    (the optimiser's state dict, the generator and torch RNG states as byte
    tensors, step, history, best score, elapsed seconds), so it loads with
    ``weights_only=True`` like any checkpoint
    (:func:`~audiosim.fingerprint.model.load_checkpoint`); a resume file
    holding anything else is refused, never unpickled. ``init`` prepares a fresh
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


# --------------------------------------------------------------------------
# The fingerprint encoder
# --------------------------------------------------------------------------


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
    speech_bank: torch.Tensor | None = None,
    val_speech_bank: torch.Tensor | None = None,
) -> dict:
    """Train, validate, checkpoint; keep the best model at ``out``.

    ``speech_bank`` gives the babble mixed into training positives and
    ``val_speech_bank`` (other voices) that of the validation's babble
    conditions (:data:`~audiosim.training.validate.BABBLE_CONDITIONS`).

    A running checkpoint ``<out>.last.pt`` (model, optimiser, step, RNG,
    history) is written every ``cfg.checkpoint_every`` steps; with ``resume``
    a rerun continues from it. The model with the best validation score
    (:func:`~audiosim.training.validate.validation_score`: the mean of the
    ``mixed`` and, when validated with speech, babble hit rates) is saved
    at ``out`` with a card.

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
    batcher = Batcher(train_data, features_cfg, augment_cfg, noise_bank, speech_bank)
    log("building validation set ...")
    val = build_validation(val_data, features_cfg, augment_cfg, index_hop_seconds=0.5, speech_bank=val_speech_bank)
    base_card = dict(card or {})
    base_card.update(
        loss=loss_card(cfg.distance, cfg.margin),
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

    task = TripletTask(sample, lambda m: validate(m, val), validation_score)
    return fit_triplets(model, task, out, cfg, g, base_card, resume=resume,
                        init=start_from if cfg.init_from else None, progress=progress, log=log)


def train_from_tracks(
    tracks: Sequence[TrackRef],
    out: Path,
    cache_dir: Path,
    noise_paths: Sequence[str | Path] = (),
    speech_paths: Sequence[str | Path] = (),
    val_speech_paths: Sequence[str | Path] = (),
    split: tuple[Sequence[TrackRef], Sequence[TrackRef]] | None = None,
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
    evaluate on tracks the model never saw; the tracks left out of an
    explicit ``split`` (training, validation) are recorded as ``held_out``.
    ``speech_paths`` are voices for babble in training, ``val_speech_paths``
    other voices for the validation's babble conditions.
    """
    if split is None:
        train, val = split_tracks(tracks, cfg.val_fraction, cfg.seed)
    else:
        train, val = list(split[0]), list(split[1])
    used = {t.content_hash for t in (*train, *val)}
    held_out = [t for t in tracks if t.content_hash not in used]
    if not train or not val:
        how = "in the split file given" if split is not None else f"(val_fraction={cfg.val_fraction}); ingest more tracks"
        raise ValueError(f"need tracks on both sides of the split: {len(train)} train, {len(val)} validation {how}")
    log(f"{len(train)} training tracks, {len(val)} validation tracks")
    cache = cache_dir / f"wave-{features_cfg.sample_rate}"
    train_set = load_audio_set(train, features_cfg, cache, progress=progress)
    val_set = load_audio_set(val, features_cfg, cache, progress=progress)
    sr = features_cfg.sample_rate
    bank = load_noise_bank(noise_paths, sr) if noise_paths else None
    speech = load_speech_bank(speech_paths, sr) if speech_paths else None
    val_speech = load_speech_bank(val_speech_paths, sr) if val_speech_paths else None
    out.parent.mkdir(parents=True, exist_ok=True)
    write_split(out.with_name(out.stem + ".split.json"), train, val, held_out)
    card = dict(card or {})
    for key, b in (("noise_seconds", bank), ("speech_seconds", speech), ("validation_speech_seconds", val_speech)):
        if b is not None:
            card.setdefault(key, round(b.numel() / sr))
    return train_encoder(
        train_set, val_set, out, features_cfg, model_cfg, augment_cfg, cfg, card,
        resume=resume, noise_bank=bank, progress=progress, log=log,
        speech_bank=speech, val_speech_bank=val_speech,
    )
