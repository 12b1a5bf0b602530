"""Valence, arousal, mood labels and mood groups, each explained by descriptors.

From descriptors to numbers
---------------------------
Each descriptor (:mod:`audiosim.similarity.descriptors`) is turned into a score ``z``
against a fixed reference (typical values for produced music, not the
catalogue's own spread, so a song's score does not change when other songs
are added):

============  ======================  ==========  ========  =====================
term          descriptor              centre      scale     reads as (z > 0 / < 0)
============  ======================  ==========  ========  =====================
tempo         ``tempo_bpm``           110 BPM     30 BPM    fast / slow
loudness      ``loudness_db``         -18 dBFS    5 dB      loud / quiet
onsets        ``onset_rate``          3.5 /s      2 /s      busy / sparse
brightness    ``centroid_hz``         1200 Hz     1 octave  bright / dark
pulse         ``pulse_clarity``       0.65        0.15      steady / loose pulse
mode          ``mode_clarity``        0           0.1       major / minor
tonality      ``key_strength``        0.65        0.12      tonal / chromatic
dynamics      ``dynamic_range_db``    4 dB        2 dB      wide / narrow range
============  ======================  ==========  ========  =====================

(brightness is ``log2(centroid / 1200 Hz)``; every ``z`` is clipped to
[-3, 3]; within ±0.5 a term reads as moderate.) Then, with weights after
the cues most consistently found in music-emotion research (Gabrielsson & Lindström 2010; Eerola et al. 2013:
arousal follows tempo, loudness, event density and brightness; valence
follows mode, consonance, and to a lesser degree tempo and brightness)::

    arousal = tanh(0.35 z_tempo + 0.30 z_loudness + 0.25 z_onsets + 0.10 z_brightness)
    valence = tanh(0.40 z_mode  + 0.35 z_tonality + 0.15 z_tempo  + 0.10 z_brightness)

both in (-1, 1).

Mood labels
-----------
A song's mood is the nearest prototype in the valence-arousal plane
(:data:`PROTOTYPES`): energetic (+0.45, +0.80), happy (+0.60, +0.30),
tense (-0.50, +0.60), calm (+0.35, -0.65), melancholic (-0.45, -0.50).
Its explanation lists the terms that moved it most, with their values,
e.g. ``fast (152 BPM), busy (7.7 onsets/s), loud (-12 dBFS), major (D) ->
energetic``.

Groups
------
:func:`group_songs` clusters songs with k-means on the descriptor scores
(valence and arousal counted twice) joined with the first principal
components of the song embeddings (``MoodConfig.embedding_weight`` of the
total variance: the embeddings carry timbre, so a large weight would make
groups follow timbre rather than mood). The number of groups is
chosen by silhouette score between ``min_groups`` (3) and ``max_groups``
(8) unless given. Each group is named by the prototype nearest its mean
valence and arousal and explained by its median descriptors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from audiosim.config import DescriptorConfig, MoodConfig, SimilarityConfig
from audiosim.fingerprint.model import Encoder
from audiosim.similarity.descriptors import descriptor_table
from audiosim.similarity.model import load_similarity_model
from audiosim.similarity.vectors import catalogue_vectors
from audiosim.store.home import DataHome

MOODS: tuple[str, ...] = ("energetic", "happy", "tense", "calm", "melancholic")

PROTOTYPES: dict[str, tuple[float, float]] = {
    "energetic": (0.45, 0.80),
    "happy": (0.60, 0.30),
    "tense": (-0.50, 0.60),
    "calm": (0.35, -0.65),
    "melancholic": (-0.45, -0.50),
}
"""(valence, arousal) of each mood label."""


@dataclass(frozen=True)
class Term:
    """How one descriptor becomes a score and a phrase."""

    name: str
    column: str
    centre: float
    scale: float
    high: str
    low: str
    log2: bool = False
    mid: str = ""
    """Word for ``|z| < 0.5`` (empty: always ``high`` or ``low``)."""

    def score(self, values: pd.Series | np.ndarray) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        if self.log2:
            x = np.log2(np.maximum(x, 1.0) / self.centre)
            return np.clip(x / self.scale, -3, 3)
        return np.clip((x - self.centre) / self.scale, -3, 3)


TERMS: tuple[Term, ...] = (
    Term("tempo", "tempo_bpm", 110.0, 30.0, "fast", "slow", mid="moderate tempo"),
    Term("loudness", "loudness_db", -18.0, 5.0, "loud", "quiet", mid="medium loudness"),
    Term("onsets", "onset_rate", 3.5, 2.0, "busy", "sparse", mid="moderately busy"),
    Term("brightness", "centroid_hz", 1200.0, 1.0, "bright", "dark", log2=True, mid="medium brightness"),
    Term("pulse", "pulse_clarity", 0.65, 0.15, "steady pulse", "loose pulse", mid="moderate pulse"),
    Term("mode", "mode_clarity", 0.0, 0.1, "major", "minor"),
    Term("tonality", "key_strength", 0.65, 0.12, "tonal", "chromatic", mid="moderately tonal"),
    Term("dynamics", "dynamic_range_db", 4.0, 2.0, "wide dynamics", "even level", mid="moderate dynamics"),
)
TERM = {t.name: t for t in TERMS}

AROUSAL_WEIGHTS = {"tempo": 0.35, "loudness": 0.30, "onsets": 0.25, "brightness": 0.10}
VALENCE_WEIGHTS = {"mode": 0.40, "tonality": 0.35, "tempo": 0.15, "brightness": 0.10}


# --------------------------------------------------------------------------
# Per song
# --------------------------------------------------------------------------


def term_scores(desc: pd.DataFrame) -> pd.DataFrame:
    """The ``z`` score of every :data:`TERMS` entry for each row of a descriptor table."""
    return pd.DataFrame({t.name: t.score(desc[t.column]) for t in TERMS}, index=desc.index)


def valence_arousal(desc: pd.DataFrame) -> pd.DataFrame:
    """Valence and arousal in (-1, 1) for each row of a descriptor table (formulae above)."""
    z = term_scores(desc)
    arousal = np.tanh(sum(w * z[k] for k, w in AROUSAL_WEIGHTS.items()))
    valence = np.tanh(sum(w * z[k] for k, w in VALENCE_WEIGHTS.items()))
    return pd.DataFrame({"valence": valence, "arousal": arousal}, index=desc.index)


def mood_label(valence: float, arousal: float) -> str:
    """The :data:`PROTOTYPES` label nearest to a (valence, arousal) point."""
    return min(PROTOTYPES, key=lambda m: (PROTOTYPES[m][0] - valence) ** 2 + (PROTOTYPES[m][1] - arousal) ** 2)


def _value_text(term: Term, row: pd.Series) -> str:
    v = row[term.column]
    if term.name == "tempo":
        return f"{v:.0f} BPM"
    if term.name == "loudness":
        return f"{v:.0f} dBFS"
    if term.name == "onsets":
        return f"{v:.1f} onsets/s"
    if term.name == "brightness":
        return f"centroid {v / 1000:.1f} kHz" if v >= 1000 else f"centroid {v:.0f} Hz"
    if term.name == "mode":
        return str(row.get("key", ""))
    if term.name == "tonality":
        return f"key strength {v:.2f}"
    if term.name == "dynamics":
        return f"{v:.0f} dB range"
    return f"{v:.2f}"


def phrase(term: Term, z: float, row: pd.Series) -> str:
    """``"fast (152 BPM)"``: the word for the direction of ``z`` and the value."""
    word = term.mid if term.mid and abs(z) < 0.5 else term.high if z >= 0 else term.low
    return f"{word} ({_value_text(term, row)})"


def contributions(z: pd.Series) -> pd.Series:
    """How much each term moved valence plus arousal (absolute weighted score)."""
    out = {}
    for name in {**AROUSAL_WEIGHTS, **VALENCE_WEIGHTS}:
        out[name] = abs(z[name]) * (AROUSAL_WEIGHTS.get(name, 0.0) + VALENCE_WEIGHTS.get(name, 0.0))
    return pd.Series(out).sort_values(ascending=False)


def explain(row: pd.Series, z: pd.Series, label: str, n_terms: int = 4) -> str:
    """Why a song (or group median) got ``label``: its strongest terms, worded.

    The mode term is always included (it decides valence more than anything).
    """
    top = [k for k in contributions(z).index if k != "mode"][: n_terms - 1]
    names = top[:1] + ["mode"] + top[1:] if top else ["mode"]
    names = sorted(names, key=lambda k: -contributions(z)[k])
    return ", ".join(phrase(TERM[k], float(z[k]), row) for k in names) + f" → {label}"


def song_moods(desc: pd.DataFrame) -> pd.DataFrame:
    """Valence, arousal, mood label and its explanation for each song.

    Parameters
    ----------
    desc : DataFrame
        Descriptor table (:func:`audiosim.similarity.descriptors.descriptor_table`).

    Returns
    -------
    DataFrame
        Same index; columns ``valence, arousal, mood, why``.
    """
    if desc.empty:
        return pd.DataFrame(columns=["valence", "arousal", "mood", "why"], index=desc.index)
    va = valence_arousal(desc)
    z = term_scores(desc)
    moods = [mood_label(v, a) for v, a in zip(va["valence"], va["arousal"])]
    why = [explain(desc.loc[i], z.loc[i], m) for i, m in zip(desc.index, moods)]
    out = va.round(3)
    out["mood"] = moods
    out["why"] = why
    return out


# --------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------


@dataclass
class MoodGroups:
    """Result of :func:`group_songs`."""

    songs: pd.DataFrame
    """Per song: ``group`` (int), ``group_name``, ``valence``, ``arousal``, ``mood``, ``why``."""
    groups: pd.DataFrame
    """Per group (index = group number): ``name``, ``songs``, ``valence``, ``arousal``,
    median descriptors, ``major_share``, ``why``."""
    k: int
    silhouette: float
    """Mean silhouette of the chosen grouping (nan for a single group)."""


def clustering_space(desc: pd.DataFrame, vectors: np.ndarray | None, cfg: MoodConfig = MoodConfig()) -> np.ndarray:
    """The matrix k-means runs on: descriptor scores (+ valence/arousal twice)
    and, when ``vectors`` are given, their principal components scaled to
    ``cfg.embedding_weight`` of the total variance."""
    from sklearn.decomposition import PCA

    z = term_scores(desc)
    va = valence_arousal(desc) * 2.0  # tanh range (-1, 1) -> comparable to z scores
    d = np.hstack([z.to_numpy(), va.to_numpy(), va.to_numpy()])
    if vectors is None or cfg.embedding_weight <= 0 or len(desc) < 3:
        return d
    n_comp = max(1, min(cfg.embedding_components, len(desc) - 1, vectors.shape[1]))
    e = PCA(n_components=n_comp, random_state=cfg.seed).fit_transform(np.asarray(vectors, dtype=np.float64))
    d_var = float(d.var(0).sum()) or 1.0
    e_var = float(e.var(0).sum()) or 1.0
    w = cfg.embedding_weight
    target = d_var * w / max(1e-9, 1.0 - w)
    return np.hstack([d, e * math.sqrt(target / e_var)])


def group_songs(desc: pd.DataFrame, vectors: np.ndarray | None = None, cfg: MoodConfig = MoodConfig()) -> MoodGroups:
    """Cluster songs into mood groups, name and explain each group.

    Parameters
    ----------
    desc : DataFrame
        Descriptor table, one row per song.
    vectors : ndarray, shape (len(desc), dim), optional
        Song vectors in the same row order.
    cfg : MoodConfig

    Returns
    -------
    MoodGroups
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(desc)
    per_song = song_moods(desc)
    if n == 0:
        empty = pd.DataFrame(columns=["name", "songs", "valence", "arousal", "why"])
        return MoodGroups(per_song.assign(group=pd.Series(dtype=int), group_name=pd.Series(dtype=str)), empty, 0, float("nan"))
    x = clustering_space(desc, vectors, cfg)
    if cfg.n_groups:
        ks = [min(cfg.n_groups, n)]
    else:
        top = min(cfg.max_groups, n - 1)
        ks = list(range(min(max(2, cfg.min_groups), top), top + 1)) or [1]
    best_labels, best_k, best_s = np.zeros(n, dtype=int), 1, float("nan")
    for k in ks:
        if k < 2:
            break
        labels = KMeans(n_clusters=k, n_init=20, random_state=cfg.seed).fit_predict(x)
        s = float(silhouette_score(x, labels)) if len(set(labels)) > 1 else -1.0
        if best_k == 1 or s > best_s:
            best_labels, best_k, best_s = labels, k, s
    songs = per_song.copy()
    songs["group"] = best_labels
    groups = describe_groups(desc, songs)
    # renumber groups: largest first
    order = {g: i + 1 for i, g in enumerate(groups.sort_values(["songs", "arousal"], ascending=False).index)}
    songs["group"] = songs["group"].map(order)
    groups.index = groups.index.map(order)
    groups = groups.sort_index()
    groups.index.name = "group"
    songs["group_name"] = songs["group"].map(groups["name"])
    return MoodGroups(songs, groups, best_k, best_s)


