"""Benchmark mood labels and mood groups on the synthetic songbook (moods known by construction).

Usage::

    python benchmarks/moods.py [--n 40] [--seconds 30] [--seed 1] [--work DIR]
    python benchmarks/moods.py --n 10 --seconds 10    # the quick tier `make bench` runs

Renders ``n`` songbook songs (five moods, balanced), ingests them into a
data home (``--work``, default a temporary folder), analyses them (song
vectors, musicnn tags and descriptors from one decode,
:func:`audiosim.similarity.vectors.catalogue_vectors`), and prints:

1. per-song mood labels (nearest valence/arousal prototype) against the
   true moods: accuracy and the confusion table, from descriptors alone
   (before tags joined in) and from descriptors plus tag percentiles
   (:func:`audiosim.similarity.tags.catalogue_tags`, what ``audiosim moods``
   uses);
2. mood groups (:func:`audiosim.similarity.mood.group_songs`, with tags) against the true moods:
   purity (share of songs whose group's majority mood is their own) and
   normalised mutual information, for the number of groups chosen by
   silhouette and for k = 5, with song vectors + descriptors, descriptors
   only, and song vectors only (k-means on the vectors).

The seed defaults to 1 so that the songs differ from the default songbook
(seed 0) the mood formulae were looked at while being written.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def purity(truth: pd.Series, groups: pd.Series) -> float:
    """Share of items whose group's most common true label is their own."""
    table = pd.crosstab(groups, truth)
    return float(table.max(axis=1).sum() / table.to_numpy().sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=40, help="songs to render (at least 6, for the k = 5 grouping)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each song")
    p.add_argument("--seed", type=int, default=1, help="songbook seed")
    p.add_argument("--model", type=Path, default=None,
                   help="song model weights (only the shipped models/musicnn/msd_musicnn.pt is accepted)")
    p.add_argument("--work", type=Path, default=None, help="folder for songs and data home (kept); default temporary")
    args = p.parse_args(argv)
    if args.n < 6:
        p.error(f"--n must be at least 6 (songs for 5 groups), not {args.n}")

    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    from audiosim.config import MoodConfig
    from audiosim.demo.songbook import read_songbook, write_songbook
    from audiosim.ingest.ingest import ingest_many
    from audiosim.progress import Progress
    from audiosim.similarity.model import load_similarity_model
    from audiosim.similarity.mood import group_songs, song_moods
    from audiosim.similarity.tags import catalogue_tags
    from audiosim.similarity.vectors import catalogue_vectors

    work = args.work or Path(tempfile.mkdtemp(prefix="audiosim-moods-"))
    try:
        t0 = time.perf_counter()
        folder = work / "songbook"
        paths = write_songbook(folder, n=args.n, seconds=args.seconds, seed=args.seed)
        truth_by_file = {r["file"]: r["mood"] for r in read_songbook(folder)}
        home = work / "home"
        progress = Progress()
        print(f"songbook: {len(paths)} songs in {folder}", file=sys.stderr, flush=True)
        ingested: list = []

        def count(result) -> None:  # type: ignore[no-untyped-def]
            ingested.append(result)
            progress("ingest", {"done": len(ingested), "total": len(paths)})

        results = ingest_many(paths, home, progress=count)
        failed = [r for r in results if r.status == "failed"]
        if failed:
            print(f"{len(failed)} songs failed to ingest: {failed[0]}")
        model = load_similarity_model(args.model)
        table = catalogue_vectors(home, model, progress=progress)
        desc = table.descriptors
        tags = catalogue_tags(table)
        truth = pd.Series([truth_by_file[Path(p).name] for p in table.tracks["path"]], index=table.tracks.index)
        prep = time.perf_counter() - t0

        print(f"\nSongbook: {len(desc)} songs x {args.seconds:g} s, seed {args.seed}; model {model.identity.digest}; "
              f"set-up {prep:.0f} s\n")
        for how, tag_table in (("descriptors only", None), ("descriptors + tags", tags)):
            labels = song_moods(desc, tag_table)
            acc = float((labels["mood"] == truth).mean())
            print(f"Per-song mood labels (nearest valence/arousal prototype), {how}: accuracy {acc:.2f}")
            print(pd.crosstab(truth.rename("true mood"), labels["mood"].rename("label")).to_string())
            print()

        rows = []
        for space, cfg_kw, vecs in (("vectors + descriptors", {}, table.vectors),
                                    ("descriptors only", {"embedding_weight": 0.0}, None)):
            for k in (0, 5):
                r = group_songs(desc, vecs, MoodConfig(n_groups=k, **cfg_kw), tags)
                g = r.songs["group"]
                rows.append(dict(space=space, k="auto" if k == 0 else k, groups=r.k, silhouette=round(r.silhouette, 3),
                                 purity=round(purity(truth, g), 3), nmi=round(normalized_mutual_info_score(truth, g), 3)))
        x = table.vectors
        for k in (5,):
            g = pd.Series(KMeans(n_clusters=k, n_init=20, random_state=0).fit_predict(x), index=table.tracks.index)
            rows.append(dict(space="song vectors only (k-means)", k=k, groups=k, silhouette=np.nan,
                             purity=round(purity(truth, g), 3), nmi=round(normalized_mutual_info_score(truth, g), 3)))
        print("Mood groups against the true moods")
        print(pd.DataFrame(rows).to_string(index=False))
        r = group_songs(desc, table.vectors, MoodConfig(), tags)
        print("\nGroups (vectors + descriptors + tags, k by silhouette) and their true moods")
        named = r.songs["group"].astype(str) + ". " + r.songs["group_name"]
        print(pd.crosstab(named.rename("group"), truth.rename("true mood")).to_string())
        print()
        for g, row in r.groups.iterrows():
            print(f"{g}. {row['name']}: {row['why']}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
