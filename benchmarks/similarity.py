"""Benchmark song similarity: same-soundtrack precision@k and mAP, cross-validated over soundtracks.

Usage::

    python benchmarks/similarity.py --corpus LIST [--limit N] [--k 5] [--folds 5]
                                    [--cache DIR] [--workers 1] [--no-head]
                                    [--head-dim 128] [--margin 0.2] [--steps 1500]
                                    [--soundtrack-positive 0.5]

Each track's label is its soundtrack (:func:`soundtrack`: the game or
package folder it is installed under). For every track, all other tracks
are ranked by cosine similarity; precision@k is the share of the ``k``
nearest from the same soundtrack, average precision (AP) the mean of the
precisions at each same-soundtrack track's rank, and mAP their mean over
tracks.

Scoring is cross-validation over soundtracks (:func:`soundtrack_folds`,
:func:`cross_validate`): whole soundtracks are dealt to ``--folds`` folds,
and whatever a method fits (a standardisation, the trained head) is fitted
on the other folds' tracks only; the left-out tracks are ranked against
every track. The head never sees the soundtracks it is scored on.

Compared:

- **MFCC mean+std**: mean and standard deviation of 20 MFCCs (librosa) of
  the song's excerpts, each dimension standardised;
- **musicnn frozen**: the library's song vectors
  (:class:`audiosim.similarity.model.SongModel`, MSD mid-level features
  mean-pooled over the excerpts);
- **musicnn frozen, standardised**: the same, column z-scores;
- **musicnn + triplet head**: :func:`audiosim.similarity.song_training.fit_head`
  trained on the training folds' songs (excerpts as items), applied to the
  frozen song vectors.

The MFCCs and the frozen features of every 3-second patch come from one
decode of each file's excerpts (:func:`audiosim.similarity.excerpts.read_excerpts`)
and are cached by content hash under ``--cache``, so a rerun only reads
them. Only soundtracks of at least ``--min-tracks`` tracks take part (a song
alone in its soundtrack has no right answer); ``--limit N`` takes ``N``
tracks round-robin over them (a quick run, with as many soundtracks as
possible). Printed: the table with bootstrap 95 % intervals (tracks
resampled), each method's paired difference from the frozen features with
its interval, chance, the head's best step per fold, and p@k per soundtrack.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audiosim.config import DescriptorConfig, HeadConfig, SimilarityConfig
from audiosim.runners import one_torch_thread, thread_map
from audiosim.signal import audio
from audiosim.similarity import musicnn
from audiosim.similarity.excerpts import Excerpts, read_excerpts
from audiosim.similarity.model import SongModel, fit_one_patch, mean_vector
from audiosim.similarity.song_training import (
    SongSet,
    fit_head,
    retrieval_scores,
)
from audiosim.store.content import ContentStore

N_MFCC = 20
MFCC_STORE = "benchmark-mfcc"
"""Folder (under ``--cache``) of the cached MFCC statistics."""
PATCH_STORE = "benchmark-patches"
"""Folder (under ``--cache``) of the cached frozen patch features."""


def soundtrack(path: str | Path) -> str:
    """The soundtrack (game) a Debian-packaged track belongs to.

    ``/usr/share/games/<game>/...`` and ``/usr/share/scummvm/<game>/...``
    give ``<game>``; ``/usr/share/<package>/...`` gives ``<package>``;
    anything else its parent folder's name.

    Examples
    --------
    >>> soundtrack("/usr/share/games/supertux2/music/forest/x.ogg")
    'supertux2'
    >>> soundtrack("/usr/share/scummvm/drascula/audio/track2.ogg")
    'drascula'
    >>> soundtrack("/home/me/album/song.ogg")
    'album'
    """
    parts = Path(path).parts
    if len(parts) > 4 and parts[1:3] == ("usr", "share"):
        return parts[4] if parts[3] in ("games", "scummvm") and len(parts) > 5 else parts[3]
    return Path(path).parent.name


def round_robin(paths: list[str], limit: int | None, min_tracks: int = 1) -> list[str]:
    """At most ``limit`` paths, taken in turn from each soundtrack of at least ``min_tracks`` tracks.

    Without a limit, every track of those soundtracks.
    """
    by: dict[str, list[str]] = defaultdict(list)
    for q in paths:
        by[soundtrack(q)].append(q)
    by = {s: v for s, v in by.items() if len(v) >= min_tracks}
    if not limit or limit >= sum(map(len, by.values())):
        return [q for q in paths if soundtrack(q) in by]
    out: list[str] = []
    queues = [list(v) for _, v in sorted(by.items())]
    while len(out) < limit and any(queues):
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return out


def mfcc_stats(y: np.ndarray, sr: int, n_mfcc: int = N_MFCC) -> np.ndarray:
    """Mean and standard deviation of ``n_mfcc`` MFCCs over a wave."""
    import librosa

    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)
    return np.concatenate([m.mean(1), m.std(1)]).astype(np.float32)


@dataclass
class Features:
    """What the benchmark scores, for the readable tracks (row ``i`` of each is ``paths[i]``)."""

    paths: list[str]
    mfcc: np.ndarray
    """``(n, 2 * N_MFCC)`` MFCC means and deviations."""
    patches: list[np.ndarray]
    """Per track, ``(n_patches, 1506)`` frozen MSD mid-level features of every 3-second patch."""
    excerpt_of: list[np.ndarray]
    """Per track, the excerpt each patch came from."""
    seconds: tuple[float, float]
    """(wall, CPU) seconds spent, mostly on uncached tracks."""

    def frozen(self) -> np.ndarray:
        """The library's song vectors: all patches mean-pooled, L2-normalised (:func:`mean_vector`)."""
        return np.stack([mean_vector(x) for x in self.patches])


