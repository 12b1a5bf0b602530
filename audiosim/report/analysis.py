"""The analysis of a playlist report: how a playlist hangs together, and how to make it better.

:func:`build_report` reads and resolves a playlist
(:mod:`audiosim.report.playlist`) and computes, from the song vectors and
descriptors of the catalogue:

- **cohesion**: the mean cosine similarity of all pairs of song vectors,
  compared with random playlists of the same size drawn from the catalogue;
- the most and least similar **pairs** and the similarity matrix;
- **outliers**: songs that fit the playlist worse than 90 % of the
  catalogue's other songs do (mean similarity to the playlist's songs),
  with the descriptors that set them apart;
- a 2-D **map** of the catalogue (PCA of song vectors), playlist highlighted;
- the **mood mix** and the **tempo/energy arc** in playlist order;
- a **suggested order** with smoother transitions (greedy nearest-neighbour
  chain from the current opener, improved by 2-opt);
- **suggested additions**: catalogue songs with the highest mean similarity
  to the playlist's songs.

The result, a :class:`PlaylistReport`, is tables only: :mod:`~audiosim.report.figures`
draws from it, :mod:`~audiosim.report.html` renders it and
:mod:`~audiosim.report.write` writes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from audiosim.config import DescriptorConfig, SimilarityConfig
from audiosim.fingerprint.model import model_digest
from audiosim.ingest.ingest import IngestResult
from audiosim.report.playlist import (
    allowed_folders,
    playlist_name,
    read_playlist,
    resolve_playlist,
    too_few_message,
)
from audiosim.similarity.model import cosine_matrix, load_similarity_model
from audiosim.similarity.mood import TERM, song_moods, term_scores
from audiosim.similarity.tags import catalogue_tags
from audiosim.similarity.vectors import catalogue_vectors
from audiosim.store.home import DataHome

TRANSITION_AROUSAL_WEIGHT = 0.5
"""Weight of the energy (arousal) jump in the transition cost of the suggested order."""


@dataclass
class PlaylistReport:
    """Everything a playlist report shows, as tables (the figures are drawn from them)."""

    name: str
    source: str
    home: str
    created: str
    model_digest: str
    entries: pd.DataFrame
    """Every playlist entry with its status (see :func:`~audiosim.report.playlist.resolve_playlist`)."""
    tracks: pd.DataFrame
    """Analysed tracks in playlist order: catalogue fields, descriptors, mood,
    ``mean_similarity``, ``closest``, ``outlier`` and ``outlier_why``."""
    similarity: pd.DataFrame
    """Cosine similarity of every pair of analysed tracks (labels ``"3. title"``)."""
    pairs: pd.DataFrame
    """All pairs, most similar first."""
    cohesion: dict
    """See :func:`cohesion_stats`."""
    order: pd.DataFrame
    """Suggested order: ``position``, ``was``, title, similarity to the previous song ..."""
    order_stats: dict
    additions: pd.DataFrame
    catalogue_map: pd.DataFrame
    """2-D PCA coordinates of every catalogue song (``x``, ``y``), ``role``."""
    descriptor_errors: dict[int, str] = field(default_factory=dict)

    @property
    def missing(self) -> pd.DataFrame:
        """Entries that could not be analysed (missing, failed or duplicate)."""
        return self.entries[~self.entries["status"].isin(["ok", "ingested"])]


def build_report(
    playlist: str | Path,
    home: "str | Path | DataHome | None" = None,
    model=None,
    ingest: bool = True,
    ingest_fn: Callable[[list[Path]], Sequence[IngestResult]] | None = None,
    allow: Sequence[str | Path] | None = None,
    n_additions: int = 10,
    sim_cfg: SimilarityConfig = SimilarityConfig(),
    descriptor_cfg: DescriptorConfig = DescriptorConfig(),
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    seed: int = 0,
) -> PlaylistReport:
    """Analyse a playlist against the catalogue of a data home.

    Parameters
    ----------
    playlist : str or Path
        See :func:`~audiosim.report.playlist.read_playlist`.
    home : data home
    model : Encoder, optional
        Song-similarity encoder (default :func:`~audiosim.similarity.model.load_similarity_model`).
    ingest : bool
        Ingest the playlist files under the ``allow`` folders that are not
        catalogued yet; otherwise they are listed as not in the catalogue.
    ingest_fn : callable, optional
        How to ingest (the Prefect flow passes its ingest sub-flow).
    allow : sequence of str or Path, optional
        The folders whose files the playlist may name beyond the catalogue
        (default: the playlist's own folder); other paths are listed, never
        opened (:func:`~audiosim.report.playlist.allowed_folders`).
    n_additions : int
        Number of suggested additions.
    progress : bool
        Progress bars (stderr) for song vectors and descriptors.
    log : callable, optional
        Receives short progress messages.
    seed : int
        Seed of the random playlists that cohesion is compared with, and of the map's PCA.

    Raises
    ------
    ValueError
        If fewer than two playlist tracks can be analysed.
    """
    say = log or (lambda _m: None)
    dh = DataHome.resolve(home)
    items = read_playlist(playlist)
    if not items:
        raise ValueError(f"{playlist}: the playlist is empty")
    entries = resolve_playlist(items, dh, ingest=ingest, ingest_fn=ingest_fn, allow=allowed_folders(playlist, allow))
    model = model or load_similarity_model()
    say("song vectors of the catalogue ...")
    analysis_errors: dict[int, str] = {}
    table = catalogue_vectors(dh, model, sim_cfg, progress=progress, descriptor_cfg=descriptor_cfg,
                              on_error=lambda tid, msg: analysis_errors.__setitem__(tid, msg))
    cat_tracks, cat_vecs = table.tracks, table.vectors
    row_of = {int(t): i for i, t in enumerate(cat_tracks.index)}
    usable = entries[entries["status"].isin(["ok", "ingested"])]
    usable = usable[[int(t) in row_of for t in usable["id"]]]
    if len(usable) < 2:
        raise ValueError(too_few_message(playlist, entries, usable))
    ids = [int(t) for t in usable["id"]]
    vecs = cat_vecs[[row_of[t] for t in ids]]
    listed = {int(t) for t in entries["id"].dropna()}
    errors = {tid: msg for tid, msg in analysis_errors.items() if tid in listed}
    desc = table.descriptors.loc[ids]  # from the same decode as the vectors
    tag_pct = catalogue_tags(table)  # percentiles among the whole catalogue
    tracks = _track_table(usable, cat_tracks, desc, tag_pct)
    labels = [f"{p}. {_short(t)}" for p, t in zip(tracks["position"], tracks["title"])]
    sim = cosine_matrix(vecs)
    sim_df = pd.DataFrame(sim, index=labels, columns=labels)
    cohesion = cohesion_stats(vecs, cat_vecs, seed=seed)
    outside = np.array([h not in set(cat_tracks.loc[ids, "content_hash"]) for h in cat_tracks["content_hash"]])
    fit_outside = cosine_matrix(cat_vecs[outside], vecs).mean(1) if outside.any() else np.zeros(0)
    tracks = _add_outliers(tracks, sim, labels, fit_outside)
    order, order_stats = suggest_order(tracks, sim)
    additions = suggest_additions(vecs, labels, cat_tracks, cat_vecs, set(cat_tracks.loc[ids, "content_hash"]),
                                  n_additions, table.descriptors, tag_pct)
    cmap = catalogue_map(cat_tracks, cat_vecs, dict(zip(ids, map(int, tracks["position"]))),
                         list(additions["id"]) if len(additions) else [], seed)
    return PlaylistReport(
        name=playlist_name(playlist), source=str(playlist), home=str(dh.root),
        created=time.strftime("%Y-%m-%d %H:%M"), model_digest=model_digest(model),
        entries=entries, tracks=tracks, similarity=sim_df, pairs=pair_table(sim, labels), cohesion=cohesion,
        order=order, order_stats=order_stats, additions=additions, catalogue_map=cmap, descriptor_errors=errors,
    )


def _short(title: object, n: int = 32) -> str:
    t = str(title) if title is not None and title == title else "?"
    return t if len(t) <= n else t[: n - 1] + "…"


def _track_table(usable: pd.DataFrame, cat_tracks: pd.DataFrame, desc: pd.DataFrame,
                 tag_pct: pd.DataFrame | None = None) -> pd.DataFrame:
    ids = [int(t) for t in usable["id"]]
    base = pd.DataFrame({"position": usable["position"].to_numpy(), "id": ids})
    info = cat_tracks.loc[ids, ["title", "artist", "duration", "path"]].reset_index(drop=True)
    out = pd.concat([base, info], axis=1)
    if len(desc):
        moods = song_moods(desc, tag_pct)
        out = out.join(desc.drop(columns=["duration"]).join(moods), on="id")
    return out


def cohesion_stats(vecs: np.ndarray, catalogue: np.ndarray, n_random: int = 1000, seed: int = 0) -> dict:
    """Mean pairwise cosine of a playlist and the same for random catalogue playlists.

    Returns
    -------
    dict
        ``cohesion`` (mean pairwise similarity), ``random_mean`` and
        ``random_std`` of random same-size playlists from the catalogue,
        ``percentile`` (share of random playlists less cohesive, 0-100),
        ``pair_baseline`` (mean similarity of two random catalogue songs),
        ``n_random``, ``n``.
    """
    n = len(vecs)
    s = cosine_matrix(vecs)
    value = float((s.sum() - np.trace(s)) / (n * (n - 1)))
    out = dict(cohesion=value, n=n, random_mean=float("nan"), random_std=float("nan"), percentile=float("nan"),
               pair_baseline=float("nan"), n_random=0)
    m = len(catalogue)
    if m > n:
        unit = catalogue / np.maximum(np.linalg.norm(catalogue, axis=1, keepdims=True), 1e-12)
        total = unit.sum(0)
        out["pair_baseline"] = float((total @ total - m) / (m * (m - 1)))
        rng = np.random.default_rng(seed)
        draws = np.array([rng.choice(m, size=n, replace=False) for _ in range(n_random)])
        sums = unit[draws].sum(1)
        rand = ((sums**2).sum(1) - n) / (n * (n - 1))
        out.update(random_mean=float(rand.mean()), random_std=float(rand.std()),
                   percentile=float(100 * np.mean(rand < value)), n_random=n_random)
    return out


def pair_table(sim: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Every pair of playlist songs with its similarity, most similar first."""
    i, j = np.triu_indices(len(labels), k=1)
    df = pd.DataFrame({"song": [labels[a] for a in i], "other": [labels[b] for b in j], "similarity": sim[i, j].round(3)})
    return df.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)


