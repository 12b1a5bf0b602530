"""Train a song head with song triplets on frozen musicnn features, and score song vectors by soundtrack.

The head (:class:`SongHead`) is a small projection over the frozen song
features of :mod:`audiosim.similarity.model`: standardise each feature
with the training songs' statistics, one linear layer, L2-normalise. It is
trained with the triplet loss ``max(0, d(a, p) - d(a, n) + margin)``, cosine
distance, over song triplets:

* anchor: one excerpt of a song (its patches' mean feature);
* positive: another excerpt of the same song, or (with probability
  ``HeadConfig.soundtrack_positive``) an excerpt of another song of the
  same soundtrack;
* negatives: every item of the batch from another soundtrack
  (:func:`song_negatives`), mined in the batch
  (:func:`audiosim.training.triplet.mine_triplets`, semi-hard then hard,
  as :func:`audiosim.training.loop.mining_at` schedules it).

A batch holds ``songs_per_soundtrack`` songs of each of several soundtracks,
so that hard negatives are near. The learning rate follows the fingerprint
trainer's warm-up and cosine schedule (:func:`audiosim.training.loop.lr_at`);
every ``validate_every`` steps the head is scored on held-out soundtracks
(mean average precision of same-soundtrack retrieval, :func:`retrieval_scores`)
and the best weights are kept. The loop is :func:`fit_head`, top to bottom;
it runs in memory (a head trains in seconds), so unlike
:func:`audiosim.training.loop.fit_triplets`, whose checkpoints are
fingerprint encoders, it has no resume files.

Whether a head is worth shipping is decided by ``benchmarks/similarity.py``
(leave-soundtrack-out cross-validation against the frozen features).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiosim.config import HeadConfig
from audiosim.similarity.model import cosine_matrix
from audiosim.training.loop import lr_at, mining_at
from audiosim.training.triplet import mine_triplets

# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


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


def retrieval_scores(x: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Precision@k and average precision of each query row, ranking all other rows by cosine.

    Parameters
    ----------
    x : np.ndarray, shape (n, d)
        Song vectors.
    labels : np.ndarray, shape (n,)
        Soundtrack of each song: a neighbour with the query's label is right.
    queries : np.ndarray of int
        Rows scored.

    Returns
    -------
    (np.ndarray, np.ndarray)
        Per query, precision@k and average precision (mean of the precisions
        at the rank of each same-label song).
    """
    labels = np.asarray(labels)
    sim = cosine_matrix(x[queries], x)
    sim[np.arange(len(queries)), queries] = -np.inf
    order = np.argsort(-sim, axis=1, kind="stable")[:, :-1]  # the query itself ranks last
    rel = labels[order] == labels[queries][:, None]
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    ap = (rel * hits / ranks).sum(1) / np.maximum(rel.sum(1), 1)
    return rel[:, :k].mean(1), ap


