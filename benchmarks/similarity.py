"""Benchmark song similarity: same-soundtrack precision@k and mAP, leave-soundtrack-out, bootstrap intervals.

Usage::

    python benchmarks/similarity.py --corpus LIST [--limit N] [--k 5]
                                    [--cache DIR] [--workers 1]

Each track's label is its soundtrack (:func:`soundtrack`: the game or
package folder it is installed under). For every track, all other tracks
are ranked by cosine similarity; precision@k is the share of the ``k``
nearest from the same soundtrack, average precision (AP) the mean of the
precisions at each same-soundtrack track's rank, and mAP their mean over
tracks.

Scoring is leave-soundtrack-out: for each soundtrack in turn, whatever a
method fits (the MFCC baseline's standardisation; a trained head would be
trained here) is fitted on the other soundtracks' tracks only, and the
tracks of the left-out soundtrack are scored against every track. Frozen
musicnn features fit nothing.

Compared:

- **MFCC mean+std**: mean and standard deviation of 20 MFCCs (librosa) of
  the song's excerpts, each dimension standardised;
- **musicnn frozen**: the library's song vectors
  (:class:`audiosim.similarity.model.SongModel`, MSD mid-level features
  mean-pooled over the excerpts).

Both come from one decode of each file's excerpts
(:func:`audiosim.similarity.excerpts.read_excerpts`) and are cached by
content hash under ``--cache``, so a rerun only reads them. Only soundtracks
of at least ``--min-tracks`` tracks take part (a song alone in its
soundtrack has no right answer); ``--limit N`` takes ``N`` tracks
round-robin over them (a quick run, with as many soundtracks as possible). Printed: the table with bootstrap
95 % intervals (tracks resampled), the difference between the two methods
with its interval, chance, and p@k per soundtrack.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from audiosim.config import DescriptorConfig, SimilarityConfig
from audiosim.runners import thread_map
from audiosim.signal import audio
from audiosim.similarity.excerpts import read_excerpts
from audiosim.similarity.model import SongModel, cosine_matrix
from audiosim.similarity.vectors import SongVectors, analyse_batch
from audiosim.store.content import ContentStore

N_MFCC = 20
MFCC_STORE = "benchmark-mfcc"
"""Folder (under ``--cache``) of the cached MFCC statistics."""


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


def features(paths: list[str], cache: Path, workers: int = 1) -> tuple[list[str], np.ndarray, np.ndarray, tuple[float, float]]:
    """MFCC statistics and song vectors of the readable ``paths``, cached by content hash.

    Returns
    -------
    (kept paths, MFCC matrix, musicnn matrix, (wall, CPU) seconds spent, mostly on uncached tracks)
    """
    model = SongModel(SimilarityConfig())
    dcfg = DescriptorConfig()
    songs = SongVectors(cache, model, SimilarityConfig(), dcfg)
    mfcc = ContentStore(Path(cache) / MFCC_STORE / f"n{N_MFCC}-{SimilarityConfig().vector_digest()}", ".npy")

    def one(q: str) -> tuple[str, np.ndarray, np.ndarray] | None:
        try:
            h = audio.content_hash(q)
            a, m = songs.cached(h), mfcc.find(h)
            if a is None or m is None:
                ex = read_excerpts(q, dcfg.sample_rate)
                if a is None:
                    a = analyse_batch([ex], model, dcfg)[0]
                    songs.cache.put(h, a.to_arrays())
                if m is None:
                    m = mfcc_stats(ex.joined(), ex.sample_rate)
                    mfcc.put(h, m)
            return q, np.asarray(m, np.float32), a.vector
        except (audio.AudioError, OSError, ValueError) as e:
            print(f"skipped: {q}: {e}")
            return None

    t0, c0 = time.perf_counter(), time.process_time()
    rows = [r for r in thread_map(one, paths, workers) if r is not None]
    spent = (time.perf_counter() - t0, time.process_time() - c0)
    return [r[0] for r in rows], np.stack([r[1] for r in rows]), np.stack([r[2] for r in rows]), spent


def standardiser(train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Z-scores with the column means and deviations of ``train``."""
    mu, sd = train.mean(0), np.maximum(train.std(0), 1e-9)
    return lambda x: (x - mu) / sd