def _describe_difference(row: pd.Series, others: pd.DataFrame, z_row: pd.Series, z_others: pd.DataFrame, n: int = 3) -> str:
    """The descriptors on which one song differs most from the others' median, worded."""
    if z_others.empty:
        return ""
    diff = (z_row - z_others.median()).drop(labels=["pulse"], errors="ignore")
    parts = []
    for name in diff.abs().sort_values(ascending=False).index[:n]:
        if abs(diff[name]) < 1.0:
            break
        term = TERM[name]
        word = term.high if diff[name] > 0 else term.low
        if name == "mode":
            major = int((others["mode"] == "major").sum())
            parts.append(f"{row['mode']} ({row['key']}) where {major} of {len(others)} others are major")
            continue
        mine, theirs = row[term.column], others[term.column].median()
        unit = {"tempo": " BPM", "loudness": " dBFS", "onsets": " onsets/s", "brightness": " Hz",
                "tonality": "", "dynamics": " dB"}.get(name, "")
        fmt = "{:.2f}" if name in ("tonality", "onsets") else "{:.0f}"
        parts.append(f"{word} ({fmt.format(mine)}{unit} vs median {fmt.format(theirs)}{unit})")
    return "; ".join(parts)


OUTLIER_PERCENTILE = 10.0
"""A song is an outlier when it fits the playlist worse than this share (%) of catalogue songs."""
MIN_CATALOGUE_FOR_FENCE = 20