def patch_features(ex: Excerpts, model: SongModel) -> tuple[np.ndarray, np.ndarray]:
    """Frozen features of every patch of every excerpt, and the excerpt of each patch.

    The song model's own input path (resample to 16 kHz, pad to one patch,
    :func:`musicnn.musicnn_input`), so that their mean-pooled, normalised mean
    is the song vector :func:`~audiosim.similarity.vectors.analyse_batch` gives.
    """
    per = [musicnn.musicnn_input(fit_one_patch(audio.resample(w, ex.sample_rate, musicnn.SAMPLE_RATE)))
           for w in ex.waves]
    with torch.inference_mode():
        out = model.net(torch.cat(per))
    layer = out.midlevel if model.cfg.layer == "midlevel" else out.penultimate
    return layer.numpy().astype(np.float32), np.repeat(np.arange(len(per)), [x.shape[0] for x in per])


def features(paths: list[str], cache: Path, workers: int = 1) -> Features:
    """MFCC statistics and frozen patch features of the readable ``paths``, cached by content hash.

    Both come from one decode of each file's excerpts. The patch features
    (not only their mean) are kept so that a head can be trained on
    excerpts of one song as positives.
    """
    cfg, dcfg = SimilarityConfig(), DescriptorConfig()
    model = SongModel(cfg)
    tag = f"{model.identity.digest}-{cfg.vector_digest()}"
    store = ContentStore(Path(cache) / PATCH_STORE / tag, ".npz")
    mfcc = ContentStore(Path(cache) / MFCC_STORE / f"n{N_MFCC}-{cfg.vector_digest()}", ".npy")

    def one(q: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray] | None:
        try:
            h = audio.content_hash(q)
            z, m = store.find(h), mfcc.find(h)
            if z is None or m is None:
                ex = read_excerpts(q, dcfg.sample_rate, cfg)
                if z is None:
                    x, e = patch_features(ex, model)
                    z = {"patches": x, "excerpt": e}
                    store.put(h, z)
                if m is None:
                    m = mfcc_stats(ex.joined(), ex.sample_rate)
                    mfcc.put(h, m)
            return q, np.asarray(m, np.float32), np.asarray(z["patches"], np.float32), np.asarray(z["excerpt"])
        except (audio.AudioError, OSError, ValueError) as e:
            print(f"skipped: {q}: {e}")
            return None

    t0, c0 = time.perf_counter(), time.process_time()
    with one_torch_thread():
        rows = [r for r in thread_map(one, paths, workers) if r is not None]
    return Features([r[0] for r in rows], np.stack([r[1] for r in rows]), [r[2] for r in rows],
                    [r[3] for r in rows], (time.perf_counter() - t0, time.process_time() - c0))


Method = Callable[[np.ndarray], np.ndarray]
"""``train_rows -> vectors of every track``: fits whatever it fits on the tracks ``train_rows`` only."""


