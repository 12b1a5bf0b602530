"""Typed configuration: every default lives here.

Each config is a frozen dataclass with ``to_dict``/``from_dict`` and a short
stable ``digest`` so that an artifact (features, checkpoint, index) can record
what made it and refuse to be mixed with something made differently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="_Config")


def _tuple_kinds(declared: str) -> list[str] | None:
    """The item types of a ``tuple[...]`` annotation's text (``["float", "..."]``
    for ``tuple[float, ...]``), None for any other annotation."""
    if declared.startswith("tuple[") and declared.endswith("]"):
        return [k.strip() for k in declared[len("tuple["):-1].split(",")]
    return None


def _fits(declared: str, value: Any) -> bool:
    """Whether ``value`` (as JSON gives it) fits a field declared ``declared``
    (the annotation's text: ``float``, ``tuple[float, float]``, ``tuple[int, ...]``)."""
    kinds = _tuple_kinds(declared)
    if kinds is not None:
        if not isinstance(value, (list, tuple)) or not value:
            return False
        if kinds[-1] == "...":
            kinds = [kinds[0]] * len(value)
        return len(kinds) == len(value) and all(_fits(k, v) for k, v in zip(kinds, value))
    if declared == "bool":
        return isinstance(value, bool)
    if declared == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if declared == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if declared == "str":
        return isinstance(value, str)
    return True  # a type this check does not know: the dataclass takes it as it is


def _describe(declared: str) -> str:
    """``tuple[float, float]`` -> "a list of 2 numbers" and so on, for messages."""
    kinds = _tuple_kinds(declared)
    if kinds is not None:
        what = {"float": "numbers", "int": "whole numbers"}.get(kinds[0], kinds[0])
        return f"a list of {what}" if kinds[-1] == "..." else f"a list of {len(kinds)} {what}"
    return {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "a string"}.get(
        declared, declared)


def _as_field_value(value: Any) -> Any:
    """A value as a dataclass field holds it: JSON's lists become tuples."""
    return tuple(value) if isinstance(value, list) else value


class ConfigMismatchError(ValueError):
    """An artifact was made with a different configuration than the one asked for."""


class _Config:
    """Mixin giving dict round-trips and a stable digest to frozen dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a plain, JSON-serialisable dict."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build the configuration from a dict, rejecting unknown keys.

        Missing keys take their defaults, so configs saved by older versions
        still load.
        """
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        values = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                v = data[f.name]
                values[f.name] = _as_field_value(v)
        return cls(**values)

    def with_fields(self: T, changes: dict[str, Any]) -> T:
        """A copy with ``changes`` (field -> value as JSON gives it: lists for
        tuples), each value checked against the field's declared type.

        For settings typed by a person (``audiosim train --augment``, the
        benchmarks' ``--set``): a range needs two numbers, a count a whole
        number, a switch ``true`` or ``false``.

        Raises
        ------
        ValueError
            Naming the field that is unknown or whose value does not fit,
            and what it expects.
        """
        fields = {f.name: f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        for key, value in changes.items():
            if key not in fields:
                raise ValueError(f"{key}: no {type(self).__name__} field of that name; "
                                 f"the fields are {', '.join(sorted(fields))}")
            declared = str(fields[key].type)
            if not _fits(declared, value):
                raise ValueError(f"{key}={json.dumps(value)}: expected {_describe(declared)}, "
                                 f"like {json.dumps(getattr(self, key))}")
        return dataclasses.replace(self, **{k: _as_field_value(v) for k, v in changes.items()})  # type: ignore[type-var]

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys) of the configuration."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def digest(self) -> str:
        """A 12-hex-digit hash that changes whenever any field changes."""
        text = f"{type(self).__name__}:{self.to_json()}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def check_same(self, other: "_Config", what: str) -> None:
        """Raise :class:`ConfigMismatchError` naming both digests if ``other`` differs.

        Parameters
        ----------
        other : config of the same class
            The configuration recorded beside an artifact.
        what : str
            Names the artifact in the error message.
        """
        if self.to_dict() != other.to_dict():
            diff = {
                k: (v, other.to_dict().get(k))
                for k, v in self.to_dict().items()
                if other.to_dict().get(k) != v
            }
            raise ConfigMismatchError(
                f"{what} was made with {type(self).__name__} {other.digest()} but "
                f"{self.digest()} is in use; differing fields (in use, recorded): {diff}"
            )


@dataclass(frozen=True)
class FeatureConfig(_Config):
    """How audio becomes log-mel segments.

    The defaults are tuned for fingerprinting on a CPU: 8 kHz mono, 64 mel
    bands between 150 and 3800 Hz (phone band survives), a hop of 125
    samples (64 frames per second) and segments of 60 frames (0.99 s), the
    most that fits in a one-second clip without padding.
    """

    sample_rate: int = 8000
    n_fft: int = 512
    hop_length: int = 125
    n_mels: int = 64
    f_min: float = 150.0
    f_max: float = 3800.0
    log_floor: float = 1e-6
    segment_frames: int = 60
    """Frames per fingerprint segment (60 frames = 7887 samples = 0.99 s)."""
    silence_db: float = -50.0
    """Segments quieter than this (RMS, dBFS) are neither indexed nor queried."""

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def segment_seconds(self) -> float:
        return self.segment_frames / self.frames_per_second

    @property
    def segment_samples(self) -> int:
        """Waveform samples that give exactly ``segment_frames`` frames."""
        return (self.segment_frames - 1) * self.hop_length + self.n_fft


@dataclass(frozen=True)
class DecodeConfig(_Config):
    """Limits applied when decoding files."""

    min_seconds: float = 1.0
    """Shorter files are rejected as too short to fingerprint."""
    max_seconds: float = 4 * 3600.0
    """Longer files are rejected (a guard against runaway inputs)."""
    block_seconds: float = 60.0
    """Files are read and resampled in blocks of this length."""
    silence_dbfs: float = -70.0
    """A file whose overall RMS is below this is rejected as silence."""


@dataclass(frozen=True)
class ModelConfig(_Config):
    """Architecture of the convolutional encoder."""

    channels: tuple[int, ...] = (16, 32, 64, 128, 256, 256)
    embedding_dim: int = 96
    hidden_dim: int = 256


@dataclass(frozen=True)
class AugmentConfig(_Config):
    """Degradations applied to positives during training (all seeded)."""

    snr_db: tuple[float, float] = (0.0, 20.0)
    p_noise: float = 0.9
    p_reverb: float = 0.6
    rt60: tuple[float, float] = (0.15, 1.0)
    rt60_hf_ratio: tuple[float, float] = (1.0, 1.0)
    """Reverberation time above 1-3 kHz as a share of ``rt60``: under 1
    gives darker tails, as in real rooms; (1, 1), what the shipped model was
    trained with, decays alike at every frequency."""
    p_eq: float = 0.8
    p_phone: float = 0.3
    p_speed: float = 0.5
    speed: tuple[float, float] = (0.97, 1.03)
    p_codec: float = 0.3
    max_shift_seconds: float = 0.25
    gain_db: tuple[float, float] = (-12.0, 6.0)
    p_babble: float = 0.3
    """Share of noisy items whose noise is speech babble: several talkers
    of a speech bank at once (needs one, see
    :class:`~audiosim.signal.augment.Degrader`; without it the item gets
    another kind of noise)."""
    babble_talkers: tuple[int, int] = (2, 7)
    """Fewest and most talkers in a babble, each at its own pitch and tempo."""
    babble_snr_db: tuple[float, float] = (0.0, 10.0)
    """SNR of babble items: people talk over music at levels other noise
    seldom reaches."""
    p_chain: float = 0.3
    """Share of items degraded as a phone held up in a room: reverb, then
    the device's band-limiting (EQ or phone band), then the noise, instead
    of the noise first."""


@dataclass(frozen=True)
class TrainConfig(_Config):
    """Triplet training of the encoder."""

    steps: int = 12000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    margin: float = 0.4
    distance: str = "squared_euclidean"
    """``squared_euclidean`` or ``cosine`` (1 - cos)."""
    mining: str = "semi_hard_then_hard"
    """``batch_hard``, ``semi_hard``, ``batch_all`` or ``semi_hard_then_hard``."""
    semi_hard_fraction: float = 0.3
    negative_min_seconds: float = 2.0
    """Two segments of the same track closer than this are not negatives."""
    negative_max_similarity: float = 0.85
    """Two segments whose clean log-mels correlate above this (at the best
    shift within ``max_shift_seconds``) are not negatives: looping game music
    repeats passages, and batch-hard mining would otherwise pick the repeat
    as the hardest "negative". 1.0 turns the check off."""
    init_from: str = ""
    """Start from this checkpoint's weights (fine-tuning) instead of random
    ones; the optimiser and schedule start afresh."""
    validate_every: int = 500
    checkpoint_every: int = 250
    val_fraction: float = 0.2
    seed: int = 0
    threads: int = 0
    """Torch CPU threads; 0 keeps torch's default."""


@dataclass(frozen=True)
class IndexConfig(_Config):
    """How tracks are cut into indexed segments and searched."""

    index_hop_seconds: float = 0.5
    query_hop_seconds: float = 0.28
    """Seconds between a clip's query segments (rounded to whole frames: 18,
    so a 5 s clip is scored on 15 overlapping 1 s segments). Finer hops
    cost a lookup proportionally more embedding and searching and, with
    the index's 0.5 s hop, found no more tracks (``benchmarks/README.md``).
    An index keeps the hop it was created with; the shipped background
    bank serves any multiple of its own 6 frames."""
    metric: str = "angular"
    half_hop_vectors: bool = True
    """Keep, beside each indexed segment, the one half an index hop later,
    coded in 4 bits per dimension (48 bytes at 96 dimensions) for
    verification only (:mod:`audiosim.index.half_hops`): a candidate is then
    scored on a grid of half the hop, where each query segment finds a
    better-aligned indexed one, while the search stays on the index hop.
    An index keeps the choice it was created with; older indexes have none."""
    n_trees: int = 3
    """Annoy trees per shard: more trees cost index bytes per item (about 13
    at 96 dimensions) and buy recall. Three keep an index with half-hop
    vectors under 1 KB per second of audio, and identified as many clips
    as five (``benchmarks/README.md``)."""
    search_k: int = 2000
    """Annoy nodes inspected per query segment: recall of the true
    nearest neighbours against time per query (Annoy's own default,
    ``n_trees * k``, misses most neighbours of degraded segments; the
    verification re-scores the tracks voting proposed, so the last points
    of recall buy little)."""
    search_k_shared: bool = True
    """``search_k`` is for the whole index, shared out among its shards by
    their share of the items (each gets at least Annoy's ``n_trees * k``):
    a lookup inspects about as many nodes before a compaction as after it,
    so its time does not grow with the number of shards. False gives every
    shard the whole ``search_k``."""
    neighbours: int = 10
    verify_candidates: int = 10
    """Vote candidates (best offset of each track) re-scored by aligned
    similarity (:mod:`audiosim.match.verify`): enough that the right track,
    when voting found it at all, is among them."""
    best_track_passages: int = 3
    """Passages of the best verified track that are verified: its best vote
    offset and the next ones (at least 1.5 s apart); it keeps the best
    scoring (1: the best vote offset only). The search sees the index's
    grid only, so a short clip's neighbours can favour a similar passage
    that happens to sit on the grid over its own passage, which
    verification on the finer grid of half-hop vectors tells apart."""
    query_speeds: tuple[float, ...] = (1.0,)
    """Playback speeds a clip is tried at: 1.05 means "perhaps played 5 %
    fast" (pitch and tempo up, as radio edits and DJ pitch faders do); the
    clip is resampled to undo it before embedding. The encoder tolerates
    about +-3 % by itself; (1.0, 0.95, 1.05) extends that to about +-8 % at
    up to three times the search cost for clips that do not match at 1.0
    (a clip that matches as given is not tried at other speeds). The
    calibration tries the same speeds, so the false-match rate holds. Off
    by default: the best of three tries also lifts absent music's scores,
    and so the thresholds, which costs hits on clips played as recorded."""
    verify_window: float = 0.25
    """A query segment is compared with the candidate track's indexed
    segments starting within this many seconds of where it should be. One
    step of the grid it compares against (half the index hop, with
    ``half_hop_vectors``) covers the grid's rounding and +-2 % speed over
    10 s."""
    cohort_weight: float = 0.0
    """A clip of more than one segment can score its candidates against each
    other: each verified score less this share of the mean of the other
    candidates' (:func:`~audiosim.match.verify.cohort_scores`), which says
    how much any music resembles the clip. Off by default: 0.3 matched more
    2-3 s clips, but 10 s thresholds set on the background bank then let
    more than 1 % of absent music match (``benchmarks/README.md``)."""
    hub_limit: int = 0
    """Index items retrieved by more than this many distinct query segments of
    one clip are ignored; 0 picks a limit from the clip length."""
    hub_ratio: float = 0.0
    """Index items whose k-occurrence (how often they are among the nearest
    neighbours of segments of *other* tracks, measured at build time) exceeds
    this many times the average are never returned; 0 keeps every item. Off
    by default: the per-clip rule, ``hub_limit``, is what keeps hubs from
    causing false matches."""
    hub_queries: int = 5000
    """Sampled index items used as queries to measure k-occurrence per shard."""
    max_false_match: float = 0.01
    """Default share of clips of absent music allowed to match (sets the
    thresholds from the calibration scores)."""
    peak_share: float = 0.5
    """Share of ``max_false_match`` given to the spectral check
    (:mod:`audiosim.match.spectral`): the score thresholds are set for the
    rest, and a clip under its threshold but above ``peak_gate`` times it
    matches when its spectral peaks line up with its best candidate's
    (:meth:`~audiosim.index.thresholds.Calibration.rule`). 0 judges on the
    score alone; so does an index calibrated without peaks."""
    peak_gate: float = 0.7
    """Lowest score, as a share of the score threshold, whose clips the
    spectral check may match."""
    calibration_seconds: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 10.0)
    """Clip lengths the no-match threshold is calibrated at."""
    calibration_clips: int = 300
    """Absent-music clips per calibration length (leave-one-track-out and
    ``--absent`` music)."""
    background_clips: int = 600
    """Clips of the model's background bank scored per calibration length
    (at most the bank's: half clean, half degraded, spread evenly over its
    excerpts). Each costs a query's searches, whatever the catalogue's size."""
    background_windows: int = 4
    """Windows of each calibration length scored in every bank clip: up to
    this many, spread over the clip, as many as fit side by side (a 10 s
    clip holds four of 1 and 2 s, three of 3 s, two of 5 s). More samples
    of short clips' scores, so steadier thresholds, for no more searches."""
    recalibrate_share: float = 0.1
    """An update recalibrates the no-match thresholds only when the tracks
    added since the last calibration exceed this share of the tracks it was
    computed on (so 40 new tracks on a 1,000-track catalogue reuse it, and a
    small catalogue is recalibrated at every addition); 0 recalibrates at
    every addition. Thresholds track the score distribution of absent music,
    which a few more tracks barely move."""

    SCORING: ClassVar[tuple[str, ...]] = (
        "query_hop_seconds", "search_k", "search_k_shared", "neighbours", "verify_candidates", "best_track_passages",
        "verify_window", "cohort_weight", "hub_limit", "hub_ratio",
    )
    """The fields that change a clip's score (not its decision): thresholds
    calibrated under other values of them do not hold. ``query_speeds`` is
    kept apart (:class:`~audiosim.index.thresholds.Calibration` records it
    on its own)."""

    def scoring(self) -> dict[str, Any]:
        """The values of :attr:`SCORING`, as a calibration records them."""
        return {name: getattr(self, name) for name in self.SCORING}


