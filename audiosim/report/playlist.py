"""Playlist reports: how a playlist hangs together, and how to make it better.

:func:`build_report` reads a playlist (M3U, text or CSV list of paths or
catalogue ids, or a folder), finds its tracks in the catalogue (ingesting
files that are not there yet, or listing them as missing), and computes:

- **cohesion**: the mean cosine similarity of all pairs of song vectors,
  compared with random playlists of the same size drawn from the catalogue;
- the most and least similar **pairs** and a similarity **heatmap**;
- **outliers**: songs that fit the playlist worse than 90 % of the
  catalogue's other songs do (mean similarity to the playlist's songs),
  with the descriptors that set them apart;
- a 2-D **map** of the catalogue (PCA of song vectors), playlist highlighted;
- the **mood mix** and the **tempo/energy arc** in playlist order;
- a **suggested order** with smoother transitions (greedy nearest-neighbour
  chain from the current opener, improved by 2-opt);
- **suggested additions**: catalogue songs with the highest mean similarity
  to the playlist's songs.

:func:`write_report` writes ``<home>/reports/<name>/report.html`` (one
self-contained file, figures embedded as PNG) and the tables as CSV beside
it; :func:`summary_markdown` gives the same summary in Markdown (the
Prefect flow ``flows/report.py`` publishes it as artifacts).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from audiosim.config import DescriptorConfig, SimilarityConfig
from audiosim.ingest.ingest import (
    LIST_EXTENSIONS,
    IngestResult,
    discover,
    read_path_list,
)
from audiosim.similarity.descriptors import descriptor_table
from audiosim.similarity.mood import TERM, song_moods, term_scores
from audiosim.similarity.vectors import (
    catalogue_vectors,
    cosine_matrix,
    load_similarity_model,
    model_digest,
)
from audiosim.store.atomic import atomic_write_text
from audiosim.store.catalog import Catalog, normalise_path
from audiosim.store.home import DataHome

CSV_ID_COLUMNS = ("id", "track_id", "track")
CSV_PATH_COLUMNS = ("path", "file", "filename", "location")
TRANSITION_AROUSAL_WEIGHT = 0.5
"""Weight of the energy (arousal) jump in the transition cost of the suggested order."""


# --------------------------------------------------------------------------
# Reading and resolving a playlist
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaylistItem:
    """One line of a playlist: a path or a catalogue id."""

    entry: str
    """As written in the playlist."""
    path: Path | None = None
    track_id: int | None = None


def read_playlist(source: str | Path) -> list[PlaylistItem]:
    """Read the entries of a playlist, in order.

    Parameters
    ----------
    source : str or Path
        - a folder: its audio files (recursively), sorted by path;
        - ``.m3u``/``.m3u8``/``.txt``/``.lst``/``.list``: one entry per line
          (``#`` lines skipped, relative paths from the list's folder); a
          line that is a number and not an existing file is a catalogue id;
        - ``.csv``: the column named ``path``/``file``/``filename``/
          ``location`` or ``id``/``track_id``/``track`` (else the first),
          numbers read as catalogue ids.

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    ValueError
        If the file is not a readable playlist.
    """
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such playlist file or folder")
    if src.is_dir():
        return [PlaylistItem(str(p), path=p) for p in discover([src])]
    if src.suffix.lower() == ".csv":
        return _read_csv(src)
    if src.suffix.lower() in LIST_EXTENSIONS:
        items = []
        for p in read_path_list(src):
            if p.parent == src.parent and p.name.isdigit() and not p.exists():
                items.append(PlaylistItem(p.name, track_id=int(p.name)))
            else:
                items.append(PlaylistItem(str(p), path=p))
        return items
    raise ValueError(f"{src}: not a playlist (expected a folder, .m3u, .m3u8, .txt, .lst, .list or .csv)")


def _read_csv(src: Path) -> list[PlaylistItem]:
    try:
        df = pd.read_csv(src, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"{src}: unreadable CSV playlist ({e})") from e
    if df.columns.empty:
        raise ValueError(f"{src}: empty CSV playlist")
    lower = {c.lower().strip(): c for c in df.columns}
    col = next((lower[c] for c in (*CSV_PATH_COLUMNS, *CSV_ID_COLUMNS) if c in lower), df.columns[0])
    items = []
    for value in df[col].astype(str).str.strip():
        if not value:
            continue
        p = Path(value).expanduser()
        p = p if p.is_absolute() else src.parent / p
        if value.isdigit() and not p.exists():
            items.append(PlaylistItem(value, track_id=int(value)))
        else:
            items.append(PlaylistItem(value, path=p))
    return items


def uncatalogued(items: Sequence[PlaylistItem], home: "str | Path | DataHome | None" = None) -> list[Path]:
    """Existing playlist files that have no ``ok`` catalogue row (what to ingest first)."""
    dh = DataHome.resolve(home)
    out = []
    with Catalog(dh.catalog_path) as cat:
        for it in items:
            if it.path is not None and Path(it.path).is_file():
                t = cat.get_by_path(it.path)
                if t is None or not t.ok:
                    out.append(Path(normalise_path(it.path)))
    return out


def resolve_playlist(
    items: Sequence[PlaylistItem],
    home: "str | Path | DataHome | None" = None,
    ingest: bool = True,
    ingest_fn: Callable[[list[Path]], Sequence[IngestResult]] | None = None,
) -> pd.DataFrame:
    """Find every playlist entry in the catalogue.

    Files not catalogued yet (or catalogued as failed) are ingested first
    when ``ingest`` is true, with ``ingest_fn`` (default
    :func:`audiosim.ingest.ingest.ingest_many`).

    Returns
    -------
    DataFrame
        One row per entry: ``position`` (1-based, playlist order), ``entry``,
        ``id`` (nullable), ``path``, ``status`` (``ok``, ``ingested``,
        ``missing``, ``failed`` or ``duplicate``) and ``detail``.
    """
    dh = DataHome.resolve(home)
    rows: list[dict] = []
    to_ingest: list[int] = []
    with Catalog(dh.catalog_path) as cat:
        for pos, it in enumerate(items, start=1):
            row = dict(position=pos, entry=it.entry, id=None, path=None, status="missing", detail="")
            if it.track_id is not None:
                t = cat.get(it.track_id)
                if t is None:
                    row["detail"] = f"no track with id {it.track_id} in the catalogue"
                else:
                    row.update(id=t.id, path=t.path, status="ok" if t.ok else "failed",
                               detail="" if t.ok else f"{t.reason}: {t.detail or ''}".strip())
            else:
                path = normalise_path(it.path)  # type: ignore[arg-type]
                row["path"] = path
                t = cat.get_by_path(path)
                if t is not None and t.ok:
                    row.update(id=t.id, status="ok")
                elif not Path(path).is_file():
                    row["detail"] = "no such file"
                elif ingest:
                    to_ingest.append(len(rows))
                else:
                    row["detail"] = "not in the catalogue (run `audiosim ingest` or allow ingesting)"
                    if t is not None:
                        row.update(id=t.id, status="failed", detail=f"{t.reason}: {t.detail or ''}".strip())
            rows.append(row)
    if to_ingest:
        paths = [Path(rows[i]["path"]) for i in to_ingest]
        if ingest_fn is None:
            from audiosim.ingest.ingest import ingest_many

            results = ingest_many(paths, dh)
        else:
            results = ingest_fn(paths)
        by_path = {r.path: r for r in results}
        for i in to_ingest:
            r = by_path.get(rows[i]["path"])
            if r is None:
                rows[i]["detail"] = "ingest gave no result"
            elif r.status == "failed":
                rows[i].update(id=r.track_id, status="failed", detail=f"{r.reason}: {r.detail or ''}".strip())
            else:
                rows[i].update(id=r.track_id, status="ingested", detail=f"ingested now ({r.status})")
    seen: dict[int, int] = {}
    for row in rows:
        if row["status"] in ("ok", "ingested") and row["id"] is not None:
            if row["id"] in seen:
                row.update(status="duplicate", detail=f"same track as position {seen[row['id']]}")
            else:
                seen[row["id"]] = row["position"]
    df = pd.DataFrame(rows, columns=["position", "entry", "id", "path", "status", "detail"])
    df["id"] = df["id"].astype("Int64")
    return df


# --------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------


@dataclass
class PlaylistReport:
    """Everything a playlist report shows (tables as DataFrames, figures as PNG bytes)."""

    name: str
    source: str
    home: str
    created: str
    model_digest: str
    entries: pd.DataFrame
    """Every playlist entry with its status (see :func:`resolve_playlist`)."""
    tracks: pd.DataFrame
    """Analysed tracks in playlist order: catalogue fields, descriptors, mood,
    ``mean_similarity``, ``closest``, ``outlier`` and ``outlier_why``."""
    similarity: pd.DataFrame
    """Cosine similarity of every pair of analysed tracks (labels ``"3. title"``)."""
    pairs: pd.DataFrame
    """All pairs, most similar first."""
    cohesion: dict
    order: pd.DataFrame
    """Suggested order: ``position``, ``was``, title, similarity to the previous song ..."""
    order_stats: dict
    additions: pd.DataFrame
    catalogue_map: pd.DataFrame
    """2-D PCA coordinates of every catalogue song (``x``, ``y``), ``role``."""
    descriptor_errors: dict[int, str] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)

    @property
    def missing(self) -> pd.DataFrame:
        """Entries that could not be analysed (missing, failed or duplicate)."""
        return self.entries[~self.entries["status"].isin(["ok", "ingested"])]


def playlist_name(source: str | Path) -> str:
    """A file-system-safe report name from the playlist's file or folder name."""
    stem = Path(source).stem if Path(source).is_file() else Path(source).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "playlist"


def build_report(
    playlist: str | Path,
    home: "str | Path | DataHome | None" = None,
    model=None,
    ingest: bool = True,
    ingest_fn: Callable[[list[Path]], Sequence[IngestResult]] | None = None,
    n_additions: int = 10,
    sim_cfg: SimilarityConfig = SimilarityConfig(),
    descriptor_cfg: DescriptorConfig = DescriptorConfig(),
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    figures: bool = True,
    seed: int = 0,
) -> PlaylistReport:
    """Analyse a playlist against the catalogue of a data home.

    Parameters
    ----------
    playlist : str or Path
        See :func:`read_playlist`.
    home : data home
    model : Encoder, optional
        Song-similarity encoder (default :func:`load_similarity_model`).
    ingest : bool
        Ingest playlist files that are not catalogued yet; otherwise they are
        reported as missing.
    ingest_fn : callable, optional
        How to ingest (the Prefect flow passes its ingest sub-flow).
    n_additions : int
        Number of suggested additions.
    progress : bool
        Progress bars (stderr) for song vectors and descriptors.
    log : callable, optional
        Receives short progress messages.
    figures : bool
        Draw the figures (skip for table-only use).

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
    entries = resolve_playlist(items, dh, ingest=ingest, ingest_fn=ingest_fn)
    model = model or load_similarity_model()
    say("song vectors of the catalogue ...")
    table = catalogue_vectors(dh, model, sim_cfg, progress=progress)
    cat_tracks, cat_vecs = table.tracks, table.vectors
    row_of = {int(t): i for i, t in enumerate(cat_tracks.index)}
    usable = entries[entries["status"].isin(["ok", "ingested"])]
    usable = usable[[int(t) in row_of for t in usable["id"]]]
    if len(usable) < 2:
        raise ValueError(
            f"{playlist}: only {len(usable)} of {len(entries)} entries could be analysed; a report needs two "
            "(see the missing entries: " + "; ".join(f"{r.entry}: {r.status} {r.detail}" for r in entries.itertuples() if r.status not in ("ok", "ingested"))[:500] + ")"
        )
    ids = [int(t) for t in usable["id"]]
    vecs = cat_vecs[[row_of[t] for t in ids]]
    say("descriptors ...")
    errors: dict[int, str] = {}
    desc = descriptor_table(cat_tracks.loc[ids], dh, descriptor_cfg, progress=progress,
                            on_error=lambda tid, msg: errors.__setitem__(tid, msg))
    tracks = _track_table(usable, cat_tracks, desc)
    labels = [f"{p}. {_short(t)}" for p, t in zip(tracks["position"], tracks["title"])]
    sim = cosine_matrix(vecs)
    sim_df = pd.DataFrame(sim, index=labels, columns=labels)
    cohesion = cohesion_stats(vecs, cat_vecs, seed=seed)
    outside = np.array([h not in set(cat_tracks.loc[ids, "content_hash"]) for h in cat_tracks["content_hash"]])
    fit_outside = cosine_matrix(cat_vecs[outside], vecs).mean(1) if outside.any() else np.zeros(0)
    tracks = _add_outliers(tracks, sim, labels, fit_outside)
    order, order_stats = suggest_order(tracks, sim)
    additions = suggest_additions(vecs, labels, cat_tracks, cat_vecs, set(cat_tracks.loc[ids, "content_hash"]),
                                  n_additions, dh, descriptor_cfg)
    cmap = catalogue_map(cat_tracks, cat_vecs, dict(zip(ids, map(int, tracks["position"]))),
                         list(additions["id"]) if len(additions) else [], seed)
    report = PlaylistReport(
        name=playlist_name(playlist), source=str(playlist), home=str(dh.root),
        created=time.strftime("%Y-%m-%d %H:%M"), model_digest=model_digest(model),
        entries=entries, tracks=tracks, similarity=sim_df, pairs=pair_table(sim, labels), cohesion=cohesion,
        order=order, order_stats=order_stats, additions=additions, catalogue_map=cmap, descriptor_errors=errors,
    )
    if figures:
        from audiosim.report.figures import draw_all

        report.figures = draw_all(report)
    return report


def _short(title: object, n: int = 32) -> str:
    t = str(title) if title is not None and title == title else "?"
    return t if len(t) <= n else t[: n - 1] + "…"


def _track_table(usable: pd.DataFrame, cat_tracks: pd.DataFrame, desc: pd.DataFrame) -> pd.DataFrame:
    ids = [int(t) for t in usable["id"]]
    base = pd.DataFrame({"position": usable["position"].to_numpy(), "id": ids})
    info = cat_tracks.loc[ids, ["title", "artist", "duration", "path"]].reset_index(drop=True)
    out = pd.concat([base, info], axis=1)
    if len(desc):
        moods = song_moods(desc)
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
    home: DataHome,
    descriptor_cfg: DescriptorConfig,
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
    desc = descriptor_table(chosen, home, descriptor_cfg)
    moods = song_moods(desc) if len(desc) else pd.DataFrame(columns=["mood"])
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


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def cohesion_sentence(c: dict) -> str:
    """One sentence putting the cohesion score in context."""
    s = f"Mean similarity of all {c['n'] * (c['n'] - 1) // 2} pairs: {c['cohesion']:.2f}"
    if c["n_random"]:
        s += (f"; random playlists of {c['n']} songs from this catalogue score {c['random_mean']:.2f} ± "
              f"{c['random_std']:.2f}, so this playlist is more cohesive than {c['percentile']:.0f}% of them.")
    else:
        s += " (the catalogue is too small for a random comparison)."
    return s


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (no index; ``|`` escaped)."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.3g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def summary_markdown(report: PlaylistReport, max_rows: int = 10) -> str:
    """The report's summary as Markdown (for Prefect artifacts and terminals)."""
    r = report
    t = r.tracks
    lines = [f"# Playlist report: {r.name}", "",
             f"{len(t)} of {len(r.entries)} entries analysed; data home `{r.home}`; model `{r.model_digest}`.", "",
             f"**Cohesion {r.cohesion['cohesion']:.2f}.** {cohesion_sentence(r.cohesion)}", ""]
    if len(r.missing):
        lines += [f"## Not analysed ({len(r.missing)})", "",
                  markdown_table(r.missing[["position", "entry", "status", "detail"]]), ""]
    out = t[t["outlier"]]
    lines += [f"## Outliers ({len(out)})", ""]
    lines += ([f"- **{p}. {ti}**: {w}" for p, ti, w in zip(out["position"], out["title"], out["outlier_why"])]
              if len(out) else ["None: every song fits the playlist better than most catalogue songs do."])
    if "mood" in t:
        mix = t["mood"].value_counts()
        lines += ["", "## Mood mix", "", ", ".join(f"{m}: {k}" for m, k in mix.items())]
    s = r.order_stats
    lines += ["", "## Suggested order", "",
              f"Mean similarity between consecutive songs {s['current']['mean_similarity']:.2f} → "
              f"{s['suggested']['mean_similarity']:.2f}; weakest transition {s['current']['lowest_similarity']:.2f} → "
              f"{s['suggested']['lowest_similarity']:.2f}.", "",
              markdown_table(r.order[["position", "was", "title", "similarity_to_previous", "mood"]].head(max_rows * 3))]
    if len(r.additions):
        lines += ["", "## Suggested additions", "",
                  markdown_table(r.additions[["rank", "id", "title", "similarity", "closest", "mood"]].head(max_rows))]
    return "\n".join(lines) + "\n"


def write_report(report: PlaylistReport, out_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` and the CSV tables; returns the HTML path.

    Parameters
    ----------
    report : PlaylistReport
    out_dir : str or Path, optional
        Default ``<home>/reports/<name>/``.
    """
    from audiosim.report.html import render_html

    out = Path(out_dir) if out_dir is not None else DataHome.resolve(report.home).reports_dir / report.name
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "tracks.csv": report.tracks,
        "pairs.csv": report.pairs,
        "similarity.csv": report.similarity,
        "suggested_order.csv": report.order,
        "suggested_additions.csv": report.additions,
        "entries.csv": report.entries,
        "catalogue_map.csv": report.catalogue_map,
    }
    for name, df in tables.items():
        atomic_write_text(out / name, df.to_csv(index=name == "similarity.csv"))
    atomic_write_text(out / "summary.md", summary_markdown(report))
    html = out / "report.html"
    atomic_write_text(html, render_html(report))
    return html


def fmt_duration(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``."""
    if seconds != seconds:
        return ""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


__all__ = [
    "PlaylistItem", "PlaylistReport", "read_playlist", "resolve_playlist", "build_report", "write_report",
    "summary_markdown", "cohesion_stats", "suggest_order", "suggest_additions", "best_path",
]