def describe_groups(desc: pd.DataFrame, songs: pd.DataFrame) -> pd.DataFrame:
    """Name and explain the groups in ``songs["group"]`` by their median descriptors."""
    rows = {}
    numeric = [t.column for t in TERMS]
    for g, members in songs.groupby("group"):
        d = desc.loc[members.index]
        med = d[numeric].median()
        major = float((d["mode"] == "major").mean())
        n_major = int(round(major * len(d)))
        agree = n_major if med["mode_clarity"] >= 0 else len(d) - n_major  # songs in the mode the median reads as
        med["key"] = f"{agree} of {len(d)} songs" if len(d) > 1 else d["key"].iloc[0]
        v, a = float(members["valence"].mean()), float(members["arousal"].mean())
        name = mood_label(v, a)
        z = term_scores(med.to_frame().T).iloc[0]
        rows[g] = dict(name=name, songs=len(d), valence=round(v, 3), arousal=round(a, 3),
                       **{c: round(float(med[c]), 2) for c in numeric}, major_share=round(major, 2),
                       why=explain(med, z, name))
    groups = pd.DataFrame.from_dict(rows, orient="index")
    return _disambiguate(groups, desc, songs)


def _disambiguate(groups: pd.DataFrame, desc: pd.DataFrame, songs: pd.DataFrame) -> pd.DataFrame:
    """Give groups that share a mood name a qualifier: their most distinctive term."""
    groups = groups.copy()
    for name, same in groups.groupby("name"):
        if len(same) < 2:
            continue
        zs = {g: term_scores(desc.loc[songs.index[songs["group"] == g]]).median() for g in same.index}
        mean_z = pd.DataFrame(zs).T.mean()
        used: set[str] = set()
        for g in same.index:
            diff = (zs[g] - mean_z).drop(labels=list(used), errors="ignore")
            term = diff.abs().idxmax()
            used.add(term)
            word = TERM[term].high if diff[term] >= 0 else TERM[term].low
            groups.loc[g, "name"] = f"{name}, {word}"
    # still equal (e.g. identical groups): number them
    dup = groups["name"].duplicated(keep=False)
    if dup.any():
        counts: dict[str, int] = {}
        for g in groups.index[dup]:
            counts[groups.at[g, "name"]] = counts.get(groups.at[g, "name"], 0) + 1
            groups.loc[g, "name"] = f"{groups.at[g, 'name']} ({counts[groups.at[g, 'name']]})"
    return groups


