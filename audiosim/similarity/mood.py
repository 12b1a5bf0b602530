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
[-3, 3]; within ±0.5 a term reads as moderate.) A value is worded from the
value as shown (:func:`shown_value`, e.g. the centroid to 10 Hz), by one
rule (:func:`word`), wherever it appears: so one shown value always reads
the same, in a song's line, a group's line and a group's name. Then, with weights after
the cues most consistently found in music-emotion research (Gabrielsson & Lindström 2010; Eerola et al. 2013:
arousal follows tempo, loudness, event density and brightness; valence
follows mode, consonance, and to a lesser degree tempo and brightness)::

    arousal = tanh(0.35 z_tempo + 0.30 z_loudness + 0.25 z_onsets + 0.10 z_brightness)
    valence = tanh(0.40 z_mode  + 0.35 z_tonality + 0.15 z_tempo  + 0.10 z_brightness)

both in (-1, 1).

With tags (:mod:`audiosim.similarity.tags`), the musicnn tags that carry
mood join in (:data:`TAG_TERMS`: MSD happy, sad, party, beautiful, chill,
Mellow, ambient; MTT quiet, loud, soft, slow, fast). Each is read as its
percentile among the catalogue's songs, scored ``(percentile - 50) / 25``,
and the tags make :data:`TAG_SHARE` (0.4) of each sum inside the ``tanh``,
the descriptors the rest: happy and sad pull valence, party, loud and fast
push arousal up, chill, Mellow, quiet, soft and slow pull it down. Being
ranks, they say how a song stands against the rest of the catalogue, not
in music at large. A song's explanation then also names the tags that
moved it most, with their percentiles.

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
valence and arousal and explained by its median descriptors. Groups that
share a name get the word of their most distinctive term, taken from their
own median (the same word their line shows), e.g. ``happy, minor`` only for
a group whose line says minor. Asking for more groups than the songs allow
(at most one fewer than the songs) is a :class:`ValueError` that says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from audiosim.config import DescriptorConfig, MoodConfig, SimilarityConfig
from audiosim.progress import Callback
from audiosim.similarity.model import SongModel, load_similarity_model
from audiosim.similarity.tags import catalogue_tags
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


@dataclass(frozen=True)
class TagTerm:
    """How one musicnn tag's catalogue percentile moves valence and arousal."""

    model: str
    tag: str
    valence: float
    arousal: float

    @property
    def column(self) -> str:
        """Its column in a tag table (:func:`audiosim.similarity.tags.catalogue_tags`)."""
        return f"pct:{self.model}:{self.tag}"

    def score(self, percentile: pd.Series | np.ndarray) -> np.ndarray:
        """``(percentile - 50) / 25``: 0 for the catalogue's median song, ±2 at its ends."""
        return np.clip((np.asarray(percentile, dtype=np.float64) - 50.0) / 25.0, -2, 2)


TAG_TERMS: tuple[TagTerm, ...] = (
    TagTerm("msd", "happy", 0.30, 0.05),
    TagTerm("msd", "sad", -0.30, -0.10),
    TagTerm("msd", "party", 0.15, 0.25),
    TagTerm("msd", "beautiful", 0.10, -0.05),
    TagTerm("msd", "chill", 0.05, -0.15),
    TagTerm("msd", "Mellow", 0.00, -0.15),
    TagTerm("msd", "ambient", 0.00, -0.10),
    TagTerm("mtt", "quiet", 0.00, -0.15),
    TagTerm("mtt", "loud", 0.00, 0.15),
    TagTerm("mtt", "soft", 0.05, -0.10),
    TagTerm("mtt", "slow", 0.00, -0.15),
    TagTerm("mtt", "fast", 0.00, 0.15),
)
"""The mood tags: what each tag's percentile adds to valence and arousal (weights before normalising)."""
TAG_SHARE = 0.4
"""Share of valence and arousal that comes from tags, when a song has them (the rest from descriptors)."""


# --------------------------------------------------------------------------
# Per song
# --------------------------------------------------------------------------


def term_scores(desc: pd.DataFrame) -> pd.DataFrame:
    """The ``z`` score of every :data:`TERMS` entry for each row of a descriptor table."""
    return pd.DataFrame({t.name: t.score(desc[t.column]) for t in TERMS}, index=desc.index)