def default_home() -> Path:
    """The data home: ``$AUDIOSIM_HOME`` or ``./data``."""
    return Path(os.environ.get("AUDIOSIM_HOME", "data"))


# --------------------------------------------------------------------------
# Song similarity, descriptors and moods
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SimilarityConfig(_Config):
    """How a song becomes one vector, and how song vectors are indexed.

    A song vector is a frozen musicnn layer (:mod:`audiosim.similarity.musicnn`)
    pooled over a few excerpts of the song and L2-normalised: excerpts, not
    the whole track, so a song is analysed in a fixed time whatever its length.
    """

    model: str = "msd"
    """musicnn model whose features make the vector (``msd`` or ``mtt``)."""
    layer: str = "midlevel"
    """``midlevel`` (1506 max and mean pooled channels) or ``penultimate`` (200 units)."""
    pooling: str = "mean"
    """How the 3-second patches of all excerpts become one vector (``mean``)."""
    excerpt_seconds: float = 10.0
    """Length of each excerpt."""
    excerpt_positions: tuple[float, ...] = (0.2, 0.5, 0.8)
    """Where the excerpts are centred, as fractions of the track's length."""
    n_trees: int = 20
    search_k: int = -1

    def __post_init__(self) -> None:
        if self.model not in ("msd", "mtt"):
            raise ValueError(f"SimilarityConfig.model must be 'msd' or 'mtt', not {self.model!r}")
        if self.layer not in ("midlevel", "penultimate"):
            raise ValueError(f"SimilarityConfig.layer must be 'midlevel' or 'penultimate', not {self.layer!r}")
        if self.pooling != "mean":
            raise ValueError(f"SimilarityConfig.pooling must be 'mean', not {self.pooling!r}")
        if not self.excerpt_seconds > 0:
            raise ValueError(f"SimilarityConfig.excerpt_seconds must be positive, not {self.excerpt_seconds}")
        if not self.excerpt_positions or not all(0.0 <= x <= 1.0 for x in self.excerpt_positions):
            raise ValueError(f"SimilarityConfig.excerpt_positions must be fractions in [0, 1], "
                             f"not {self.excerpt_positions}")

    def vector_settings(self) -> dict[str, Any]:
        """The fields that shape a song vector (not the index's ``n_trees``, ``search_k``)."""
        d = self.to_dict()
        return {k: d[k] for k in ("model", "layer", "pooling", "excerpt_seconds", "excerpt_positions")}

    def vector_digest(self) -> str:
        """12 hex digits naming :meth:`vector_settings`: what song-vector caches are keyed by."""
        text = "SimilarityVectors:" + json.dumps(self.vector_settings(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class HeadConfig(_Config):
    """The song head (:mod:`audiosim.similarity.song_training`) and its triplet training."""

    dim: int = 128
    """Length of the head's song vectors."""
    margin: float = 0.2
    """Triplet margin, in cosine distance (``1 - cos``)."""
    steps: int = 1500
    soundtracks_per_batch: int = 16
    songs_per_soundtrack: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-2
    mining: str = "semi_hard_then_hard"
    soundtrack_positive: float = 0.5
    """Share of positives that are another song of the anchor's soundtrack (the rest: another excerpt)."""
    validate_every: int = 100
    val_fraction: float = 0.2
    """Share of the training soundtracks held out to pick the best step."""
    seed: int = 0

    def train_config(self) -> TrainConfig:
        """The fields the shared schedules (:func:`audiosim.training.loop.lr_at`, ``mining_at``) read."""
        return TrainConfig(steps=self.steps, batch_size=self.soundtracks_per_batch * self.songs_per_soundtrack,
                           lr=self.lr, weight_decay=self.weight_decay, margin=self.margin, distance="cosine",
                           mining=self.mining, validate_every=self.validate_every, seed=self.seed)


@dataclass(frozen=True)
class DescriptorConfig(_Config):
    """librosa analysis of a song (tempo, loudness, brightness, key ...)."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    max_seconds: float = 180.0
    """Longer songs are analysed on their central ``max_seconds``."""
    loudness_window_seconds: float = 3.0
    """Short-term loudness window for the loudness range (EBU R128 uses 3 s)."""
    silence_db: float = -60.0
    """Frames quieter than this (dBFS) are ignored for brightness and loudness range."""


@dataclass(frozen=True)
class MoodConfig(_Config):
    """Mood groups: clustering of song vectors plus descriptors."""

    n_groups: int = 0
    """Number of groups; 0 chooses ``min_groups``..``max_groups`` by silhouette score."""
    min_groups: int = 3
    """Fewest groups chosen automatically (two groups only split loud-fast from quiet-slow)."""
    max_groups: int = 8
    embedding_weight: float = 0.25
    """Share of the clustering variance given to the song embedding (the rest to descriptors)."""
    embedding_components: int = 8
    """PCA components of the song embedding used for clustering."""
    seed: int = 0
