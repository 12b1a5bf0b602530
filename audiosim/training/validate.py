"""Validation of the fingerprint encoder on held-out tracks.

:func:`build_validation` fixes, for a seed, every segment of the held-out
tracks (never seen in training) at the index hop, and degraded queries at
random moments under several conditions (clean, noise
at 0 to 20 dB SNR, and 1 s and 5 s clips with the training degradations;
with a speech bank, also speech babble and a phone in a talking room).
:func:`validate` then asks, for a model, whether the nearest segment is the
right track at the right time, and whether the clips are identified by
offset-consistent voting, as the matcher does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audiosim.config import AugmentConfig, FeatureConfig
from audiosim.fingerprint.model import Encoder
from audiosim.match.voting import vote
from audiosim.signal import features
from audiosim.training.data import AudioSet, Batcher


@dataclass
class ValidationSet:
    """Fixed, seeded queries against every segment of the validation tracks."""

    index_emb_tracks: np.ndarray
    index_times: np.ndarray
    index_segments: torch.Tensor
    queries: dict[str, tuple[torch.Tensor, np.ndarray, np.ndarray]]
    """Condition name -> (log-mel windows, track index, start time in seconds)."""


def build_validation(
    data: AudioSet,
    features_cfg: FeatureConfig,
    augment_cfg: AugmentConfig,
    n_queries: int = 400,
    index_hop_seconds: float = 0.5,
    seed: int = 1234,
    speech_bank: torch.Tensor | None = None,
) -> ValidationSet:
    """Index segments of every validation track and fixed degraded queries.

    With a ``speech_bank`` (voices not trained on), the
    :data:`BABBLE_CONDITIONS` are added.
    """
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
    if speech_bank is not None:
        for name, (seconds, cfg) in BABBLE_CONDITIONS.items():
            clip_seconds = f.segment_samples / f.sample_rate if seconds == 1 else float(seconds)
            _, wav, tr, t = Batcher(data, f, cfg, speech_bank=speech_bank).waves(n_queries, clip_seconds, g)
            with torch.inference_mode():
                queries[name] = (features.log_mel(wav, f).half(), tr, t)
    return ValidationSet(np.concatenate(trk), np.concatenate(tms), torch.cat(segs), queries)


_TALK_ONLY = dict(p_noise=1.0, p_babble=1.0, p_reverb=0.0, p_eq=0.0, p_speed=0.0, p_codec=0.0, p_chain=0.0,
                  max_shift_seconds=0.0)
BABBLE_CONDITIONS: dict[str, tuple[int, AugmentConfig]] = {
    "babble-1s": (1, AugmentConfig(**_TALK_ONLY, babble_snr_db=(0.0, 5.0))),
    "babble-5s": (5, AugmentConfig(**_TALK_ONLY, babble_snr_db=(0.0, 5.0))),
    "chain-5s": (5, AugmentConfig(**{**_TALK_ONLY, "p_reverb": 1.0, "p_eq": 1.0, "p_chain": 1.0},
                                  p_phone=1.0, rt60=(0.3, 0.8), babble_snr_db=(5.0, 5.0))),
}
"""Validation conditions with speech from a validation speech bank
(``build_validation(..., speech_bank=...)``): seconds and degradations.
``babble-*``: several talkers at 0 to 5 dB SNR, nothing else; ``chain-5s``:
a phone held up in a talking room (reverb, then the phone band, then
babble at 5 dB)."""

SCORE_KEYS = ("mixed-1s", "mixed-5s", "babble-5s", "chain-5s")
"""Validation hit rates whose mean is a model's score (those present: a
validation set without a speech bank has no babble conditions)."""


def validation_score(metrics: dict[str, float] | None) -> float | None:
    """Mean of the :data:`SCORE_KEYS` hit rates present in ``metrics``
    (None without the two ``mixed`` ones)."""
    if not metrics or any(k not in metrics for k in SCORE_KEYS[:2]):
        return None
    have = [metrics[k] for k in SCORE_KEYS if k in metrics]
    return float(sum(have) / len(have))


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