def identity(_train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Fits nothing (frozen features)."""
    return lambda x: x


def ranking_scores(x: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision@k and average precision of each query row against all other rows (cosine)."""
    sim = cosine_matrix(x[queries], x)
    sim[np.arange(len(queries)), queries] = -np.inf
    order = np.argsort(-sim, axis=1, kind="stable")[:, :-1]  # the query itself ranks last
    rel = labels[order] == labels[queries][:, None]
    p_at_k = rel[:, :k].mean(1)
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    n_rel = np.maximum(rel.sum(1), 1)
    ap = (rel * hits / ranks).sum(1) / n_rel
    return p_at_k, ap


def leave_soundtrack_out(
    x: np.ndarray, labels: np.ndarray, fit: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-track p@k and AP, each soundtrack scored with ``fit`` fitted on the others' tracks."""
    p = np.zeros(len(labels))
    ap = np.zeros(len(labels))
    for s in np.unique(labels):
        q = np.flatnonzero(labels == s)
        transform = fit(x[labels != s])
        p[q], ap[q] = ranking_scores(transform(x), labels, q, k)
    return p, ap


def bootstrap_ci(values: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the mean of per-track ``values``, tracks resampled.

    Tracks share neighbours, so this understates the spread a little.
    """
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, required=True, help="text file, one audio path per line")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only N tracks, round-robin over the soundtracks (default: all)")
    p.add_argument("--min-tracks", type=int, default=5, metavar="N",
                   help="only soundtracks with at least N tracks in the corpus (default: 5)")
    p.add_argument("--k", type=int, default=5, help="neighbours scored by precision@k (default: 5)")
    p.add_argument("--cache", type=Path, default=Path("data/benchmark-similarity"), metavar="DIR",
                   help="features cached by content hash (default: data/benchmark-similarity)")
    p.add_argument("--workers", type=int, default=1, help="files analysed at once (default: 1)")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    paths = round_robin([ln.strip() for ln in args.corpus.read_text().splitlines() if ln.strip()], args.limit,
                        args.min_tracks)
    paths, mfcc, vectors, t_feat = features(paths, args.cache, args.workers)
    labels = np.array([soundtrack(q) for q in paths])
    counts = pd.Series(labels).value_counts()
    n, k = len(labels), args.k
    methods = {"MFCC mean+std": (mfcc, standardiser), "musicnn frozen (MSD mid-level)": (vectors, identity)}
    scores = {name: leave_soundtrack_out(x, labels, fit, k) for name, (x, fit) in methods.items()}
    same = np.array([counts[lab] - 1 for lab in labels])
    chance = float(np.mean(same / (n - 1)))
    rows = []
    for name, (pk, ap) in scores.items():
        lo, hi = bootstrap_ci(pk)
        alo, ahi = bootstrap_ci(ap)
        rows.append({"song vector": name, f"p@{k}": f"{pk.mean():.3f}", "p 95% interval": f"{lo:.3f}-{hi:.3f}",
                     "mAP": f"{ap.mean():.3f}", "mAP 95% interval": f"{alo:.3f}-{ahi:.3f}"})
    rows.append({"song vector": "chance (random ranking)", f"p@{k}": f"{chance:.3f}", "p 95% interval": "",
                 "mAP": f"{chance:.3f}", "mAP 95% interval": ""})
    print(f"\n{n} tracks from {len(counts)} soundtracks, leave-soundtrack-out; features {t_feat[0]:.0f} s wall, "
          f"{t_feat[1]:.0f} s CPU (reading the cache included), total {time.perf_counter() - t0:.0f} s\n")
    print(pd.DataFrame(rows).to_string(index=False))
    (m_pk, m_ap), (n_pk, n_ap) = scores["MFCC mean+std"], scores["musicnn frozen (MSD mid-level)"]
    for what, d in ((f"p@{k}", n_pk - m_pk), ("AP", n_ap - m_ap)):
        lo, hi = bootstrap_ci(d)
        print(f"musicnn minus MFCC, {what}: {d.mean():+.3f} (95 % interval {lo:+.3f} to {hi:+.3f}, tracks resampled)")
    per = pd.DataFrame({"soundtrack": labels, "MFCC": m_pk, "musicnn": n_pk}).groupby("soundtrack").mean()
    per.insert(0, "tracks", counts)
    print(f"\np@{k} by soundtrack")
    print(per.sort_values("tracks", ascending=False).round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
