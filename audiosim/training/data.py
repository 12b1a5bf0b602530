"""What the encoder trains on: tracks, their audio, and batches of segment pairs.

A training run starts from :class:`TrackRef` s (from files, :func:`track_refs`,
or from a data home's catalogue, :func:`catalogue_track_refs`), splits them by
track (:func:`split_tracks`, recorded with :func:`write_split` and read back
with :func:`read_split`) and decodes
each side once into an :class:`AudioSet`: the clean 8 kHz waveforms
concatenated into one tensor, an aligned lossy-codec copy, and each track's
audible blocks. Decoded waveforms are cached by content hash, so a rerun
decodes nothing.

:class:`Batcher` draws the training batches: ``n`` random audible moments
(:func:`sample_moments`); the anchor is the clean segment, the positive the
same moment read at a slightly different speed and position, possibly
through the codec copy, then reverberated, mixed with noise (environmental
recordings or speech babble, :func:`load_noise_bank`, or other music),
equalised and scaled.
:func:`negative_mask` says which items of a batch may serve as negatives.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from audiosim.config import AugmentConfig, DecodeConfig, FeatureConfig
from audiosim.signal import audio, augment, features
from audiosim.store.atomic import atomic_save_npy, atomic_write_bytes
from audiosim.store.catalog import Catalog
from audiosim.store.home import DataHome

CODECS = ("mp3", "opus", "vorbis")
"""Lossy codecs of the aligned copies; a track's codec follows from its hash."""


# --------------------------------------------------------------------------
# Tracks and the split
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackRef:
    """A track to train or validate on."""

    path: str
    content_hash: str
    name: str = ""


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
    # Packaged music often has deep, generic paths (.../music/song.ogg): keep two parent folders.
    return "/".join(p.parts[-3:])


def catalogue_track_refs(home: str | Path | DataHome | None = None) -> list[TrackRef]:
    """The ok tracks of a data home's catalogue as :class:`TrackRef` s.

    Raises
    ------
    FileNotFoundError
        When the data home has no catalogue yet.
    """
    h = DataHome.resolve(home)
    with Catalog(h.catalog_path, create=False) as cat:
        return [
            TrackRef(t.path, t.content_hash, t.title or Path(t.path).stem)
            for t in cat.iter_tracks(status="ok")
            if t.content_hash
        ]


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


def write_split(
    path: Path, train: Sequence[TrackRef], val: Sequence[TrackRef], held_out: Sequence[TrackRef] = ()
) -> None:
    """Record which tracks were trained on, which validated on, and which
    were left out altogether (names and hashes)."""
    doc = {
        "train": [{"name": t.name, "content_hash": t.content_hash} for t in train],
        "validation": [{"name": t.name, "content_hash": t.content_hash} for t in val],
    }
    if held_out:
        doc["held_out"] = [{"name": t.name, "content_hash": t.content_hash} for t in held_out]
    atomic_write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode())


def read_split(path: str | Path) -> tuple[set[str], set[str]]:
    """Content hashes of the ``train`` and ``validation`` sides of a split file
    written by :func:`write_split`."""
    doc = json.loads(Path(path).read_text())
    return {t["content_hash"] for t in doc["train"]}, {t["content_hash"] for t in doc["validation"]}


def split_by_file(refs: Sequence[TrackRef], split_path: str | Path) -> tuple[list[TrackRef], list[TrackRef], list[TrackRef]]:
    """(training, held-out, unknown) tracks according to a split file.

    Other models (the song-similarity encoder, benchmarks) use the
    fingerprint model's split so that its held-out tracks stay unseen.
    """
    train, held = read_split(split_path)
    return ([r for r in refs if r.content_hash in train], [r for r in refs if r.content_hash in held],
            [r for r in refs if r.content_hash not in train | held])


# --------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------


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


def _cached_wave(path: Path, make: Callable[[], np.ndarray]) -> np.ndarray:
    """The waveform stored at ``path`` (float16 ``.npy``), made and stored on first use."""
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

    The cache holds ``<content hash>.npy`` (clean) and
    ``<content hash>.<codec>.npy`` (codec copy) at ``config.sample_rate``.
    Tracks that fail to decode are skipped with a message naming the file.
    """
    sr = config.sample_rate
    clean, coded, names, lengths, audible = [], [], [], [], []
    for t in tqdm(tracks, desc="loading audio", unit="track", disable=not progress):
        try:
            x = _cached_wave(cache_dir / f"{t.content_hash}.npy", lambda: audio.load(t.path, sr, decode))
        except audio.AudioError as e:
            tqdm.write(f"skipped: {e}")
            continue
        codec = CODECS[int(t.content_hash[:8], 16) % len(CODECS)]
        y = _cached_wave(cache_dir / f"{t.content_hash}.{codec}.npy", lambda: augment.lossy_copy(x, sr, codec))
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


def load_noise_bank(
    paths: Sequence[str | Path], sample_rate: int, max_seconds: float | None = 1800.0
) -> torch.Tensor:
    """Concatenate recordings (each scaled to unit RMS) for use as background
    noise: environmental sounds, or speech for babble. Unreadable files are
    skipped. Files are read in order until ``max_seconds`` (None: all of
    them), so a capped bank of several voices holds the first ones only."""
    parts, total = [], 0
    for p in paths:
        try:
            x = audio.load(p, sample_rate, DecodeConfig(min_seconds=0.2))
        except audio.AudioError:
            continue
        x = x / max(float(np.sqrt((x**2).mean())), 1e-6)
        parts.append(torch.from_numpy(x.astype(np.float32)))
        total += len(x)
        if max_seconds is not None and total > max_seconds * sample_rate:
            break
    return torch.cat(parts) if parts else torch.zeros(0)


def load_speech_bank(paths: Sequence[str | Path], sample_rate: int) -> torch.Tensor:
    """Voices for speech babble: :func:`load_noise_bank` of every file, uncapped
    (a capped bank of several voices would hold the first voices only)."""
    return load_noise_bank(paths, sample_rate, max_seconds=None)


# --------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------


def _context(config: FeatureConfig) -> int:
    """Samples of context read before each positive (they feed the reverb tail)."""
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

    def __init__(
        self,
        data: AudioSet,
        features_cfg: FeatureConfig,
        augment_cfg: AugmentConfig,
        noise_bank: torch.Tensor | None = None,
        speech_bank: torch.Tensor | None = None,
    ):
        self.data = data
        self.f = features_cfg
        self.a = augment_cfg
        self.degrader = augment.Degrader(augment_cfg, features_cfg.sample_rate, noise_bank, speech_bank)
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