def standardised(x: np.ndarray) -> Method:
    """Z-scores of ``x`` with the column means and deviations of the training rows."""
    def fit(train: np.ndarray) -> np.ndarray:
        mu, sd = x[train].mean(0), np.maximum(x[train].std(0), 1e-9)
        return (x - mu) / sd
    return fit


def frozen(x: np.ndarray) -> Method:
    """``x`` as it is: fits nothing."""
    return lambda _train: x


def trained_head(data: SongSet, cfg: HeadConfig, records: list[dict]) -> Method:
    """A :class:`SongHead` trained (:func:`fit_head`) on the training rows' songs; its records appended."""
    def fit(train: np.ndarray) -> np.ndarray:
        head, record = fit_head(data.subset(train), cfg)
        records.append(record)
        return head.vectors(data.songs)
    return fit


def soundtrack_folds(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A fold number per track: whole soundtracks to folds, balanced by track count.

    Soundtracks are dealt, largest first (ties in a seeded random order), to
    the fold with the fewest tracks so far. ``k`` of 0, or at least the
    number of soundtracks, gives each soundtrack its own fold.
    """
    names, counts = np.unique(labels, return_counts=True)
    if k <= 0 or k >= len(names):
        return np.searchsorted(names, labels)
    rng = np.random.default_rng(seed)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], rng.random()))
    fold_of, size = {}, np.zeros(k, int)
    for i in order:
        f = int(np.argmin(size))
        fold_of[names[i]] = f
        size[f] += counts[i]
    return np.array([fold_of[lab] for lab in labels])


def cross_validate(method: Method, labels: np.ndarray, folds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-track p@k and AP; each fold's tracks are scored with ``method`` fitted on the other folds only.

    The left-out tracks are ranked against every track (their own
    soundtrack's included: those are the right answers).
    """
    p = np.zeros(len(labels))
    ap = np.zeros(len(labels))
    for f in np.unique(folds):
        q = np.flatnonzero(folds == f)
        vectors = method(np.flatnonzero(folds != f))
        p[q], ap[q] = retrieval_scores(vectors, labels, q, k)
    return p, ap


def leave_soundtrack_out(
    x: np.ndarray, labels: np.ndarray, fit: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cross_validate` with one fold per soundtrack, for a method given as ``fit(x[train]) -> transform``."""
    return cross_validate(lambda train: fit(x[train])(x), labels, soundtrack_folds(labels, 0), k)


def identity(_train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Fits nothing (the ``fit`` of frozen features, for :func:`leave_soundtrack_out`)."""
    return lambda v: v


ranking_scores = retrieval_scores
"""Precision@k and average precision of query rows (:func:`audiosim.similarity.song_training.retrieval_scores`)."""


def bootstrap_ci(values: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the mean of per-track ``values``, tracks resampled.

    Tracks share neighbours, so this understates the spread a little.
    """
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def song_set(feats: Features, labels: np.ndarray) -> SongSet:
    """The benchmark's tracks as a :class:`SongSet`: excerpt means and song vectors of the frozen features."""
    excerpts, song_of = [], []
    for s, (x, e) in enumerate(zip(feats.patches, feats.excerpt_of)):
        for j in np.unique(e):
            excerpts.append(mean_vector(x[e == j]))
            song_of.append(s)
    return SongSet(np.stack(excerpts), np.array(song_of), feats.frozen(), labels)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, required=True, help="text file, one audio path per line")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only N tracks, round-robin over the soundtracks (default: all)")
    p.add_argument("--min-tracks", type=int, default=5, metavar="N",
                   help="only soundtracks with at least N tracks in the corpus (default: 5)")
    p.add_argument("--k", type=int, default=5, help="neighbours scored by precision@k (default: 5)")
    p.add_argument("--folds", type=int, default=5, metavar="K",
                   help="cross-validation folds over soundtracks; 0: leave each soundtrack out (default: 5)")
    p.add_argument("--no-head", action="store_true", help="score the untrained methods only")
    p.add_argument("--head-dim", type=int, default=HeadConfig.dim, help=f"head output size (default: {HeadConfig.dim})")
    p.add_argument("--margin", type=float, default=HeadConfig.margin,
                   help=f"triplet margin, cosine distance (default: {HeadConfig.margin})")
    p.add_argument("--steps", type=int, default=HeadConfig.steps, help=f"head training steps (default: {HeadConfig.steps})")
    p.add_argument("--soundtrack-positive", type=float, default=HeadConfig.soundtrack_positive, metavar="P",
                   help="share of positives from another song of the soundtrack, not another excerpt "
                        f"(default: {HeadConfig.soundtrack_positive})")
    p.add_argument("--cache", type=Path, default=Path("data/benchmark-similarity"), metavar="DIR",
                   help="features cached by content hash (default: data/benchmark-similarity)")
    p.add_argument("--workers", type=int, default=1, help="files analysed at once (default: 1)")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    paths = round_robin([ln.strip() for ln in args.corpus.read_text().splitlines() if ln.strip()], args.limit,
                        args.min_tracks)
    feats = features(paths, args.cache, args.workers)
    labels = np.array([soundtrack(q) for q in feats.paths])
    counts = pd.Series(labels).value_counts()
    n, k = len(labels), args.k
    folds = soundtrack_folds(labels, args.folds)
    frozen_x = feats.frozen()
    methods: dict[str, Method] = {
        "MFCC mean+std (standardised)": standardised(feats.mfcc),
        "musicnn frozen (MSD mid-level)": frozen(frozen_x),
        "musicnn frozen, standardised": standardised(frozen_x),
    }
    head_cfg = HeadConfig(dim=args.head_dim, margin=args.margin, steps=args.steps,
                          soundtrack_positive=args.soundtrack_positive)
    records: list[dict] = []
    if not args.no_head:
        methods[f"musicnn + triplet head ({head_cfg.dim}-d)"] = trained_head(song_set(feats, labels), head_cfg, records)
    scores, cpu = {}, {}
    for name, method in methods.items():
        c0 = time.process_time()
        scores[name] = cross_validate(method, labels, folds, k)
        cpu[name] = time.process_time() - c0
    same = np.array([counts[lab] - 1 for lab in labels])
    chance = float(np.mean(same / (n - 1)))
    rows = []
    for name, (pk, ap) in scores.items():
        lo, hi = bootstrap_ci(pk)
        alo, ahi = bootstrap_ci(ap)
        rows.append({"song vector": name, f"p@{k}": f"{pk.mean():.3f}", "p 95% interval": f"{lo:.3f}-{hi:.3f}",
                     "mAP": f"{ap.mean():.3f}", "mAP 95% interval": f"{alo:.3f}-{ahi:.3f}",
                     "fit CPU s": f"{cpu[name]:.0f}"})
    rows.append({"song vector": "chance (random ranking)", f"p@{k}": f"{chance:.3f}", "p 95% interval": "",
                 "mAP": f"{chance:.3f}", "mAP 95% interval": "", "fit CPU s": ""})
    n_folds = len(np.unique(folds))
    print(f"\n{n} tracks from {len(counts)} soundtracks, {n_folds}-fold cross-validation over soundtracks; features "
          f"{feats.seconds[0]:.0f} s wall, {feats.seconds[1]:.0f} s CPU (reading the cache included), "
          f"total {time.perf_counter() - t0:.0f} s\n")
    print(pd.DataFrame(rows).to_string(index=False))
    if records:
        print(f"\nhead {head_cfg}: best step per fold {[r['best_step'] for r in records]}, "
              f"held-out-soundtrack mAP {[r['val_map'] for r in records]}")
    base_pk, base_ap = scores["musicnn frozen (MSD mid-level)"]
    for name, (pk, ap) in scores.items():
        if name.startswith("musicnn frozen (MSD"):
            continue
        for what, d in ((f"p@{k}", pk - base_pk), ("AP", ap - base_ap)):
            lo, hi = bootstrap_ci(d)
            print(f"{name} minus musicnn frozen, {what}: {d.mean():+.3f} "
                  f"(95 % interval {lo:+.3f} to {hi:+.3f}, tracks resampled)")
    per = pd.DataFrame({"soundtrack": labels, **{name.split(" (")[0]: v[0] for name, v in scores.items()}})
    per = per.groupby("soundtrack").mean()
    per.insert(0, "tracks", counts)
    print(f"\np@{k} by soundtrack")
    print(per.sort_values("tracks", ascending=False).round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
