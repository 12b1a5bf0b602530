"""Train the song-similarity encoder with song-level triplets.

The fingerprint encoder learns "same moment of the same recording"; this one
learns "same song". Each step draws ``batch_size`` distinct songs and two
3-second clips of each at random audible positions (at least one clip
length apart when the song allows), both lightly degraded
(:data:`~audiosim.config.SIMILARITY_AUGMENT`: a little noise, reverb, EQ,
speed and codec). The two clips of a song are anchor and positive; every
clip of another song in the batch is a candidate negative
(:func:`~audiosim.training.triplet.mine_triplets`, semi-hard then batch-hard, cosine
distance). With group labels (``train_groups``, e.g. each training song's
album or soundtrack), songs of the anchor's group are not negatives either;
positives stay song-level. A song's vector is then the normalised mean of
its clip embeddings (:mod:`audiosim.similarity.model`).

Data and loop come from :mod:`audiosim.training`: the cached waveforms
(:func:`~audiosim.training.data.load_audio_set`) and
:func:`~audiosim.training.loop.fit_triplets` (steps, warm-up plus cosine
learning rate, mining schedule, best and running checkpoints, resume); this
module only supplies the pair sampler, the selection metrics and the
selection score (:class:`~audiosim.training.loop.TripletTask`).

A corpus-specific trainer that uses it is ``scripts/train_similarity.py``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from audiosim.config import (
    SIMILARITY_AUGMENT,
    SIMILARITY_MODEL,
    SIMILARITY_TRAIN,
    AugmentConfig,
    FeatureConfig,
    ModelConfig,
    SimilarityConfig,
    TrainConfig,
    similarity_features,
)
from audiosim.fingerprint.model import Encoder, file_digest, load_checkpoint
from audiosim.signal import augment, features
from audiosim.similarity.model import clip_vectors, cosine_matrix, mean_vector
from audiosim.training.data import AudioSet
from audiosim.training.loop import TripletTask, fit_triplets

# --------------------------------------------------------------------------
# Song-level pairs
# --------------------------------------------------------------------------


class SongPairs:
    """Draws two clips of each of ``n`` distinct songs, lightly degraded.

    Parameters
    ----------
    data : AudioSet
        Training songs (clean waveforms, codec copies, audible blocks).
    features_cfg : FeatureConfig
        The similarity encoder's (its ``segment_frames`` set the clip length).
    augment_cfg : AugmentConfig
    """

    def __init__(self, data: AudioSet, features_cfg: FeatureConfig, augment_cfg: AugmentConfig):
        if data.sample_rate != features_cfg.sample_rate:
            raise ValueError(f"songs are at {data.sample_rate} Hz but the encoder's features want "
                             f"{features_cfg.sample_rate} Hz (load them with its FeatureConfig)")
        self.data, self.f, self.a = data, features_cfg, augment_cfg
        self.degrader = augment.Degrader(augment_cfg, features_cfg.sample_rate)
        self.songs = np.array([i for i, a in enumerate(data.audible) if len(a)], dtype=np.int64)
        if self.songs.size < 2:
            raise ValueError(f"need at least 2 songs with audible audio, have {self.songs.size}")
        self.length = features_cfg.segment_samples
        self.ctx = features_cfg.sample_rate // 4  # feeds the reverb tail

    def positions(self, n: int, g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Song index ``(n,)`` and two start samples ``(2, n)`` per song."""
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        tr = rng.choice(self.songs, size=n, replace=n > self.songs.size)
        before = int(self.ctx * self.a.speed[1]) + 2
        after = int(self.length * self.a.speed[1]) + 2
        pos = np.empty((2, n), dtype=np.int64)
        for j, t in enumerate(tr):
            cand = self.data.audible[t]
            cand = cand[(cand >= before) & (cand <= self.data.lengths[t] - after)]
            if cand.size == 0:
                pos[:, j] = min(before, max(0, self.data.lengths[t] - after))
                continue
            p1 = rng.choice(cand)
            far = cand[np.abs(cand - p1) >= self.length]
            pos[0, j], pos[1, j] = p1, rng.choice(far if far.size else cand)
        pos += rng.integers(0, self.data.sample_rate // 4, size=pos.shape)  # off the block grid
        return tr, pos

    def __call__(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Anchor and positive log-mel clips ``(n, n_mels, segment_frames)`` and song indices."""
        tr, pos = self.positions(n, g)
        tr2 = np.concatenate([tr, tr])
        start = torch.from_numpy(self.data.starts[tr2] + pos.reshape(-1)).double()
        m = 2 * n
        rates = augment.speed_factors(m, self.a, g)
        start = start - rates.double() * self.ctx
        use_codec = (torch.rand(m, generator=g) < self.a.p_codec)[:, None]
        raw = torch.where(
            use_codec,
            augment.gather_resampled(self.data.coded, start, rates, self.ctx + self.length),
            augment.gather_resampled(self.data.clean, start, rates, self.ctx + self.length),
        )
        wav = self.degrader(raw, self.length, g)
        lm = features.log_mel(wav, self.f)
        return lm[:n], lm[n:], tr


# --------------------------------------------------------------------------
# Validation: do two halves of a song find each other?
# --------------------------------------------------------------------------


@torch.inference_mode()
def song_clip_vectors(data: AudioSet, model: Encoder, cfg: SimilarityConfig = SimilarityConfig()) -> list[np.ndarray]:
    """Clip embeddings of every song in ``data`` (as :func:`~audiosim.similarity.model.clip_vectors`)."""
    out = []
    for i in range(len(data.names)):
        x = data.clean[data.starts[i] : data.starts[i] + data.lengths[i]]
        out.append(clip_vectors(features.log_mel(x, model.features), model, cfg))
    return out


def retrieval_metrics(clips: Sequence[np.ndarray], labels: Sequence[str] | None = None, k: int = 5) -> dict[str, float]:
    """Song-level retrieval scores from per-song clip embeddings.

    ``half_top1``: each song's first-half vector finds its own second half
    (and vice versa) as the nearest among all second halves.
    ``clip_top1``: a single clip finds its song's other-half vector first.
    ``soundtrack_p@k`` (with ``labels``): share of each song's ``k`` nearest
    other songs with the same label.
    """
    halves = [(c[: max(1, len(c) // 2)], c[len(c) // 2 :] if len(c) > 1 else c) for c in clips]
    a = np.stack([mean_vector(h[0]) for h in halves])
    b = np.stack([mean_vector(h[1]) for h in halves])
    sim = cosine_matrix(a, b)
    n = len(clips)
    half = (np.mean(sim.argmax(1) == np.arange(n)) + np.mean(sim.argmax(0) == np.arange(n))) / 2
    hits, total = 0, 0
    for i, (h1, h2) in enumerate(halves):
        for mine, other in ((h1, b), (h2, a)):
            best = cosine_matrix(mine, other).argmax(1)
            hits += int((best == i).sum())
            total += len(mine)
    out = {"half_top1": float(half), "clip_top1": hits / max(total, 1)}
    if labels is not None:
        out[f"soundtrack_p@{k}"] = precision_at_k(np.stack([mean_vector(c) for c in clips]), labels, k)
    return out


def precision_at_k(vectors: np.ndarray, labels: Sequence[str], k: int = 5) -> float:
    """Mean share of same-label songs among each song's ``k`` nearest others (cosine)."""
    lab = np.asarray(labels)
    sim = cosine_matrix(vectors)
    np.fill_diagonal(sim, -np.inf)
    k = min(k, len(lab) - 1)
    if k < 1:
        return float("nan")
    top = np.argsort(-sim, axis=1)[:, :k]
    return float(np.mean(lab[top] == lab[:, None]))


# --------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------


def _init_from(model: Encoder, path: str | Path, log: Callable[[str], None]) -> None:
    """Copy every tensor of a checkpoint whose name and shape match (e.g. the
    fingerprint encoder's convolution blocks)."""
    state = load_checkpoint(path)["state_dict"]
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    log(f"initialised {len(take)} of {len(own)} tensors from {path}")


def song_negatives(songs: np.ndarray, groups: np.ndarray | None = None) -> torch.Tensor:
    """``mask[i, j]``: clip ``j`` may be a negative for anchor ``i``.

    Parameters
    ----------
    songs : np.ndarray
        Song index of every item in the batch.
    groups : np.ndarray, optional
        A group label per song index (e.g. its soundtrack); items of the same
        group as the anchor are then not negatives either.
    """
    allowed = songs[:, None] != songs[None, :]
    if groups is not None:
        g = np.asarray(groups)[songs]
        allowed &= g[:, None] != g[None, :]
    return torch.from_numpy(allowed)


def train_similarity(
    train_data: AudioSet,
    select_data: AudioSet,
    out: Path,
    features_cfg: FeatureConfig | None = None,
    model_cfg: ModelConfig = SIMILARITY_MODEL,
    augment_cfg: AugmentConfig = SIMILARITY_AUGMENT,
    cfg: TrainConfig = SIMILARITY_TRAIN,
    sim_cfg: SimilarityConfig = SimilarityConfig(),
    card: dict | None = None,
    select_labels: Sequence[str] | None = None,
    train_groups: Sequence[str] | None = None,
    init: str | Path | None = None,
    max_minutes: float | None = None,
    resume: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train with song-level triplets; keep the best checkpoint at ``out``.

    The loop is :func:`audiosim.training.loop.fit_triplets` (running checkpoint
    ``<out>.last.pt``, resumed with ``resume``). Every ``cfg.validate_every``
    steps the songs of ``select_data`` (never trained on) are embedded and
    scored with :func:`retrieval_metrics`; the checkpoint with the best mean
    of ``half_top1`` and ``clip_top1`` is saved at ``out`` with a card (its
    metrics under ``selection``).

    ``train_groups`` (a label per training song, e.g. its soundtrack) stops
    songs of the anchor's group from serving as negatives. ``init`` copies
    matching weights from another checkpoint first (the fingerprint
    encoder's convolutions are a good start). ``max_minutes`` may cut the
    number of steps to fit (see :func:`~audiosim.training.loop.fit_triplets`).

    Returns
    -------
    dict
        The card of the saved model.
    """
    f = features_cfg or similarity_features()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = Encoder(model_cfg, f)
    pairs = SongPairs(train_data, f, augment_cfg)
    groups = None if train_groups is None else np.asarray(train_groups)
    base = dict(card or {})
    base.update(
        kind="song-similarity encoder",
        train_config=cfg.to_dict(),
        augment_config=augment_cfg.to_dict(),
        similarity_config=sim_cfg.to_dict(),
        negatives="clips of other songs" + ("" if groups is None else " of another soundtrack (training labels)"),
        init=dict(path=str(init), digest=file_digest(init)) if init else None,
        train_tracks=len(train_data.names),
        train_hours=round(train_data.hours, 2),
        select_tracks=len(select_data.names),
        select_hours=round(select_data.hours, 2),
        hardware=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
    )

    def sample(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        anchors, positives, songs = pairs(n, g)
        return anchors, positives, song_negatives(songs, groups)

    def select(m: Encoder) -> dict[str, float]:
        return retrieval_metrics(song_clip_vectors(select_data, m, sim_cfg), select_labels)

    task = TripletTask(sample, select, lambda v: (v["half_top1"] + v["clip_top1"]) / 2, record_as="selection")
    return fit_triplets(model, task, out, cfg, g, base, resume=resume,
                        init=(lambda m: _init_from(m, init, log)) if init else None,
                        max_minutes=max_minutes, progress=progress, log=log)