def outlier_fence(sim: np.ndarray, fit_outside: np.ndarray) -> tuple[float, str]:
    """The mean-similarity value below which a playlist song is an outlier, and how it was set.

    With at least :data:`MIN_CATALOGUE_FOR_FENCE` catalogue songs outside the
    playlist: the 10th percentile of their mean similarity to the playlist's
    songs (an outlier fits the playlist worse than 90 % of the catalogue
    does). Otherwise: the playlist median minus 2.5 robust standard
    deviations (at least 0.15).
    """
    n = len(sim)
    others_mean = (sim.sum(1) - np.diag(sim)) / max(n - 1, 1)
    if len(fit_outside) >= MIN_CATALOGUE_FOR_FENCE:
        fence = float(np.percentile(fit_outside, OUTLIER_PERCENTILE))
        return fence, f"lower than {100 - OUTLIER_PERCENTILE:.0f}% of catalogue songs outside the playlist are ({fence:.2f})"
    med = float(np.median(others_mean))
    mad = float(np.median(np.abs(others_mean - med))) * 1.4826
    fence = med - max(2.5 * mad, 0.15)
    return fence, f"far below the playlist median {med:.2f} (outlier below {fence:.2f})"


def _add_outliers(tracks: pd.DataFrame, sim: np.ndarray, labels: Sequence[str], fit_outside: np.ndarray) -> pd.DataFrame:
    """Mean similarity to the others, closest other song, outlier flag and why."""
    n = len(tracks)
    out = tracks.copy()
    others_mean = (sim.sum(1) - np.diag(sim)) / max(n - 1, 1)
    masked = sim.copy()
    np.fill_diagonal(masked, -np.inf)
    closest = masked.argmax(1)
    out["mean_similarity"] = others_mean.round(3)
    out["closest"] = [labels[c] for c in closest]
    out["closest_similarity"] = masked[np.arange(n), closest].round(3)
    out["outlier"] = False
    out["outlier_why"] = ""
    out.attrs["outlier_rule"] = ""
    if n < 4:
        return out
    fence, rule = outlier_fence(sim, fit_outside)
    out.attrs["outlier_rule"] = rule
    has_desc = "tempo_bpm" in out and out["tempo_bpm"].notna().all()
    z = term_scores(out) if has_desc else None
    for i in np.flatnonzero(others_mean < fence):
        why = (f"mean similarity to the others {others_mean[i]:.2f}, {rule}; playlist median "
               f"{np.median(others_mean):.2f}; closest: {labels[closest[i]]} ({masked[i, closest[i]]:.2f})")
        if z is not None:
            rest = np.arange(n) != i
            diff = _describe_difference(out.iloc[i], out[rest], z.iloc[i], z[rest])
            if diff:
                why += f"; stands out as {diff}"
        out.iloc[i, out.columns.get_loc("outlier")] = True
        out.iloc[i, out.columns.get_loc("outlier_why")] = why
    return out


