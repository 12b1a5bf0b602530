"""Song analysis of catalogue tracks: vector, tags and descriptors from one decode, cached by content hash.

Each file is decoded once, and only its excerpts
(:func:`audiosim.similarity.excerpts.read_excerpts`), at the descriptors'
rate (``DescriptorConfig.sample_rate``, 22 050 Hz); the excerpts are
resampled to 16 kHz for musicnn. From them come

* the song vector (:class:`~audiosim.similarity.model.SongModel`);
* the mean tag probabilities of both musicnn models (``msd`` and ``mtt``,
  :func:`audiosim.similarity.musicnn.tag_names`), for tags and moods: the
  song model's from all excerpts (the same pass as the vector), the other's
  from the middle excerpt only (:func:`analyse_batch`);
* the librosa descriptors (:func:`audiosim.similarity.descriptors.analyse`)
  of the excerpts joined end to end.

All of it is one ``.npz`` entry in a :class:`~audiosim.store.content.ContentStore`,
``<home>/cache/song-analysis/<model>-<vectors>-<descriptors>/<hash[:2]>/<hash>.npz``
(the model digest, :meth:`SimilarityConfig.vector_digest` and the
:class:`DescriptorConfig` digest), so a song is analysed once per model and
settings, and nothing made differently is mixed in.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from audiosim.config import DecodeConfig, DescriptorConfig, SimilarityConfig
from audiosim.progress import Callback, as_callback
from audiosim.runners import thread_map
from audiosim.signal import audio
from audiosim.similarity import musicnn
from audiosim.similarity.descriptors import COLUMNS, Descriptors, analyse
from audiosim.similarity.excerpts import Excerpts, read_excerpts
from audiosim.similarity.model import SongModel, fit_one_patch, mean_vector
from audiosim.store.catalog import Catalog
from audiosim.store.content import ContentStore
from audiosim.store.home import DataHome

SONG_ANALYSIS = "song-analysis"
"""Folder of the song-analysis caches under the data home's ``cache/``."""
TAG_MODELS = musicnn.MODEL_NAMES
"""The musicnn models whose tags every song gets (``msd``, ``mtt``)."""
ANALYSIS_RECIPE = "tags-middle"
"""Names how an analysis is made beyond the settings' digests (the tag-only model hears the middle
excerpt, :func:`analyse_batch`); part of the cache folder's name, so a change of recipe starts afresh."""
BATCH_SONGS = 4
"""Songs decoded and analysed as one unit of work (:meth:`SongVectors.many`): the networks take
their patches :data:`~audiosim.similarity.musicnn.EVAL_CHUNK` at a time whatever the batch, and
small units keep every worker busy to the end of a run."""


@dataclass(frozen=True)
class SongAnalysis:
    """What song analysis knows about one file."""

    vector: np.ndarray
    """The song vector, unit length, float32."""
    tags: dict[str, np.ndarray]
    """Mean tag probability per musicnn model (``"msd"``, ``"mtt"``), in :func:`musicnn.tag_names` order."""
    descriptors: Descriptors

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The ``.npz`` form: plain arrays only (no pickles)."""
        d = self.descriptors.to_dict()
        return {"vector": self.vector, **{f"tags_{m}": t for m, t in self.tags.items()},
                "descriptor_names": np.array(list(d)), "descriptor_values": np.array([str(v) for v in d.values()])}

    @classmethod
    def from_arrays(cls, z: dict[str, np.ndarray]) -> "SongAnalysis":
        """Inverse of :meth:`to_arrays` (``KeyError``/``ValueError`` on a malformed entry)."""
        raw = dict(zip(z["descriptor_names"].tolist(), z["descriptor_values"].tolist()))
        values = {k: (raw[k] if k in ("key", "mode") else float(raw[k])) for k in COLUMNS}
        return cls(z["vector"].astype(np.float32), {m: z[f"tags_{m}"].astype(np.float32) for m in TAG_MODELS},
                   Descriptors(**values))


def analyse_excerpts(ex: Excerpts, model: SongModel, descriptor_cfg: DescriptorConfig = DescriptorConfig()) -> SongAnalysis:
    """Vector, tags and descriptors of a song's decoded excerpts (:func:`analyse_batch` of one song)."""
    return analyse_batch([ex], model, descriptor_cfg)[0]