def tag_scores(tags: pd.DataFrame) -> pd.DataFrame:
    """The score of every :data:`TAG_TERMS` entry (by tag name) for each row of a tag-percentile table."""
    return pd.DataFrame({t.tag: t.score(tags[t.column]) for t in TAG_TERMS}, index=tags.index)


def valence_arousal(desc: pd.DataFrame, tags: pd.DataFrame | None = None) -> pd.DataFrame:
    """Valence and arousal in (-1, 1) for each row of a descriptor table (formulae above).

    Parameters
    ----------
    desc : DataFrame
        Descriptor table.
    tags : DataFrame, optional
        Tag percentiles of the same songs (the ``pct:`` columns of
        :func:`audiosim.similarity.tags.catalogue_tags`). Given, the
        :data:`TAG_TERMS` make :data:`TAG_SHARE` of each sum: each side's
        weights are scaled to sum to 1 in absolute value, then
        ``tanh((1 - TAG_SHARE) * descriptor sum + TAG_SHARE * tag sum)``.
    """
    z = term_scores(desc)
    arousal = sum(w * z[k] for k, w in AROUSAL_WEIGHTS.items())
    valence = sum(w * z[k] for k, w in VALENCE_WEIGHTS.items())
    if tags is not None:
        t = tag_scores(tags.loc[desc.index])
        a_norm = sum(abs(x.arousal) for x in TAG_TERMS)
        v_norm = sum(abs(x.valence) for x in TAG_TERMS)
        arousal = (1 - TAG_SHARE) * arousal + TAG_SHARE * sum(x.arousal * t[x.tag] for x in TAG_TERMS) / a_norm
        valence = (1 - TAG_SHARE) * valence + TAG_SHARE * sum(x.valence * t[x.tag] for x in TAG_TERMS) / v_norm
    return pd.DataFrame({"valence": np.tanh(valence), "arousal": np.tanh(arousal)}, index=desc.index)


def mood_label(valence: float, arousal: float) -> str:
    """The :data:`PROTOTYPES` label nearest to a (valence, arousal) point."""
    return min(PROTOTYPES, key=lambda m: (PROTOTYPES[m][0] - valence) ** 2 + (PROTOTYPES[m][1] - arousal) ** 2)


SHOWN_DIGITS = {"tempo": 0, "loudness": 0, "onsets": 1, "brightness": -1, "pulse": 2, "tonality": 2, "dynamics": 0}
"""Decimals each term's value is shown with (-1: to 10 Hz); mode shows its key, not a number."""


def shown_value(term: Term, value: float) -> float:
    """The value as a phrase shows it (rounded to :data:`SHOWN_DIGITS`)."""
    digits = SHOWN_DIGITS.get(term.name)
    return float(value) if digits is None or not math.isfinite(value) else float(round(float(value), digits))


def _value_text(term: Term, row: pd.Series) -> str:
    v = shown_value(term, row[term.column])
    if term.name == "tempo":
        return f"{v:.0f} BPM"
    if term.name == "loudness":
        return f"{v:.0f} dBFS"
    if term.name == "onsets":
        return f"{v:.1f} onsets/s"
    if term.name == "brightness":
        return f"centroid {v / 1000:.2f} kHz" if v >= 1000 else f"centroid {v:.0f} Hz"
    if term.name == "mode":
        return str(row.get("key", ""))
    if term.name == "tonality":
        return f"key strength {v:.2f}"
    if term.name == "dynamics":
        return f"{v:.0f} dB range"
    return f"{v:.2f}"


def word(term: Term, z: float) -> str:
    """The word for a term's score: ``mid`` within ±0.5 (when the term has one), else ``high`` or ``low``."""
    return term.mid if term.mid and abs(z) < 0.5 else term.high if z >= 0 else term.low


def shown_word(term: Term, row: pd.Series) -> str:
    """The word for a term of a row of descriptors, from its value as shown."""
    return word(term, float(term.score(np.array([shown_value(term, float(row[term.column]))]))[0]))


def phrase(term: Term, z: float, row: pd.Series) -> str:
    """``"fast (152 BPM)"``: the word for the value as shown (:func:`shown_word`) and the value.

    ``z`` is the term's score; it decides only for terms shown without a
    number (mode, shown by its key).
    """
    w = word(term, z) if term.name not in SHOWN_DIGITS else shown_word(term, row)
    return f"{w} ({_value_text(term, row)})"


