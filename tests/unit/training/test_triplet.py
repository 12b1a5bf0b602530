"""Triplet loss and in-batch mining on hand-made embeddings."""

import math

import pytest
import torch

from audiosim.training.triplet import mine_triplets, pairwise_distance, triplet_loss


def unit(*xs):
    t = torch.tensor(xs, dtype=torch.float32)
    return t / t.norm(dim=-1, keepdim=True)


def test_loss_is_zero_when_margin_is_met():
    assert float(triplet_loss(torch.tensor(0.1), torch.tensor(0.9), 0.4)) == 0.0


def test_loss_value_when_margin_is_not_met():
    assert float(triplet_loss(torch.tensor(0.5), torch.tensor(0.6), 0.4)) == pytest.approx(0.3)


def test_distances():
    a = unit([1.0, 0.0])
    b = unit([0.0, 1.0], [1.0, 0.0])
    d = pairwise_distance(a, b, "squared_euclidean")
    assert d.tolist()[0] == pytest.approx([2.0, 0.0], abs=1e-6)
    c = pairwise_distance(a, b, "cosine")
    assert c.tolist()[0] == pytest.approx([1.0, 0.0], abs=1e-6)
    with pytest.raises(ValueError):
        pairwise_distance(a, b, "manhattan")


def constructed_batch():
    """Anchor 0 has a positive at angle 20 deg, and other items at 10, 30, 90 deg."""
    def at(deg):
        r = math.radians(deg)
        return [math.cos(r), math.sin(r)]

    anchors = unit(at(0), at(10), at(200), at(300))
    positives = unit(at(20), at(11), at(201), at(301))
    return anchors, positives


def test_batch_hard_picks_the_closest_negative():
    a, p = constructed_batch()
    mined = mine_triplets(a, p, margin=0.4, strategy="batch_hard")
    # anchor 0's closest negative is anchor 1 at 10 degrees
    d_close = float(pairwise_distance(a[:1], a[1:2])[0, 0])
    d_ap0 = float(pairwise_distance(a[:1], p[:1])[0, 0])
    assert mined.loss.item() > 0
    # reproduce the expected mean loss by hand
    expected = []
    for i in range(4):
        d_ap = float(pairwise_distance(a[i : i + 1], p[i : i + 1])[0, 0])
        cands = torch.cat([pairwise_distance(a[i : i + 1], p), pairwise_distance(a[i : i + 1], a)], 1)[0]
        mask = torch.ones(8, dtype=torch.bool)
        mask[i] = mask[4 + i] = False
        expected.append(max(0.0, d_ap - float(cands[mask].min()) + 0.4))
    assert mined.loss.item() == pytest.approx(sum(expected) / 4, rel=1e-5)
    assert d_close < d_ap0  # the hardest negative is closer than the positive


def test_semi_hard_choice_on_a_line():
    # 1-D embeddings (not normalised) make the choice easy to read:
    # anchor at 0, positive at 0.5 (d=0.25); negatives at 0.4 (0.16, harder than positive),
    # 0.6 (0.36, semi-hard), 0.7 (0.49, semi-hard but farther), 2.0 (4.0, easy).
    anchors = torch.tensor([[0.0], [0.4], [0.6], [0.7], [2.0]])
    positives = torch.tensor([[0.5], [0.4], [0.6], [0.7], [2.0]])
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[0, 1:] = True  # only anchor 0 has negatives; others are ignored
    mined = mine_triplets(anchors[:1], positives[:1], 0.4, "semi_hard",
                          negative_mask=torch.zeros(1, 1, dtype=torch.bool))
    # no negatives at all -> zero loss, no crash
    assert mined.loss.item() == 0.0
    full = mine_triplets(anchors, positives, 0.4, "semi_hard", negative_mask=mask)
    assert full.d_an == pytest.approx(0.36, abs=1e-6)  # closest semi-hard negative (0.6)
    hard = mine_triplets(anchors, positives, 0.4, "batch_hard", negative_mask=mask)
    assert hard.d_an == pytest.approx(0.16, abs=1e-6)  # closest negative overall (0.4)


def test_active_fraction_counts_violating_triplets():
    anchors = torch.tensor([[0.0], [10.0]])
    positives = torch.tensor([[0.1], [10.1]])
    easy = mine_triplets(anchors, positives, 0.4, "batch_all")
    assert easy.active == 0.0 and easy.loss.item() == 0.0
    hard = mine_triplets(torch.tensor([[0.0], [0.2]]), torch.tensor([[0.5], [0.7]]), 0.4, "batch_all")
    assert 0.0 < hard.active <= 1.0 and hard.loss.item() > 0


def test_unknown_strategy_is_refused():
    a, p = constructed_batch()
    with pytest.raises(ValueError, match="mining"):
        mine_triplets(a, p, 0.4, strategy="hardest")