def transition_costs(sim: np.ndarray, arousal: np.ndarray | None) -> np.ndarray:
    """Cost of playing song ``j`` right after ``i``: ``1 - cos + 0.5 |arousal_i - arousal_j|``."""
    cost = 1.0 - np.asarray(sim, dtype=np.float64)
    if arousal is not None and np.isfinite(arousal).all():
        cost = cost + TRANSITION_AROUSAL_WEIGHT * np.abs(arousal[:, None] - arousal[None, :])
    return cost


def best_path(cost: np.ndarray, start: int = 0, max_passes: int = 50) -> list[int]:
    """An open path through every song from ``start`` with a low total cost.

    Greedy nearest neighbour from ``start``, then 2-opt moves (reversing a
    stretch of the path) while any lowers the total.
    """
    n = len(cost)
    path, left = [start], set(range(n)) - {start}
    while left:
        nxt = min(left, key=lambda j: cost[path[-1], j])
        path.append(nxt)
        left.remove(nxt)

    def total(p: Sequence[int]) -> float:
        return float(sum(cost[a, b] for a, b in zip(p[:-1], p[1:])))

    best = total(path)
    for _ in range(max_passes):
        improved = False
        for i in range(1, n - 1):
            for j in range(i + 1, n):
                cand = path[:i] + path[i : j + 1][::-1] + path[j + 1 :]
                c = total(cand)
                if c < best - 1e-12:
                    path, best, improved = cand, c, True
        if not improved:
            break
    return path


