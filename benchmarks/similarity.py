"""Benchmark song similarity: "same soundtrack" precision@k on held-out tracks.

Usage::

    python benchmarks/similarity.py --corpus /work/scratch/dev-corpus.txt \\
        --split /work/scratch/run1/fingerprint.split.json \\
        --cache /work/scratch/cache/wave-8000 [--model models/similarity.pt] [--k 5]

Only the held-out side of the split is used (tracks no model was trained
on). Each track's label is its soundtrack (the game it ships with, from its
path: ``/usr/share/games/<game>/...``, ``/usr/share/scummvm/<game>/...``,
``/usr/share/<package>/...``). For every held-out track, its ``k`` nearest
other held-out tracks are found by cosine similarity, and precision@k is the
share of them from the same soundtrack, averaged over tracks.

Compared:

- **learned**: song vectors of the similarity encoder (mean of 3 s clip
  embeddings, normalised), from waveforms cached at the encoder's rate
  (``--cache``, filled on first use);
- **MFCC 22 kHz**: the classic baseline, mean and standard deviation of 20
  MFCCs (librosa, 22 050 Hz, decoded from the files), each of the 40
  dimensions standardised over the held-out set, cosine similarity;
- **MFCC 8 kHz**: the same baseline on 8 kHz audio (the fingerprint
  features' rate).

Also printed: chance (expected precision of a random ranking) and the
ceiling (best possible, given how many same-soundtrack tracks each has),
bootstrap 95 % intervals (tracks resampled) for each method and for the
difference between the learned vectors and the 22 kHz MFCC baseline, and
precision@k per soundtrack.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def mfcc_stats(y: np.ndarray, sr: int, n_mfcc: int = 20) -> np.ndarray:
    """Mean and standard deviation of ``n_mfcc`` MFCCs over the whole track."""
    import librosa

    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)
    return np.concatenate([m.mean(1), m.std(1)])


def standardise(x: np.ndarray) -> np.ndarray:
    """Z-score every column."""
    return (x - x.mean(0)) / np.maximum(x.std(0), 1e-9)


def per_track_precision(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Precision@k of every track (cosine neighbours among the others)."""
    from audiosim.similarity.model import cosine_matrix

    sim = cosine_matrix(vectors)
    np.fill_diagonal(sim, -np.inf)
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return (labels[top] == labels[:, None]).mean(1)


def bootstrap_ci(values: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the mean of per-track ``values``, resampling tracks.

    Tracks share neighbours, so this understates the spread a little; it
    still shows how far apart two methods must be to differ on a few
    dozen tracks.
    """
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--k", type=int, default=5)
    args = p.parse_args(argv)

    from audiosim.signal import audio
    from audiosim.similarity.model import load_similarity_model
    from audiosim.similarity.song_training import song_clip_vectors
    from audiosim.training.data import load_audio_set, split_by_file, track_refs
    from scripts.train_similarity import soundtrack

    t0 = time.perf_counter()
    paths = [line.strip() for line in args.corpus.read_text().splitlines() if line.strip()]
    _, held, _ = split_by_file(track_refs(paths), args.split)
    model = load_similarity_model(args.model)
    data = load_audio_set(held, model.features, args.cache, progress=False)
    by_name = {r.name: r for r in held}
    refs = [by_name[n] for n in data.names]
    labels = np.array([soundtrack(r.path) for r in refs])
    k = args.k

    learned = np.stack([v.mean(0) / np.linalg.norm(v.mean(0)) for v in song_clip_vectors(data, model)])
    t_learned = time.perf_counter() - t0
    mf22 = standardise(np.stack([mfcc_stats(audio.load(r.path, 22050), 22050) for r in refs]))

    def wave(i: int) -> np.ndarray:
        return data.clean[data.starts[i] : data.starts[i] + data.lengths[i]].numpy()

    mf8 = standardise(np.stack([
        mfcc_stats(audio.resample(wave(i), data.sample_rate, 8000), 8000)
        for i in range(len(refs))
    ]))

    counts = pd.Series(labels).value_counts()
    same = np.array([counts[lab] - 1 for lab in labels])
    n = len(labels)
    chance = float(np.mean(same / (n - 1)))
    ceiling = float(np.mean(np.minimum(same, k) / k))
    results = {
        "learned song vectors": per_track_precision(learned, labels, k),
        "MFCC mean+std, 22 kHz": per_track_precision(mf22, labels, k),
        "MFCC mean+std, 8 kHz": per_track_precision(mf8, labels, k),
    }
    p1 = {name: per_track_precision(v, labels, 1).mean() for name, v in
          (("learned song vectors", learned), ("MFCC mean+std, 22 kHz", mf22), ("MFCC mean+std, 8 kHz", mf8))}
    print(f"\nHeld-out tracks: {n} from {len(counts)} soundtracks; model {model.identity.digest} "
          f"({model.identity.card.get('total_training_minutes', (model.identity.card.get('history') or [{}])[-1].get('minutes', '?'))} min training); {time.perf_counter() - t0:.0f} s "
          f"(learned vectors {t_learned:.0f} s)\n")
    cis = [bootstrap_ci(v) for v in results.values()]
    table = pd.DataFrame({
        "method": list(results) + ["chance (random ranking)", "ceiling (perfect ranking)"],
        f"p@{k}": [round(float(v.mean()), 3) for v in results.values()] + [round(chance, 3), round(ceiling, 3)],
        "95% interval": [f"{lo:.3f}-{hi:.3f}" for lo, hi in cis] + ["", ""],
        "p@1": [round(float(p1[m]), 3) for m in results] + [round(chance, 3), round(float(np.mean(same > 0)), 3)],
    })
    print("Same-soundtrack precision among each held-out track's nearest held-out tracks")
    print(table.to_string(index=False))
    diff = results["learned song vectors"] - results["MFCC mean+std, 22 kHz"]
    lo, hi = bootstrap_ci(diff)
    print(f"\nlearned minus MFCC 22 kHz, p@{k}: {diff.mean():+.3f} (95 % interval {lo:+.3f} to {hi:+.3f}, "
          f"tracks resampled); the learned vectors beat the baseline only if the interval is above 0")
    per = pd.DataFrame({"soundtrack": labels, **{m: v for m, v in results.items()}}).groupby("soundtrack").mean()
    per.insert(0, "tracks", counts)
    print(f"\np@{k} by soundtrack")
    print(per.sort_values("tracks", ascending=False).round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