def song_negatives(songs: np.ndarray, groups: np.ndarray | None = None) -> torch.Tensor:
    """``mask[i, j]``: item ``j`` may be a negative for anchor ``i``.

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


# --------------------------------------------------------------------------
# The head
# --------------------------------------------------------------------------


class SongHead(nn.Module):
    """Standardise, project, L2-normalise: frozen song features to head song vectors.

    Parameters
    ----------
    in_dim : int
        Length of the frozen features (1506 for musicnn's mid-level layer).
    dim : int
        Length of the output vectors.
    """

    def __init__(self, in_dim: int, dim: int = 128):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.proj = nn.Linear(in_dim, dim)

    def fit_scaler(self, x: np.ndarray) -> None:
        """Set the standardisation from training features ``x`` (rows)."""
        x = torch.as_tensor(np.asarray(x, np.float32))
        self.mean.copy_(x.mean(0))
        self.scale.copy_(1 / x.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj((x - self.mean) * self.scale), dim=-1)

    @torch.inference_mode()
    def vectors(self, x: np.ndarray) -> np.ndarray:
        """Head vectors of feature rows (eval mode), float32."""
        was = self.training
        self.eval()
        out = self(torch.as_tensor(np.asarray(x, np.float32))).numpy()
        self.train(was)
        return out


# --------------------------------------------------------------------------
# Training data: excerpts of songs of soundtracks
# --------------------------------------------------------------------------


@dataclass
class SongSet:
    """Excerpt features of songs, and the soundtrack of each song.

    Attributes
    ----------
    excerpts : np.ndarray, shape (n_items, d)
        One row per excerpt (the mean feature of its patches).
    song_of : np.ndarray of int, shape (n_items,)
        The song each excerpt belongs to.
    songs : np.ndarray, shape (n_songs, d)
        The song features (what the head maps to song vectors at run time).
    groups : np.ndarray, shape (n_songs,)
        The soundtrack of each song.
    """

    excerpts: np.ndarray
    song_of: np.ndarray
    songs: np.ndarray
    groups: np.ndarray

    @cached_property
    def by_group(self) -> dict[str, np.ndarray]:
        """The songs of each soundtrack."""
        return {g: np.flatnonzero(self.groups == g) for g in np.unique(self.groups)}

    @cached_property
    def by_song(self) -> list[np.ndarray]:
        """The excerpts of each song."""
        return [np.flatnonzero(self.song_of == s) for s in range(len(self.songs))]

    def subset(self, keep: np.ndarray) -> SongSet:
        """The songs ``keep`` (bool mask or indices over songs), renumbered."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        new = -np.ones(len(self.songs), int)
        new[idx] = np.arange(len(idx))
        rows = new[self.song_of] >= 0
        return SongSet(self.excerpts[rows], new[self.song_of[rows]], self.songs[idx], self.groups[idx])


def sample_batch(data: SongSet, cfg: HeadConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchors, positives and the negatives mask of one batch (see the module docstring)."""
    by_group, by_song = data.by_group, data.by_song
    chosen = rng.choice(list(by_group), min(cfg.soundtracks_per_batch, len(by_group)), replace=False)
    anchors, positives, songs = [], [], []
    for g in chosen:
        members = by_group[g]
        for s in rng.choice(members, min(cfg.songs_per_soundtrack, len(members)), replace=False):
            a = rng.choice(by_song[s])
            others = members[members != s]
            if others.size and (rng.random() < cfg.soundtrack_positive or by_song[s].size < 2):
                p = rng.choice(by_song[rng.choice(others)])
            else:
                p = rng.choice(by_song[s][by_song[s] != a]) if by_song[s].size > 1 else a
            anchors.append(a)
            positives.append(p)
            songs.append(s)
    x = torch.as_tensor(data.excerpts)
    return x[anchors], x[positives], song_negatives(np.array(songs), data.groups)


def split_soundtracks(groups: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Bool mask over songs: those of a random ``fraction`` of the soundtracks (at least one)."""
    names = np.unique(groups)
    rng = np.random.default_rng(seed)
    held = rng.choice(names, max(1, round(fraction * len(names))), replace=False)
    return np.isin(groups, held)


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------


def fit_head(data: SongSet, cfg: HeadConfig = HeadConfig(), log: Callable[[str], None] | None = None) -> tuple[SongHead, dict]:
    """Train a :class:`SongHead` on ``data``; the best step on held-out soundtracks is kept.

    ``cfg.val_fraction`` of the soundtracks are held out (:func:`split_soundtracks`)
    and scored every ``cfg.validate_every`` steps by the mean average
    precision of their songs against all of ``data``'s songs; the weights of
    the best score are returned. The scaler is fitted on the training songs'
    features (what the head is applied to at run time).

    Returns
    -------
    (SongHead, dict)
        The head in eval mode, and its training record (best step and
        score, the validation history, the data's size).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    held = split_soundtracks(data.groups, cfg.val_fraction, cfg.seed)
    train = data.subset(~held)
    val_queries = np.flatnonzero(held)
    tcfg = cfg.train_config()
    head = SongHead(data.songs.shape[1], cfg.dim)
    head.fit_scaler(train.songs)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def val_map() -> float:
        return float(retrieval_scores(head.vectors(data.songs), data.groups, val_queries)[1].mean())

    best, best_step, best_state, history = val_map(), 0, copy.deepcopy(head.state_dict()), []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tcfg, warmup=min(100, cfg.steps // 10))
        anchors, positives, allowed = sample_batch(train, cfg, rng)
        emb = head(torch.cat([anchors, positives]))
        a, p = emb[: len(anchors)], emb[len(anchors):]
        mined = mine_triplets(a, p, cfg.margin, mining_at(step, tcfg), "cosine", allowed)
        opt.zero_grad(set_to_none=True)
        mined.loss.backward()
        opt.step()
        if (step + 1) % cfg.validate_every == 0 or step + 1 == cfg.steps:
            score = val_map()
            history.append({"step": step + 1, "loss": round(float(mined.loss.detach()), 4),
                            "active": round(mined.active, 3), "val_map": round(score, 4)})
            if log:
                log(str(history[-1]))
            if score > best:
                best, best_step, best_state = score, step + 1, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    record = {"best_step": best_step, "val_map": round(best, 4), "history": history,
              "train_songs": len(train.songs), "train_soundtracks": len(np.unique(train.groups)),
              "val_songs": int(held.sum()), "val_soundtracks": len(np.unique(data.groups[held]))}
    return head.eval(), record
