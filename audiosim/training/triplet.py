"""Triplet loss ``max(0, d(a, p) - d(a, n) + margin)`` with in-batch mining.

A batch holds ``B`` anchors and their ``B`` positives. Every other anchor and
positive in the batch is a candidate negative unless ``negative_mask`` says
otherwise (for instance a segment of the same track a moment away).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

STRATEGIES = ("batch_hard", "semi_hard", "batch_all")
DISTANCES = ("squared_euclidean", "cosine")


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, distance: str = "squared_euclidean") -> torch.Tensor:
    """Distances between every row of ``a`` (n, d) and of ``b`` (m, d): (n, m).

    ``squared_euclidean`` is ``|a - b|^2``; ``cosine`` is ``1 - cos(a, b)``.
    """
    if distance == "squared_euclidean":
        d = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return d.clamp_min(0)
    if distance == "cosine":
        a = torch.nn.functional.normalize(a, dim=1)
        b = torch.nn.functional.normalize(b, dim=1)
        return 1 - a @ b.T
    raise ValueError(f"unknown distance {distance!r}; choose from {DISTANCES}")


def triplet_loss(d_ap: torch.Tensor, d_an: torch.Tensor, margin: float) -> torch.Tensor:
    """Element-wise ``max(0, d_ap - d_an + margin)``."""
    return torch.relu(d_ap - d_an + margin)


def loss_card(distance: str, margin: float) -> dict:
    """What a model card says of this loss: its name, formula, distance and margin."""
    return {"name": "triplet", "formula": "max(0, d(a, p) - d(a, n) + margin)", "distance": distance,
            "margin": margin}


@dataclass
class MinedLoss:
    """The mined loss and what it saw."""

    loss: torch.Tensor
    """Mean loss over the selected triplets (scalar, differentiable)."""
    active: float
    """Fraction of all valid (anchor, positive, negative) triplets with a non-zero loss."""
    d_ap: float
    """Mean anchor-positive distance."""
    d_an: float
    """Mean distance from each anchor to its selected negative."""


def mine_triplets(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    margin: float,
    strategy: str = "batch_hard",
    distance: str = "squared_euclidean",
    negative_mask: torch.Tensor | None = None,
) -> MinedLoss:
    """Select negatives inside the batch and return the triplet loss.

    Parameters
    ----------
    anchors, positives : Tensor, shape (B, d)
        Row ``i`` of each is the same moment (clean and degraded).
    margin : float
    strategy : {'batch_hard', 'semi_hard', 'batch_all'}
        ``batch_hard``: the closest negative of each anchor.
        ``semi_hard``: the closest negative farther than the positive but
        within the margin (FaceNet); where there is none, the farthest
        negative.
        ``batch_all``: the mean over every valid triplet with a non-zero loss.
    distance : {'squared_euclidean', 'cosine'}
    negative_mask : Tensor of bool, shape (B, B), optional
        ``negative_mask[i, j]`` is True when item ``j`` may serve as a
        negative for anchor ``i``; defaults to every ``j != i``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mining strategy {strategy!r}; choose from {STRATEGIES}")
    b = anchors.shape[0]
    if negative_mask is None:
        negative_mask = ~torch.eye(b, dtype=torch.bool, device=anchors.device)
    d_ap = pairwise_distance(anchors, positives, distance).diagonal()
    d_an = torch.cat(
        [pairwise_distance(anchors, positives, distance), pairwise_distance(anchors, anchors, distance)], dim=1
    )
    valid = torch.cat([negative_mask, negative_mask], dim=1)
    inf = torch.tensor(float("inf"), device=anchors.device)

    all_losses = triplet_loss(d_ap[:, None], d_an, margin)
    n_valid = valid.sum().clamp_min(1)
    active = float(((all_losses > 0) & valid).sum() / n_valid)

    if strategy == "batch_all":
        chosen = all_losses[valid & (all_losses > 0)]
        loss = chosen.mean() if chosen.numel() else all_losses.sum() * 0
        neg = torch.where(valid, d_an, inf).min(dim=1).values
        return MinedLoss(loss, active, float(d_ap.detach().mean()), float(neg[torch.isfinite(neg)].detach().mean()))

    if strategy == "batch_hard":
        neg = torch.where(valid, d_an, inf).min(dim=1).values
    else:
        semi = valid & (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + margin)
        closest_semi = torch.where(semi, d_an, inf).min(dim=1).values
        farthest = torch.where(valid, d_an, -inf).max(dim=1).values
        neg = torch.where(torch.isfinite(closest_semi), closest_semi, farthest)
    has_neg = torch.isfinite(neg)
    losses = triplet_loss(d_ap[has_neg], neg[has_neg], margin)
    loss = losses.mean() if losses.numel() else d_ap.sum() * 0
    d_an_mean = float(neg[has_neg].detach().mean()) if has_neg.any() else float("nan")
    return MinedLoss(loss, active, float(d_ap.detach().mean()), d_an_mean)