def contributions(z: pd.Series) -> pd.Series:
    """How much each term moved valence plus arousal (absolute weighted score)."""
    out = {}
    for name in {**AROUSAL_WEIGHTS, **VALENCE_WEIGHTS}:
        out[name] = abs(z[name]) * (AROUSAL_WEIGHTS.get(name, 0.0) + VALENCE_WEIGHTS.get(name, 0.0))
    return pd.Series(out).sort_values(ascending=False)


def explain(row: pd.Series, z: pd.Series, label: str, n_terms: int = 4, tags: pd.Series | None = None,
            n_tags: int = 3) -> str:
    """Why a song (or group median) got ``label``: its strongest terms, worded.

    The mode term is always included (it decides valence more than anything).
    With the song's tag percentiles (``tags``, its row of ``pct:`` columns),
    the ``n_tags`` tags that moved it most follow, each with its percentile
    (:func:`tag_phrase`), e.g. ``fast (152 BPM), major (D), busy (7.7
    onsets/s); tags: party (96th percentile), not sad (4th) → energetic``.
    """
    moved_by = contributions(z)
    top = [k for k in moved_by.index if k != "mode"][: n_terms - 1]
    names = top[:1] + ["mode"] + top[1:] if top else ["mode"]
    names = sorted(names, key=lambda k: -moved_by[k])
    text = ", ".join(phrase(TERM[k], float(z[k]), row) for k in names)
    if tags is not None and n_tags > 0:
        moved = sorted(TAG_TERMS, key=lambda t: -abs(float(t.score(np.array([tags[t.column]]))[0]))
                       * (abs(t.valence) + abs(t.arousal)))
        text += "; tags: " + ", ".join(tag_phrase(t, float(tags[t.column])) for t in moved[:n_tags])
    return text + f" → {label}"


def tag_phrase(term: TagTerm, percentile: float) -> str:
    """``"party (96th percentile)"``, or ``"not sad (4th percentile)"`` below the catalogue's median."""
    p = int(round(percentile))
    suffix = "th" if 10 <= p % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(p % 10, "th")
    return f"{'' if percentile >= 50 else 'not '}{term.tag.lower()} ({p}{suffix} percentile)"


def song_moods(desc: pd.DataFrame, tags: pd.DataFrame | None = None) -> pd.DataFrame:
    """Valence, arousal, mood label and its explanation for each song.

    Parameters
    ----------
    desc : DataFrame
        Descriptor table (:func:`audiosim.similarity.descriptors.descriptor_table`).
    tags : DataFrame, optional
        Tag percentiles of the same songs (see :func:`valence_arousal`);
        they then count, and the explanations name them.

    Returns
    -------
    DataFrame
        Same index; columns ``valence, arousal, mood, why``.
    """
    if desc.empty:
        return pd.DataFrame(columns=["valence", "arousal", "mood", "why"], index=desc.index)
    va = valence_arousal(desc, tags)
    z = term_scores(desc)
    moods = [mood_label(v, a) for v, a in zip(va["valence"], va["arousal"])]
    why = [explain(desc.loc[i], z.loc[i], m, tags=None if tags is None else tags.loc[i])
           for i, m in zip(desc.index, moods)]
    out = va.round(3)
    out["mood"] = moods
    out["why"] = why
    return out


# --------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------


class TooManyGroups(ValueError):
    """More groups asked for than the songs allow (at most one fewer than the songs)."""


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


def clustering_space(desc: pd.DataFrame, vectors: np.ndarray | None, cfg: MoodConfig = MoodConfig(),
                     tags: pd.DataFrame | None = None) -> np.ndarray:
    """The matrix k-means runs on: descriptor scores (+ valence/arousal twice)
    and, when ``vectors`` are given, their principal components scaled to
    ``cfg.embedding_weight`` of the total variance."""
    from sklearn.decomposition import PCA

    z = term_scores(desc)
    va = valence_arousal(desc, tags) * 2.0  # tanh range (-1, 1) -> comparable to z scores
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