# --------------------------------------------------------------------------
# The catalogue's moods
# --------------------------------------------------------------------------


def catalogue_moods(
    home: "str | Path | DataHome | None" = None,
    model: Encoder | None = None,
    cfg: MoodConfig = MoodConfig(),
    descriptor_cfg: DescriptorConfig = DescriptorConfig(),
    sim_cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool = False,
    on_error: Callable[[int, str], None] | None = None,
    workers: int = 1,
) -> tuple[MoodGroups, pd.DataFrame]:
    """Mood groups of every ``ok`` catalogue track.

    Descriptors (cached per file) are computed with ``workers`` threads;
    files that cannot be analysed are reported to ``on_error`` and left out.
    ``model`` is the song-similarity encoder (default
    :func:`~audiosim.similarity.model.load_similarity_model`).

    Returns
    -------
    (MoodGroups, DataFrame)
        The groups and the per-song table (catalogue columns ``title``,
        ``path`` joined with descriptors and the mood columns).
    """
    model = model or load_similarity_model()
    table = catalogue_vectors(home, model, sim_cfg, progress=progress)
    desc = descriptor_table(table.tracks, home, descriptor_cfg, progress=progress, on_error=on_error, workers=workers)
    keep = np.array([i in desc.index for i in table.tracks.index], dtype=bool)
    result = group_songs(desc, table.vectors[keep], cfg)
    per_song = table.tracks.loc[desc.index, ["title", "path"]].join(desc).join(result.songs)
    return result, per_song