def suggest_order(tracks: pd.DataFrame, sim: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """A smoother running order, keeping the current opener.

    Returns
    -------
    (DataFrame, dict)
        The order (``position``, ``was``, ``title``, ``similarity_to_previous``,
        ``tempo_bpm``, ``arousal``, ``mood``) and statistics comparing the
        current and suggested orders (mean and lowest similarity between
        consecutive songs, total transition cost).
    """
    arousal = tracks["arousal"].to_numpy(dtype=float) if "arousal" in tracks else None
    cost = transition_costs(sim, arousal)
    path = best_path(cost, start=0)
    current = list(range(len(tracks)))

    def stats(p: list[int]) -> dict:
        steps = [sim[a, b] for a, b in zip(p[:-1], p[1:])]
        return dict(mean_similarity=float(np.mean(steps)), lowest_similarity=float(np.min(steps)),
                    cost=float(sum(cost[a, b] for a, b in zip(p[:-1], p[1:]))))

    rows = []
    for k, i in enumerate(path):
        t = tracks.iloc[i]
        rows.append(dict(position=k + 1, was=int(t["position"]), title=t["title"],
                         similarity_to_previous=round(float(sim[path[k - 1], i]), 3) if k else np.nan,
                         tempo_bpm=t.get("tempo_bpm", np.nan), arousal=t.get("arousal", np.nan), mood=t.get("mood", "")))
    return pd.DataFrame(rows), {"current": stats(current), "suggested": stats(path), "changed": path != current}


def suggest_additions(
    vecs: np.ndarray,
    labels: Sequence[str],
    cat_tracks: pd.DataFrame,
    cat_vecs: np.ndarray,
    exclude_hashes: set[str],
    n: int,
    cat_desc: pd.DataFrame,
    tag_pct: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Catalogue songs (not already in the playlist) most similar to its songs on average.

    Ranking by the mean cosine similarity to the playlist's songs is the same
    as ranking by the cosine to the playlist's (normalised) mean vector; the
    mean is shown because it compares directly with the playlist songs' own
    ``mean_similarity``.

    Returns
    -------
    DataFrame
        ``rank, id, title, similarity`` (mean similarity to the playlist's
        songs), ``closest`` playlist song and ``closest_similarity``,
        ``tempo_bpm``, ``mood``, ``path``.
    """
    cols = ["rank", "id", "title", "similarity", "closest", "closest_similarity", "tempo_bpm", "mood", "path"]
    keep = np.array([h not in exclude_hashes for h in cat_tracks["content_hash"]], dtype=bool)
    if n <= 0 or not keep.any():
        return pd.DataFrame(columns=cols)
    cand_idx = np.flatnonzero(keep)
    score = cosine_matrix(cat_vecs[cand_idx], vecs).mean(1)
    order = np.argsort(-score, kind="stable")[:n]
    top = cand_idx[order]
    to_list = cosine_matrix(cat_vecs[top], vecs)
    chosen = cat_tracks.iloc[top]
    desc = cat_desc.loc[chosen.index]
    moods = song_moods(desc, tag_pct) if len(desc) else pd.DataFrame(columns=["mood"])
    rows = []
    for r, (i, tid) in enumerate(zip(top, chosen.index)):
        best = int(to_list[r].argmax())
        rows.append(dict(rank=r + 1, id=int(tid), title=chosen.at[tid, "title"],
                         similarity=round(float(score[order[r]]), 3), closest=labels[best],
                         closest_similarity=round(float(to_list[r, best]), 3),
                         tempo_bpm=desc.at[tid, "tempo_bpm"] if tid in desc.index else np.nan,
                         mood=moods.at[tid, "mood"] if tid in moods.index else "", path=chosen.at[tid, "path"]))
    return pd.DataFrame(rows, columns=cols)


def catalogue_map(cat_tracks: pd.DataFrame, cat_vecs: np.ndarray, positions: dict[int, int], addition_ids: Sequence[int], seed: int = 0) -> pd.DataFrame:
    """2-D PCA coordinates of every catalogue song, with its role
    (``playlist`` with its playlist position from ``positions`` (id -> position),
    ``suggested`` or ``catalogue``)."""
    from sklearn.decomposition import PCA

    cols = ["id", "title", "x", "y", "role", "position"]
    if len(cat_vecs) < 3:
        return pd.DataFrame(columns=cols)
    pca = PCA(n_components=2, random_state=seed)
    xy = pca.fit_transform(np.asarray(cat_vecs, dtype=np.float64))
    pos = {int(t): int(p) for t, p in positions.items()}
    adds = set(int(a) for a in addition_ids)
    roles = ["playlist" if int(t) in pos else "suggested" if int(t) in adds else "catalogue" for t in cat_tracks.index]
    df = pd.DataFrame({"id": cat_tracks.index.astype(int), "title": cat_tracks["title"].to_numpy(), "x": xy[:, 0],
                       "y": xy[:, 1], "role": roles,
                       "position": [pos.get(int(t), np.nan) for t in cat_tracks.index]}, columns=cols)
    df.attrs["explained_variance"] = [float(v) for v in pca.explained_variance_ratio_]
    return df


def cohesion_sentence(c: dict) -> str:
    """One sentence putting the cohesion score in context."""
    s = f"Mean similarity of all {c['n'] * (c['n'] - 1) // 2} pairs: {c['cohesion']:.2f}"
    if c["n_random"]:
        s += (f"; random playlists of {c['n']} songs from this catalogue score {c['random_mean']:.2f} ± "
              f"{c['random_std']:.2f}, so this playlist is more cohesive than {c['percentile']:.0f}% of them.")
    else:
        s += " (the catalogue is too small for a random comparison)."
    return s


__all__ = [
    "PlaylistReport", "build_report", "cohesion_stats", "cohesion_sentence", "pair_table", "outlier_fence",
    "transition_costs", "best_path", "suggest_order", "suggest_additions", "catalogue_map",
]