def group_songs(desc: pd.DataFrame, vectors: np.ndarray | None = None, cfg: MoodConfig = MoodConfig(),
                tags: pd.DataFrame | None = None) -> MoodGroups:
    """Cluster songs into mood groups, name and explain each group.

    Parameters
    ----------
    desc : DataFrame
        Descriptor table, one row per song.
    vectors : ndarray, shape (len(desc), dim), optional
        Song vectors in the same row order.
    cfg : MoodConfig
    tags : DataFrame, optional
        Tag percentiles of the songs (see :func:`valence_arousal`).

    Returns
    -------
    MoodGroups

    Raises
    ------
    TooManyGroups
        If ``cfg.n_groups`` is more than one fewer than the songs (k-means
        and the silhouette score need a song more than groups).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(desc)
    per_song = song_moods(desc, tags)
    if n == 0:
        empty = pd.DataFrame(columns=["name", "songs", "valence", "arousal", "why"])
        return MoodGroups(per_song.assign(group=pd.Series(dtype=int), group_name=pd.Series(dtype=str)), empty, 0, float("nan"))
    if cfg.n_groups and cfg.n_groups > max(1, n - 1):
        raise TooManyGroups(f"{cfg.n_groups} groups asked for {n} song{'s' if n != 1 else ''}: "
                         + (f"at most {n - 1} groups (one fewer than the songs)" if n > 2
                            else "too few songs to form groups"))
    x = clustering_space(desc, vectors, cfg, tags)
    if cfg.n_groups:
        ks = [cfg.n_groups]
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
    rows, medians = {}, {}
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
        medians[g] = med
        rows[g] = dict(name=name, songs=len(d), valence=round(v, 3), arousal=round(a, 3),
                       **{c: round(float(med[c]), 2) for c in numeric}, major_share=round(major, 2),
                       why=explain(med, z, name))
    groups = pd.DataFrame.from_dict(rows, orient="index")
    return _disambiguate(groups, medians)


def _group_word(term: Term, med: pd.Series) -> str:
    """The word a group's line uses for a term (its median, as shown)."""
    if term.name in SHOWN_DIGITS:
        return shown_word(term, med)
    return word(term, float(term.score(np.array([float(med[term.column])]))[0]))


def _disambiguate(groups: pd.DataFrame, medians: dict) -> pd.DataFrame:
    """Give groups that share a mood name a qualifier: their most distinctive term.

    The qualifier is the word the group's own line uses for that term (from
    its median descriptors), and only a term whose word differs from the
    other groups' of that name qualifies, so the name never contradicts the
    line (``happy, minor`` only for a minor group) and names stay distinct;
    groups with no such term are numbered.
    """
    groups = groups.copy()
    for name, same in groups.groupby("name"):
        if len(same) < 2:
            continue
        zs = {g: term_scores(medians[g].to_frame().T).iloc[0] for g in same.index}
        mean_z = pd.DataFrame(zs).T.mean()
        words = {g: {t.name: _group_word(t, medians[g]) for t in TERMS} for g in same.index}
        for g in same.index:
            others = [o for o in same.index if o != g]
            diff = (zs[g] - mean_z).abs().sort_values(ascending=False)
            distinct = [t for t in diff.index if all(words[o][t] != words[g][t] for o in others)]
            if distinct:  # else numbered below
                groups.loc[g, "name"] = f"{name}, {words[g][distinct[0]]}"
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
    model: SongModel | None = None,
    cfg: MoodConfig = MoodConfig(),
    descriptor_cfg: DescriptorConfig = DescriptorConfig(),
    sim_cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool | Callback | None = False,
    on_error: Callable[[int, str], None] | None = None,
    workers: int = 1,
) -> tuple[MoodGroups, pd.DataFrame]:
    """Mood groups of every ``ok`` catalogue track.

    Song vectors and descriptors come from one decode of each file's
    excerpts (:func:`audiosim.similarity.vectors.catalogue_vectors`, cached);
    files that cannot be analysed are reported to ``on_error`` and left out.
    ``model`` is the song model (default
    :func:`~audiosim.similarity.model.load_similarity_model`); ``workers``
    batches of songs are analysed at once on threads, one torch thread each.

    Returns
    -------
    (MoodGroups, DataFrame)
        The groups and the per-song table (catalogue columns ``title``,
        ``path`` joined with descriptors and the mood columns).

    Raises
    ------
    TooManyGroups
        If ``cfg.n_groups`` is more than the analysed songs allow.
    """
    model = model or load_similarity_model()
    table = catalogue_vectors(home, model, sim_cfg, progress=progress, descriptor_cfg=descriptor_cfg,
                              on_error=on_error, workers=workers)
    desc = table.descriptors
    result = group_songs(desc, table.vectors, cfg, catalogue_tags(table))
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