def analyse_batch(
    songs: Sequence[Excerpts], model: SongModel, descriptor_cfg: DescriptorConfig = DescriptorConfig()
) -> list[SongAnalysis]:
    """Vectors, tags and descriptors of several songs' excerpts, the networks run once for all of them.

    The networks' half is :func:`musicnn_outputs`; the descriptors are
    :func:`~audiosim.similarity.descriptors.analyse` of each song's
    excerpts end to end.
    """
    heard = musicnn_outputs(songs, model)
    return [SongAnalysis(vector, tags, analyse(ex.joined(), ex.sample_rate, descriptor_cfg, duration=ex.duration))
            for (vector, tags), ex in zip(heard, songs)]


def musicnn_outputs(songs: Sequence[Excerpts], model: SongModel) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Song vector and mean tag probabilities of each song, from the musicnn networks.

    The song model's network runs on every 3-second patch of every excerpt
    of every song in one batch, and gives both the song vectors (its layer,
    pooled per song) and that model's tags. The other musicnn model is there
    for its tags only, so it hears only each song's middle excerpt
    (:func:`tag_excerpt`), again all songs in one batch: the vector never
    depends on it.

    Returns
    -------
    list of (ndarray, dict of str to ndarray)
        Per song, in order: the unit song vector and the tags per model
        (:data:`TAG_MODELS`).
    """
    if not songs:
        return []
    per_song = [[musicnn.musicnn_input(_to_16k(w, ex.sample_rate)) for w in ex.waves] for ex in songs]
    all_patches = torch.cat([p for song in per_song for p in song])
    counts = [sum(p.shape[0] for p in song) for song in per_song]
    middle = [song[tag_excerpt(len(song))] for song in per_song]
    tags: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        out = model.net(all_patches)
        layer = out.midlevel if model.cfg.layer == "midlevel" else out.penultimate
        vectors = [mean_vector(chunk.numpy()) for chunk in torch.split(layer, counts)]
        tags[model.cfg.model] = [t.mean(0).numpy().astype(np.float32) for t in torch.split(out.tags, counts)]
        for name in TAG_MODELS:
            if name != model.cfg.model:
                other = musicnn.load_musicnn(name)(torch.cat(middle)).tags
                tags[name] = [t.mean(0).numpy().astype(np.float32)
                              for t in torch.split(other, [m.shape[0] for m in middle])]
    return [(vectors[i], {m: tags[m][i] for m in TAG_MODELS}) for i in range(len(songs))]


def tag_excerpt(n_excerpts: int) -> int:
    """The excerpt the tag-only model hears: the middle one (the centre of the track by default)."""
    return n_excerpts // 2


def _to_16k(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    return fit_one_patch(audio.resample(wave, sample_rate, musicnn.SAMPLE_RATE))


def analyse_file(
    path: str | Path,
    model: SongModel,
    cfg: SimilarityConfig = SimilarityConfig(),
    descriptor_cfg: DescriptorConfig = DescriptorConfig(),
    decode: DecodeConfig = DecodeConfig(),
) -> SongAnalysis:
    """Decode the excerpts of ``path`` once and analyse them (:func:`analyse_excerpts`).

    Raises
    ------
    AudioError
        If the file cannot be decoded (the message names it).
    """
    return analyse_excerpts(read_excerpts(path, descriptor_cfg.sample_rate, cfg, decode), model, descriptor_cfg)


def song_analysis_dir(
    home: "str | Path | DataHome | None", model: SongModel, cfg: SimilarityConfig, descriptor_cfg: DescriptorConfig
) -> Path:
    """``<home>/cache/song-analysis/<model>-<vectors>-<descriptors>/``: the cache of one model and settings."""
    name = f"{model.identity.digest}-{cfg.vector_digest()}-{descriptor_cfg.digest()}-{ANALYSIS_RECIPE}"
    return DataHome.resolve(home).cache_dir / SONG_ANALYSIS / name


class SongVectors:
    """Song analyses of a data home's tracks, cached by content hash.

    Parameters
    ----------
    home : data home
    model : SongModel
    cfg : SimilarityConfig
        The excerpts (and index settings).
    descriptor_cfg : DescriptorConfig

    Attributes
    ----------
    cache : ContentStore
        One ``.npz`` per analysed content (:meth:`SongAnalysis.to_arrays`).
    """

    def __init__(
        self,
        home: "str | Path | DataHome | None",
        model: SongModel,
        cfg: SimilarityConfig = SimilarityConfig(),
        descriptor_cfg: DescriptorConfig = DescriptorConfig(),
    ):
        self.home = DataHome.resolve(home)
        self.model = model
        self.cfg = cfg
        self.descriptor_cfg = descriptor_cfg
        self.cache = ContentStore(song_analysis_dir(self.home, model, cfg, descriptor_cfg), ".npz")

    def cached(self, content_hash: str) -> SongAnalysis | None:
        """The cached analysis of ``content_hash``, or None (also when the entry is unreadable)."""
        z = self.cache.find(content_hash)
        if z is None:
            return None
        try:
            return SongAnalysis.from_arrays(z)
        except (KeyError, ValueError, TypeError):
            return None

    def analysis(self, content_hash: str, path: str | Path) -> SongAnalysis:
        """The analysis of ``content_hash`` (held by ``path``), computed and cached on a miss.

        Raises
        ------
        AudioError
            If the file cannot be decoded.
        ValueError
            If the file no longer holds ``content_hash`` (it changed since ingest).
        """
        a = self.cached(content_hash)
        if a is not None:
            return a
        if audio.content_hash(path) != content_hash:
            raise ValueError(f"{path}: changed since it was ingested (run `audiosim ingest` again)")
        a = analyse_file(path, self.model, self.cfg, self.descriptor_cfg)
        self.cache.put(content_hash, a.to_arrays())
        return a

    def get(self, content_hash: str, path: str | Path) -> np.ndarray:
        """The song vector of ``content_hash`` (see :meth:`analysis`)."""
        return self.analysis(content_hash, path).vector

    def many(
        self, hashes: Sequence[str], paths: Sequence[str | Path], progress: bool | Callback | None = False,
        workers: int = 1,
    ) -> tuple[dict[int, SongAnalysis], dict[int, str]]:
        """Analyses of many tracks, by row.

        Cached ones are read; the others are decoded and analysed
        :data:`BATCH_SONGS` at a time (:func:`analyse_batch`), ``workers``
        batches at once on threads, each with one torch thread
        (:func:`audiosim.runners.thread_map`). A track that cannot be
        analysed (unreadable or changed file) is left out with a message
        naming it; the others go on. ``progress`` (a ``progress(stage, info)``
        callback of :mod:`audiosim.progress`, or ``True`` for one on stderr)
        hears the ``song-vectors`` stage count the songs analysed, failed
        ones included, after each batch; nothing when every song is cached.

        Returns
        -------
        (dict of int to SongAnalysis, dict of int to str)
            The analyses, and the message of every row that failed.
        """
        done: dict[int, SongAnalysis] = {}
        failed: dict[int, str] = {}
        todo = []
        for i, h in enumerate(hashes):
            a = self.cached(h)
            if a is None:
                todo.append(i)
            else:
                done[i] = a
        batches = [todo[j: j + BATCH_SONGS] for j in range(0, len(todo), BATCH_SONGS)]

        def run(rows: list[int]) -> tuple[dict[int, SongAnalysis], dict[int, str]]:
            return self._analyse_rows(rows, hashes, paths)

        report = as_callback(progress)
        analysed = 0
        for ok, bad in thread_map(run, batches, workers):
            done.update(ok)
            failed.update(bad)
            analysed += len(ok) + len(bad)
            report("song-vectors", {"done": analysed, "total": len(todo)})
        return done, failed

    def _analyse_rows(
        self, rows: list[int], hashes: Sequence[str], paths: Sequence[str | Path]
    ) -> tuple[dict[int, SongAnalysis], dict[int, str]]:
        """Decode, analyse in one batch and cache the rows ``rows``; failures by row."""
        decoded: dict[int, Excerpts] = {}
        failed: dict[int, str] = {}
        for i in rows:
            p = paths[i]
            try:
                if audio.content_hash(p) != hashes[i]:
                    raise ValueError("changed since it was ingested (run `audiosim ingest` again)")
                decoded[i] = read_excerpts(p, self.descriptor_cfg.sample_rate, self.cfg)
            except (audio.AudioError, ValueError, OSError) as e:
                failed[i] = f"{p}: {e}" if str(p) not in str(e) else str(e)
        keys = list(decoded)
        done = dict(zip(keys, analyse_batch([decoded[i] for i in keys], self.model, self.descriptor_cfg)))
        for i, a in done.items():
            self.cache.put(hashes[i], a.to_arrays())
        return done, failed


def catalogue_frame(home: "str | Path | DataHome | None") -> pd.DataFrame:
    """The ``ok`` tracks of the home's catalogue as a DataFrame indexed by track id.

    Raises
    ------
    FileNotFoundError
        If the home has no catalogue.
    """
    dh = DataHome.resolve(home)
    try:
        cat = Catalog(dh.catalog_path, create=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"no catalogue in {dh.root} (run `audiosim ingest` first)") from None
    with cat:
        return cat.tracks(status="ok")


@dataclass
class SongTable:
    """Catalogue tracks with their analyses (row ``i`` of each array is ``tracks.iloc[i]``)."""

    tracks: pd.DataFrame
    vectors: np.ndarray
    tags: dict[str, np.ndarray] = field(default_factory=dict)
    """Per musicnn model, ``(n, n_tags)`` mean tag probabilities."""
    descriptors: pd.DataFrame | None = None
    """Descriptor columns (:data:`~audiosim.similarity.descriptors.COLUMNS`), indexed by track id."""


def catalogue_vectors(
    home: "str | Path | DataHome | None",
    model: SongModel,
    cfg: SimilarityConfig = SimilarityConfig(),
    progress: bool | Callback | None = False,
    descriptor_cfg: DescriptorConfig = DescriptorConfig(),
    on_error: Callable[[int, str], None] | None = None,
    workers: int = 1,
) -> SongTable:
    """Song vectors, tags and descriptors of every ``ok`` catalogue track.

    Tracks that cannot be analysed (see :meth:`SongVectors.many`) are left
    out, each reported to ``on_error(track_id, message)``, or by default
    with a warning naming the file. ``workers``: batches of songs analysed
    at once (threads, one torch thread each). ``progress``: see
    :meth:`SongVectors.many` (a bar in a terminal, a timed stage line
    otherwise, when given :class:`audiosim.progress.Progress` or ``True``).
    """
    sv = SongVectors(home, model, cfg, descriptor_cfg)
    tracks = catalogue_frame(home)
    done, failed = sv.many(list(tracks["content_hash"]), list(tracks["path"]), progress=progress,
                           workers=workers)
    for i, msg in failed.items():
        if on_error is not None:
            on_error(int(tracks.index[i]), msg)
        else:
            warnings.warn(f"song analysis skipped: {msg}", stacklevel=2)
    return song_table(tracks, [done.get(i) for i in range(len(tracks))], model.dim)


def song_table(tracks: pd.DataFrame, analyses: Sequence[SongAnalysis | None], dim: int) -> SongTable:
    """A :class:`SongTable` of the tracks whose analysis is not None."""
    keep = np.array([a is not None for a in analyses], dtype=bool)
    kept = [a for a in analyses if a is not None]
    tracks = tracks[keep]
    vectors = np.vstack([a.vector for a in kept]).astype(np.float32) if kept else np.zeros((0, dim), np.float32)
    tags = {m: np.vstack([a.tags[m] for a in kept]) if kept else np.zeros((0, len(musicnn.tag_names(m))), np.float32)
            for m in TAG_MODELS}
    desc = pd.DataFrame([a.descriptors.to_dict() for a in kept], index=tracks.index, columns=list(COLUMNS))
    return SongTable(tracks, vectors, tags, desc)