def format_groups(result: MoodGroups, per_song: pd.DataFrame, width: int = 100) -> str:
    """The groups as text: name, explanation, valence/arousal, then a table of songs.

    Parameters
    ----------
    result : MoodGroups
    per_song : DataFrame
        As returned by :func:`catalogue_moods` (``title`` and descriptor columns).
    """
    n = len(per_song)
    how = (f"number of groups chosen by silhouette score ({result.silhouette:.2f})"
           if result.k > 1 and not math.isnan(result.silhouette) else "one group")
    lines = [f"{result.k} mood groups over {n} songs ({how}; song vectors + descriptors)", ""]
    for g, row in result.groups.iterrows():
        members = per_song[per_song["group"] == g].sort_values("arousal", ascending=False)
        lines.append(f"{g}. {row['name']} — {row['songs']} song{'s' if row['songs'] != 1 else ''}")
        lines.append(f"   {row['why']}")
        lines.append(f"   valence {row['valence']:+.2f}, arousal {row['arousal']:+.2f}; median loudness range "
                     f"{row['dynamic_range_db']:.0f} dB, pulse clarity {row['pulse_clarity']:.2f}")
        view = pd.DataFrame({
            "id": members.index,
            "title": [str(t)[:40] for t in members["title"]],
            "BPM": members["tempo_bpm"].round(0).astype(int),
            "key": members["key"].astype(str) + " " + members["mode"].astype(str),
            "dBFS": members["loudness_db"].round(1),
            "valence": members["valence"].map("{:+.2f}".format),
            "arousal": members["arousal"].map("{:+.2f}".format),
            "song mood": members["mood"],
        })
        table = view.to_string(index=False, max_colwidth=40)
        lines += ["   " + line for line in table.splitlines()]
        lines.append("")
    return "\n".join(lines)
