"""Benchmark clip identification on the dev corpus (prints tables; never run by tests).

Two catalogues:

- ``--unseen ROLES`` (what a user sees): a catalogue of music the model
  never trained on (the ``catalogue`` and ``validation`` tracks of a roles
  file written by ``scripts/split_dev_corpus.py``), queries cut from all of
  it, and absent music from other soundtracks nobody trained on (its
  ``absent`` tracks);
- otherwise: the tracks the model was trained on plus 2/3 of the held-out
  tracks (from the model's ``.split.json``); queries from those held-out
  catalogue tracks, absent music from the other 1/3.

Thresholds are the product's own (``--calibration self``: what ``audiosim
index`` does). Besides the hit rate under them, the tables show the hit
rate at the best threshold chosen on the absent clips themselves (at most
1 % matching), so the price of calibration is visible, and the right track
first before any threshold.

See ``benchmarks/README.md`` for the steps and options. Example::

    ../shared/corpus/dev-corpus.sh > corpus.txt     # once: the list of corpus files
    python benchmarks/identify.py --corpus corpus.txt --queries 100
    python benchmarks/identify.py --corpus corpus.txt --quick   # a few minutes: 40 tracks, 3 conditions

Progress goes to stderr (a bar per step in a terminal, a line per step with
its time otherwise); the tables go to stdout.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiosim.cli.options import UsageError, parse_settings  # noqa: E402
from audiosim.config import FeatureConfig, IndexConfig  # noqa: E402
from audiosim.fingerprint.embed import embed_logmel  # noqa: E402
from audiosim.fingerprint.model import load_encoder  # noqa: E402
from audiosim.index import reader as I  # noqa: E402
from audiosim.index import writer as IB  # noqa: E402
from audiosim.index.settings import stored_config  # noqa: E402
from audiosim.match.background import load_bank, self_calibrate  # noqa: E402
from audiosim.match.calibrate import calibrate_leave_one_out  # noqa: E402
from audiosim.match.matcher import Matcher  # noqa: E402
from audiosim.progress import Progress  # noqa: E402
from audiosim.signal import audio, augment  # noqa: E402
from audiosim.signal import features as F  # noqa: E402
from audiosim.store.atomic import atomic_save_npy  # noqa: E402
from audiosim.store.content import FeatureStore  # noqa: E402
from audiosim.store.home import DataHome  # noqa: E402
from audiosim.training.data import load_noise_bank  # noqa: E402
from benchmarks.peers import AUDFPRINT_SHIM, ensure_audfprint  # noqa: E402  (shared with ingest.py)

SR = 8000
LENGTHS = (1.0, 2.0, 3.0, 5.0, 10.0)
NOISE_GLOBS = (  # recorded noise NOT used in training (training used megaglest tilesets)
    "/usr/share/games/lincity-ng/sounds/*",
    "/usr/share/games/widelands/data/sound/*/*.ogg",
)
SPEECH_GLOBS = (  # voices NOT used in training (training: asterisk en_US, fr_CA, it_IT; validation: es_MX)
    "/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU/**/*.wav",
    "/usr/share/klettres/*/*/*.ogg",
)
CONDITIONS = (
    "clean",
    "noise-0dB", "noise-5dB", "noise-10dB", "noise-20dB",
    "rec-0dB", "rec-5dB", "rec-10dB", "rec-20dB",
    "reverb", "phone", "mp3", "opus", "speed-2%",
    "5dB+reverb", "10dB+reverb+phone", "mp3+10dB", "speed+10dB",
    "babble-0dB", "babble-3dB", "babble-5dB", "reverb+phone+babble-5dB",
)
TALKERS = (3, 6)
"""Talkers in a babble condition (``babble-XdB``: several voices at X dB SNR;
``reverb+phone+babble-5dB``: a phone held up in a talking room)."""
QUICK = dict(tracks=40, queries=10, absent_queries=100, lengths="2,5", conditions="clean,noise-5dB,5dB+reverb")
"""The settings of ``--quick`` (the tier ``make bench`` runs)."""
EXTRA_CONDITIONS = ("speed-5%", "tempo-5%", "tempo-10%", "pitch-1st")
"""Not in the default run (pass them with --conditions): beyond the +-2 % speed
the issue asks for; see ``IndexConfig.query_speeds``."""


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Corpus and catalogue
# --------------------------------------------------------------------------


@dataclass
class Track:
    path: str
    content_hash: str
    role: str  # train | held (catalogue, query source) | absent


def unseen_tracks(corpus: Path, roles_file: Path, work: Path, n_tracks: int, seed: int) -> list[Track]:
    """The unseen catalogue (``catalogue`` and ``validation`` roles: ``held``) and
    its absent music (``absent`` role) of a roles file; ``n_tracks`` subsamples
    the catalogue and takes half as many absent tracks."""
    paths = [l.strip() for l in corpus.read_text().splitlines() if l.strip() and not l.startswith("#")]
    hashes = hash_paths(paths, work / "hashes.json")
    roles = json.loads(roles_file.read_text())
    want = {r["content_hash"]: "held" for k in ("catalogue", "validation") for r in roles[k]}
    want.update({r["content_hash"]: "absent" for r in roles["absent"]})
    seen: set[str] = set()
    tracks = []
    for p, h in sorted(hashes.items()):
        if h in want and h not in seen:
            seen.add(h)
            tracks.append(Track(p, h, want[h]))
    if n_tracks:
        rng = np.random.default_rng(seed)
        held = [t for t in tracks if t.role == "held"]
        ab = [t for t in tracks if t.role == "absent"]
        tracks = ([held[i] for i in sorted(rng.choice(len(held), min(n_tracks, len(held)), replace=False))]
                  + [ab[i] for i in sorted(rng.choice(len(ab), min(len(ab), max(1, n_tracks // 2)), replace=False))])
    return tracks


def hash_paths(paths: list[str], cache_file: Path) -> dict[str, str]:
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    out = {}
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
        if key not in cache:
            try:
                cache[key] = audio.content_hash(p)
            except audio.AudioError:
                continue
        out[p] = cache[key]
    cache_file.write_text(json.dumps(cache))
    return out


def choose_tracks(corpus: Path, split: Path, work: Path, n_tracks: int, seed: int) -> list[Track]:
    paths = [l.strip() for l in corpus.read_text().splitlines() if l.strip() and not l.startswith("#")]
    hashes = hash_paths(paths, work / "hashes.json")
    sp = json.loads(split.read_text())
    train = {d["content_hash"] for d in sp["train"]}
    held = sorted({d["content_hash"] for d in sp["validation"]})
    rng = np.random.default_rng(seed)
    held = list(rng.permutation(held))
    n_abs = len(held) // 3
    absent, held_cat = set(held[:n_abs]), set(held[n_abs:])
    seen: set[str] = set()
    tracks = []
    for p, h in sorted(hashes.items()):
        if h in seen:
            continue
        seen.add(h)
        role = "train" if h in train else "held" if h in held_cat else "absent" if h in absent else None
        if role:
            tracks.append(Track(p, h, role))
    if n_tracks:
        cat = [t for t in tracks if t.role != "absent"]
        keep_held = [t for t in cat if t.role == "held"]
        tr = [t for t in cat if t.role == "train"]
        n_held = min(len(keep_held), max(1, round(n_tracks * len(keep_held) / len(cat))))
        keep = list(rng.choice(len(keep_held), n_held, replace=False))
        keep_tr = list(rng.choice(len(tr), max(0, n_tracks - n_held), replace=False))
        ab = [t for t in tracks if t.role == "absent"]
        n_ab = min(len(ab), max(1, round(n_held / 2)))
        tracks = [keep_held[i] for i in keep] + [tr[i] for i in keep_tr] + [ab[i] for i in rng.choice(len(ab), n_ab, replace=False)]
    return tracks


def wave(track: Track, wave_cache: Path | None) -> np.ndarray:
    """The track decoded at 8 kHz; with a ``wave_cache`` folder, read from it
    or stored there (float32 ``<content hash>.npy``) for the next run."""
    f = None if wave_cache is None else wave_cache / f"{track.content_hash}.npy"
    if f is not None and f.is_file():
        return np.load(f).astype(np.float32)
    x = audio.load(track.path, SR)
    if f is not None and x.dtype == np.float32:
        atomic_save_npy(f, x)
    return x


def make_home(tracks: list[Track], work: Path, wave_cache: Path | None, fc: FeatureConfig) -> DataHome:
    """A data home whose catalogue holds the catalogue tracks (features from the wave cache when possible)."""
    from audiosim.ingest.ingest import ingest_many

    cat = sorted(t.content_hash for t in tracks if t.role != "absent")
    home = DataHome(work / f"home-{hashlib.sha256(''.join(cat).encode()).hexdigest()[:10]}").create()
    store = FeatureStore(home.features_dir, fc)
    todo = [t for t in tracks if t.role != "absent"]
    for t in todo:
        if not store.has(t.content_hash) and wave_cache is not None and (wave_cache / f"{t.content_hash}.npy").is_file():
            with torch.inference_mode():
                store.put(t.content_hash, F.log_mel(torch.from_numpy(wave(t, wave_cache)), fc).numpy())
    t0 = time.perf_counter()
    res = ingest_many([t.path for t in todo], home)
    bad = [r for r in res if r.status == "failed"]
    log(f"catalogue: {len(res) - len(bad)} tracks in {home.root} ({time.perf_counter() - t0:.0f} s); failed {len(bad)}")
    return home


# --------------------------------------------------------------------------
# Query clips
# --------------------------------------------------------------------------


def recordings(globs: tuple[str, ...]) -> torch.Tensor:
    """The files matching ``globs``, sorted, as the training reads its banks (each at unit RMS, concatenated,
    at 8 kHz; :func:`audiosim.training.data.load_noise_bank`, uncapped)."""
    return load_noise_bank(sorted(f for g in globs for f in glob.glob(g, recursive=True)), SR, max_seconds=None)


def noise_bank() -> torch.Tensor:
    """Recorded environmental noise (none of it trained on)."""
    return recordings(NOISE_GLOBS)


def speech_bank() -> torch.Tensor:
    """Voices for the babble conditions (none trained or validated on)."""
    return recordings(SPEECH_GLOBS)


def _noise(kind: str, n: int, bank: torch.Tensor, g: torch.Generator, speech: torch.Tensor | None = None) -> torch.Tensor:
    if kind == "babble":
        if speech is None or speech.numel() < 4 * SR:
            raise SystemExit("babble conditions need speech: apt-get install asterisk-core-sounds-ru-wav klettres-data")
        return augment.speech_babble(speech, 1, n, TALKERS, g)[0]
    if kind == "rec" and bank.numel() > n:
        s = int(torch.randint(0, bank.numel() - n, (1,), generator=g))
        x = bank[s : s + n]
        return x / x.pow(2).mean().sqrt().clamp_min(1e-6)
    return augment.coloured_noise(1, n, torch.rand(1, generator=g) * 2, g)[0]


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` samples (float32)."""
    return np.pad(x[:n], (0, max(0, n - len(x)))).astype(np.float32)


def degrade(cond: str, src: np.ndarray, t0: float, length: float, bank: torch.Tensor, g: torch.Generator,
            speech: torch.Tensor | None = None) -> np.ndarray:
    """The clip of ``length`` s starting at ``t0`` s of ``src`` under condition ``cond``."""
    ctx = SR // 2
    n = int(round(length * SR))
    s0 = int(round(t0 * SR))
    parts = cond.split("+")
    rate = 1.0
    for p in parts:
        if p.startswith("speed"):  # speed-X% (X defaults to 2): pitch and tempo together
            x_pct = float(p[len("speed-"):-1]) if p.startswith("speed-") and p.endswith("%") else 2.0
            rate = 1 + x_pct / 100 if torch.rand(1, generator=g) < 0.5 else 1 - x_pct / 100
    start = torch.tensor([float(s0 - ctx * rate)], dtype=torch.float64)
    x = augment.gather_resampled(torch.from_numpy(src), start, torch.tensor([rate]), ctx + n)  # (1, ctx+n)
    for p in parts:
        if not (p.startswith("tempo-") or p.startswith("pitch-")):
            continue  # draws nothing: the other conditions keep their random stream
        sign = 1.0 if torch.rand(1, generator=g) < 0.5 else -1.0
        if p.startswith("tempo-") and p.endswith("%"):  # tempo-X%: tempo only, pitch kept (librosa phase vocoder)
            r = 1 + sign * float(p[len("tempo-"):-1]) / 100
            seg = src[max(0, s0 - ctx) : s0 + int(n * r) + SR]
            x = torch.from_numpy(_fit(librosa.effects.time_stretch(seg, rate=r), ctx + n))[None]
        elif p.startswith("pitch-") and p.endswith("st"):  # pitch-Nst: pitch only, by N semitones up or down
            seg = src[max(0, s0 - ctx) : s0 + n]
            x = torch.from_numpy(_fit(librosa.effects.pitch_shift(seg, sr=SR, n_steps=sign * float(p[6:-2])), ctx + n))[None]
    if "reverb" in parts:
        rir = augment.synthetic_rir(1, SR // 2, SR, 0.3 + 0.7 * torch.rand(1, generator=g), g)
        x = augment.reverberate(x, rir)
    x = x[:, ctx:]
    if "mp3" in parts or "opus" in parts:
        x = torch.from_numpy(augment.lossy_copy(x[0].numpy(), SR, "mp3" if "mp3" in parts else "opus"))[None]
    if "phone" in parts:
        freqs = torch.linspace(0, SR / 2, augment.eq_bins(n))
        band = torch.sigmoid((freqs - 300.0) / 40.0) * torch.sigmoid((3400.0 - freqs) / 60.0)  # telephone band
        x = augment.equalise(x, band[None])
    for p in parts:
        if p.endswith("dB"):
            snr = float(p.split("-")[-1][:-2]) if "-" in p else float(p[:-2])
            kind = "rec" if p.startswith("rec") else "babble" if p.startswith("babble") else "coloured"
            x = augment.mix_at_snr(x, _noise(kind, n, bank, g, speech)[None], torch.tensor([snr]))
    gain = 10 ** ((torch.rand(1, generator=g) * 18 - 12) / 20)
    return (x[0] * gain).numpy().astype(np.float32)


def pick_start(src: np.ndarray, length: float, rng: np.random.Generator, fc: FeatureConfig) -> float | None:
    dur = len(src) / SR
    if dur < length + 1.0:
        return None
    for _ in range(20):
        t0 = float(rng.uniform(0.25, dur - length - 0.25))
        seg = src[int(t0 * SR) : int((t0 + length) * SR)]
        if 10 * np.log10(float(np.mean(seg.astype(np.float64) ** 2)) + 1e-12) > fc.silence_db + 10:
            return t0
    return None


@dataclass
class Query:
    cond: str
    length: float
    track_hash: str
    t0: float
    clip: np.ndarray
    absent: bool


def make_queries(tracks: list[Track], conds: list[str], lengths: list[float], n: int, n_absent: int,
                 wave_cache: Path | None, seed: int, fc: FeatureConfig) -> list[Query]:
    """``n`` clips per condition and length of the held tracks, and ``n_absent`` per length of the absent ones.

    Each length's catalogue clips and its absent clips are drawn from their
    own random streams (:func:`streams`), so the catalogue's clips do not
    depend on ``n_absent``, and the absent clips of a smaller run are the
    first ones of a larger run with the same seed.
    """
    bank = noise_bank()
    log(f"recorded-noise bank: {bank.numel() / SR:.0f} s")
    speech = speech_bank() if any("babble" in c for c in conds) else None
    if speech is not None:
        log(f"speech bank: {speech.numel() / SR:.0f} s")
    held = [t for t in tracks if t.role == "held"]
    absent = [t for t in tracks if t.role == "absent"]
    waves = {t.content_hash: wave(t, wave_cache) for t in held + absent}
    out = []

    def draw(pool: list[Track], length: float, rng: np.random.Generator) -> tuple[Track, float]:
        while True:
            t = pool[int(rng.integers(len(pool)))]
            t0 = pick_start(waves[t.content_hash], length, rng, fc)
            if t0 is not None:
                return t, t0

    for li, length in enumerate(lengths):
        rng, g = streams(seed, li, "catalogue")
        for cond in conds:
            for _ in range(n):
                t, t0 = draw(held, length, rng)
                out.append(Query(cond, length, t.content_hash, t0, degrade(cond, waves[t.content_hash], t0, length, bank, g, speech), False))
        rng, g = streams(seed, li, "absent")
        for made in range(n_absent):  # absent clips cycle through the conditions
            t, t0 = draw(absent, length, rng)
            cond = conds[made % len(conds)]
            out.append(Query(cond, length, t.content_hash, t0, degrade(cond, waves[t.content_hash], t0, length, bank, g, speech), True))
    return out


def streams(seed: int, length_index: int, kind: str) -> tuple[np.random.Generator, torch.Generator]:
    """The numpy and torch random streams of one length's ``kind`` of clips (``catalogue`` or ``absent``)."""
    ss = np.random.SeedSequence([seed, length_index, ("catalogue", "absent").index(kind)])
    return np.random.default_rng(ss), torch.Generator().manual_seed(int(ss.generate_state(1)[0]))


# --------------------------------------------------------------------------
# Running and reporting
# --------------------------------------------------------------------------


def run_ours(matcher: Matcher, queries: list[Query], hash_of: dict[int, str]) -> pd.DataFrame:
    rows = []
    for i, q in enumerate(queries):
        c0 = time.process_time()
        m = matcher.answer(q.clip, SR)  # a clip that cannot be heard (silent stretch) is an error answer
        cpu = time.process_time() - c0
        rows.append(dict(
            cond=q.cond, length=q.length, absent=q.absent, truth=q.track_hash, t0=q.t0,
            found=hash_of.get(m.candidate_track_id) if m.candidate_track_id is not None else None,
            offset=m.candidate_offset if m.candidate_offset is not None else 0.0, score=m.score,
            matched=m.matched, seconds=m.seconds, cpu_seconds=cpu, n_segments=m.n_segments,
        ))
        if (i + 1) % 500 == 0:
            log(f"  {i + 1}/{len(queries)} clips")
    return pd.DataFrame(rows)


def mark_repeats(df: pd.DataFrame, load_wave, fc: FeatureConfig, min_similarity: float = 0.85) -> pd.DataFrame:
    """Add ``same_passage``: the answer holds the clip's music where it says.

    True when the answer is the right track within 0.5 s of the true offset,
    or when the clean audio of the named track at the named offset repeats
    the clip's passage: game music loops (the same passage at another place
    of its track) and the corpus holds a few duplicates (the same music in
    two files). "Repeats" means the two clean log-mels, over the clip's
    length, correlate above ``min_similarity`` at some shift up to 0.25 s
    (:func:`audiosim.signal.features.shifted_similarity`). ``load_wave(content_hash)``
    returns a track's 8 kHz waveform or None.
    """
    from audiosim.signal.features import shifted_similarity

    df = df.copy()
    same = ((df.found == df.truth) & ((df.offset - df.t0).abs() <= 0.5)).to_numpy().copy()
    lag = F.seconds_to_frames(0.25, fc)
    for i in np.flatnonzero(~same & df.found.notna().to_numpy()):
        row = df.iloc[i]
        src, hit = load_wave(row.truth), load_wave(row.found)
        if src is None or hit is None:
            continue
        n = int(row.length * fc.sample_rate)
        a0 = int(row.t0 * fc.sample_rate)
        b0 = int(np.clip(row.offset * fc.sample_rate, 0, max(0, len(hit) - n)))
        if a0 + n > len(src) or b0 + n > len(hit):
            continue
        pair = np.stack([src[a0:a0 + n], hit[b0:b0 + n]]).astype(np.float32)
        lm = F.log_mel(torch.from_numpy(pair), fc)
        same[i] = bool(shifted_similarity(lm, lag)[0, 1] > min_similarity)
    df["same_passage"] = same
    return df


def summarise(df: pd.DataFrame, name: str) -> dict[str, pd.DataFrame]:
    pres = df[~df.absent].copy()
    pres["right"] = (pres.found == pres.truth) & ((pres.offset - pres.t0).abs() <= 0.5)
    pres["hit"] = pres.right & pres.matched
    extra = {}
    if "same_passage" in pres:
        pres["passage_hit"] = pres.same_passage & pres.matched
        passage = pres.pivot_table(index="cond", columns="length", values="passage_hit", aggfunc="mean", sort=False)
        passage.loc["ALL"] = pres.groupby("length").passage_hit.mean()
        extra[f"{name}: hit rate counting a repeat of the same passage as the right offset (matched)"] = passage
    pres["track_hit"] = (pres.found == pres.truth) & pres.matched
    track = pres.pivot_table(index="cond", columns="length", values="track_hit", aggfunc="mean", sort=False)
    track.loc["ALL"] = pres.groupby("length").track_hit.mean()
    hit = pres.pivot_table(index="cond", columns="length", values="hit", aggfunc="mean", sort=False)
    top1 = pres.pivot_table(index="cond", columns="length", values="right", aggfunc="mean", sort=False)
    hit.loc["ALL"] = pres.groupby("length").hit.mean()
    top1.loc["ALL"] = pres.groupby("length").right.mean()
    same = pres[pres.found == pres.truth]
    err = (same.offset - same.t0).abs()
    off = pd.DataFrame({
        "median |err| s": err.groupby(same.length).median(),
        "p95 |err| s": err.groupby(same.length).quantile(0.95),
        "within 0.1 s": (err <= 0.1).groupby(same.length).mean(),
        "within 0.5 s": (err <= 0.5).groupby(same.length).mean(),
    })
    ab = df[df.absent]
    fm = pd.DataFrame({
        "absent clips": ab.groupby("length").size(),
        "false-match rate": ab.groupby("length").matched.mean(),
        **({"false-match rate (not counting catalogue copies of the music)":
            (ab.matched & ~ab.same_passage).groupby(ab.length).mean()} if "same_passage" in ab else {}),
        "wrong-track matches (present clips)": pres[pres.matched & (pres.found != pres.truth)].groupby("length").size()
        .reindex(ab.groupby("length").size().index, fill_value=0),
    })
    lat = pd.DataFrame({
        "median ms (wall)": df.groupby("length").seconds.median() * 1000,
        "p95 ms (wall)": df.groupby("length").seconds.quantile(0.95) * 1000,
    })
    if "cpu_seconds" in df:
        lat["median ms (CPU)"] = df.groupby("length").cpu_seconds.median() * 1000
        lat["p95 ms (CPU)"] = df.groupby("length").cpu_seconds.quantile(0.95) * 1000
    # Clips that do not match as given are tried at other speeds (IndexConfig.query_speeds): show both kinds.
    lat["median ms, catalogue clips"] = pres.groupby("length").seconds.median() * 1000
    lat["median ms, absent clips"] = ab.groupby("length").seconds.median() * 1000
    return {f"{name}: hit rate (right track, |offset err| <= 0.5 s, matched)": hit,
            **extra,
            f"{name}: top-1 before the threshold": top1,
            f"{name}: right track, any offset (matched) - repeated sections make offsets ambiguous": track,
            f"{name}: offset error (right track)": off,
            f"{name}: false matches": fm,
            f"{name}: latency per clip (index and model loaded)": lat}


def best_thresholds(df: pd.DataFrame, max_false_match: float = 0.01) -> pd.Series:
    """Per clip length, the lowest score threshold that at most ``max_false_match``
    of the absent clips exceed (chosen on the absent clips themselves)."""
    out = {}
    for length, ab in df[df.absent].groupby("length"):
        sc = np.sort(ab.score.to_numpy())[::-1]
        allowed = int(np.floor(max_false_match * len(sc) + 1e-9))
        out[length] = float(sc[allowed]) if allowed < len(sc) else -np.inf
    return pd.Series(out)


def calibration_price(df: pd.DataFrame, name: str, max_false_match: float = 0.01) -> dict[str, pd.DataFrame]:
    """Hit rate (right track) under the product's own thresholds, at the best
    threshold chosen on the absent clips (at most ``max_false_match`` of them
    matching), and right track first before any threshold; per length, then
    per condition and length; and the false-match rates that go with them."""
    best = best_thresholds(df, max_false_match)
    pres = df[~df.absent].copy()
    pres["first"] = pres.found == pres.truth
    pres["own"] = pres["first"] & pres.matched
    pres["best"] = pres["first"] & (pres.score > pres.length.map(best))
    ab = df[df.absent]
    by_len = pd.DataFrame({
        "own thresholds": pres.groupby("length").own.mean(),
        "best threshold (on the absent clips)": pres.groupby("length").best.mean(),
        "right track first": pres.groupby("length")["first"].mean(),
        "false matches, own": ab.groupby("length").matched.mean(),
        "false matches, best": (ab.score > ab.length.map(best)).groupby(ab.length).mean(),
        "absent clips": ab.groupby("length").size(),
    }).T
    cells = {}
    for (cond, length), g in pres.groupby(["cond", "length"], sort=False):
        cells.setdefault(cond, {})[length] = f"{g.own.mean():.2f} / {g.best.mean():.2f} / {g['first'].mean():.2f}"
    by_cond = pd.DataFrame(cells).T
    hits = pres[pres.own]
    err = (hits.offset - hits.t0).abs()
    off = pd.DataFrame({"offset within 0.5 s": (err <= 0.5).groupby(hits.length).mean()}).T
    if "same_passage" in hits:
        off.loc["within 0.5 s or at a repeat of the passage"] = ((err <= 0.5) | hits.same_passage).groupby(hits.length).mean()
    return {f"{name}: hit rate (right track) at <= {max_false_match:.0%} false matches: the price of calibration": by_len,
            f"{name}: by condition, own thresholds / best threshold / right track first": by_cond,
            f"{name}: offsets of the hits (own thresholds)": off}


def print_tables(tables: dict[str, pd.DataFrame]) -> None:
    for title, t in tables.items():
        print(f"\n### {title}\n")
        print(t.to_markdown(floatfmt=".3f") if hasattr(t, "to_markdown") and _has_tabulate() else t.round(3).to_string())


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


def sweep_search_k(index: I.Index, model, queries: list[Query], values: list[int], k: int) -> pd.DataFrame:
    """Recall of Annoy against exact search, and time, for several search_k."""
    vecs = []
    hop = F.seconds_to_frames(index.config.query_hop_seconds, model.features)
    for q in queries:
        with torch.inference_mode():
            lm = F.log_mel(torch.from_numpy(q.clip), model.features)
        v, _ = embed_logmel(model, lm, hop)
        vecs.append(v)
    v = np.concatenate(vecs)[:3000]
    allv = np.concatenate([np.stack([s.vector(i) for i in range(s.info.items)]) for s in index.shards])
    usable = np.concatenate([s.usable for s in index.shards])
    sims = v @ allv.T
    sims[:, ~usable] = -np.inf
    exact = np.argsort(-sims, axis=1)[:, :k]
    rows = []
    for sk in values:
        t0 = time.perf_counter()
        nn = index.search(v, k, search_k=sk)
        dt = (time.perf_counter() - t0) / len(v)
        rec = np.mean([len(set(a) & set(b)) / k for a, b in zip(nn.item, exact)])
        rows.append({"search_k": sk, "recall@k": rec, "ms per segment": dt * 1000})
    return pd.DataFrame(rows).set_index("search_k")


# --------------------------------------------------------------------------
# Peer: audfprint
# --------------------------------------------------------------------------


def run_audfprint(peer_dir: Path, work: Path, tracks: list[Track], queries: list[Query], wave_cache: Path | None) -> pd.DataFrame:
    """Index the catalogue with audfprint and match the same clips (WAV files)."""
    import soundfile as sf

    wdir = work / "audfprint"
    wdir.mkdir(parents=True, exist_ok=True)
    shim = wdir / "run_audfprint.py"
    shim.write_text(AUDFPRINT_SHIM.format(peer=str(peer_dir)))
    exe = [sys.executable, str(shim)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(peer_dir.parent / "pylib"), str(peer_dir)])}
    cat_list = wdir / "catalogue.txt"
    cat = [t for t in tracks if t.role != "absent"]
    wav_dir = wdir / "catalogue-wav"
    wav_dir.mkdir(exist_ok=True)
    lines = []
    for t in cat:  # same audio as ours: the 8 kHz decode, as WAV
        p = wav_dir / f"{t.content_hash}.wav"
        if not p.exists():
            sf.write(p, wave(t, wave_cache), SR, subtype="PCM_16")
        lines.append(str(p))
    cat_list.write_text("\n".join(lines) + "\n")
    db = wdir / "fpdb.pklz"
    if not db.exists():
        t0 = time.perf_counter()
        subprocess.run(exe + ["new", "--dbase", str(db), "--samplerate", str(SR), "--list", str(cat_list)], check=True,
                       stdout=subprocess.DEVNULL, env=env)
        log(f"audfprint: indexed {len(cat)} tracks in {time.perf_counter() - t0:.0f} s")
    qdir = wdir / "queries"
    if qdir.exists():
        shutil.rmtree(qdir)
    qdir.mkdir()
    qpaths = []
    for i, q in enumerate(queries):
        p = qdir / f"q{i:06d}.wav"
        sf.write(p, np.clip(q.clip, -1, 1), SR, subtype="PCM_16")
        qpaths.append(p)
    qlist = wdir / "queries.txt"
    qlist.write_text("\n".join(map(str, qpaths)) + "\n")
    t0 = time.perf_counter()
    out = subprocess.run(
        exe + ["match", "--dbase", str(db), "--samplerate", str(SR), "--list", str(qlist)],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    wall = time.perf_counter() - t0
    found: dict[str, tuple[str, float]] = {}
    for line in out.splitlines():
        # "Matched <query> <dur> sec <n> raw hashes as <ref> at <t> s with <c> of <d> common hashes ..."
        # where <t> is the reference time at the query's start.
        if line.startswith("Matched"):
            w = line.split()
            qn = Path(w[1]).stem
            ref = Path(w[w.index("as") + 1]).stem
            at = float(w[w.index("at") + 1])
            found[qn] = (ref, at)
    rows = []
    per_clip = wall / max(len(queries), 1)
    for i, q in enumerate(queries):
        ref, at = found.get(f"q{i:06d}", (None, 0.0))
        rows.append(dict(cond=q.cond, length=q.length, absent=q.absent, truth=q.track_hash, t0=q.t0, found=ref,
                         offset=at, score=0.0, matched=ref is not None, seconds=per_clip, n_segments=0))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "fingerprint.pt"))
    ap.add_argument("--split", help="the model's split.json (default: beside the model)")
    ap.add_argument("--corpus", metavar="LIST", default=None,
                    help="list of corpus audio files, one path a line (required; make one with ../shared/corpus/dev-corpus.sh > LIST)")
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / "work" / "identify"),
                    help="scratch folder for data homes and clips, reused by later runs "
                    "(default: benchmarks/work/identify)")
    ap.add_argument("--wave-cache", default=None, metavar="DIR",
                    help="folder of decoded 8 kHz .npy by content hash: read when present, written "
                    "otherwise, so reruns decode nothing (default: decode every run)")
    ap.add_argument("--quick", action="store_true",
                    help="the quick tier of `make bench`: 40 tracks, 10 clips of 3 conditions at 2 and 5 s, "
                    "100 absent clips (options given explicitly still apply)")
    ap.add_argument("--unseen", metavar="ROLES", default=None,
                    help="benchmark like a user: the catalogue and absent music of this roles file "
                    "(scripts/split_dev_corpus.py), none of it trained on")
    ap.add_argument("--calibration", choices=["self", "leave-one-out"], default="self",
                    help="thresholds: self (what `audiosim index` does: the model's background bank, else "
                    "leave-one-track-out) or leave-one-out (default: %(default)s)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the index even if the work folder has one")
    ap.add_argument("--tracks", type=int, default=0, help="subsample the catalogue to N tracks (0: all)")
    ap.add_argument("--queries", type=int, default=50, help="clips per condition and length")
    ap.add_argument("--absent-queries", type=int, default=300, help="absent-music clips per length")
    ap.add_argument("--lengths", default=",".join(f"{x:g}" for x in LENGTHS))
    ap.add_argument("--conditions", default=",".join(CONDITIONS),
                    help=f"comma list; also available: {','.join(EXTRA_CONDITIONS)}".replace("%", "%%"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                    help="an IndexConfig field for the index and its calibration, e.g. query_hop_seconds=0.19 "
                    "or search_k=1000 (repeatable; default: the index's own, IndexConfig's for a new one)")
    ap.add_argument("--search-k", default="", help="comma list: sweep search_k (recall vs exact, time)")
    ap.add_argument("--peer", choices=["audfprint"], help="also run a peer system on the same clips")
    ap.add_argument("--peers-dir", default=None, help="where peer systems are installed (default: WORK/peers)")
    ap.add_argument("--save", help="write per-clip results (CSV) here")
    ap.add_argument("--tables-from", metavar="CSV", help="only print the tables of a CSV written by --save")
    args = ap.parse_args(argv)
    try:
        overrides = parse_settings(args.set)
        IndexConfig().with_fields(overrides)  # an unknown field or a value of the wrong type stops here
    except (UsageError, ValueError) as e:
        ap.error(f"--set {e}" if isinstance(e, ValueError) else str(e))
    if args.tables_from:
        df = pd.read_csv(args.tables_from)
        print_tables({**calibration_price(df, "audiosim"), **summarise(df, "audiosim")})
        return 0
    if args.corpus is None:
        ap.error("needs --corpus LIST; make one with ../shared/corpus/dev-corpus.sh > LIST")
    if not Path(args.corpus).is_file():
        ap.error(f"--corpus {args.corpus}: no such file; make one with ../shared/corpus/dev-corpus.sh > LIST")
    if args.quick:
        given = [a.split("=", 1)[0] for a in (argv if argv is not None else sys.argv[1:])]
        for option, value in QUICK.items():
            if f"--{option.replace('_', '-')}" not in given:
                setattr(args, option, value)
    if args.peers_dir is None:
        args.peers_dir = str(Path(args.work) / "peers")
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model)
    split = Path(args.split) if args.split else model_path.with_name(model_path.stem + ".split.json")
    wave_cache = Path(args.wave_cache) if args.wave_cache else None
    if wave_cache is not None:
        wave_cache.mkdir(parents=True, exist_ok=True)
    model = load_encoder(model_path)
    card = model.identity.card
    print(f"# identify benchmark\n\nmodel {model_path} digest {model.identity.digest} step {card.get('step')}; "
          f"torch threads {args.threads}; seed {args.seed}")

    if args.unseen:
        tracks = unseen_tracks(Path(args.corpus), Path(args.unseen), work, args.tracks, args.seed)
    else:
        tracks = choose_tracks(Path(args.corpus), split, work, args.tracks, args.seed)
    roles = pd.Series([t.role for t in tracks]).value_counts().to_dict()
    print(f"tracks: {roles} (catalogue = train + held; queries from held; absent music from absent)")
    home = make_home(tracks, work, wave_cache, model.features)

    t0 = time.perf_counter()
    calibrator = self_calibrate if args.calibration == "self" else calibrate_leave_one_out
    with Progress() as progress:
        config = stored_config(home).with_fields(overrides) if overrides else None
        res = IB.update(home, model_path, config=config, calibrate=partial(calibrator, progress=progress),
                        progress=progress, rebuild=args.rebuild)
        bank = load_bank(model)
        want = "background" if args.calibration == "self" and bank is not None and \
            bank.fits(model, I.Manifest.load(home.index_dir).config) is None else "leave-one-track-out"
        have = I.Manifest.load(home.index_dir).calibration
        if not res.calibrated and (have is None or have.method != want):
            c0 = time.perf_counter()  # an index kept from an earlier run: calibrate it the requested way
            idx0 = I.Index.open(home)
            try:
                IB.store_calibration(home, calibrator(idx0, model, progress=progress))
            finally:
                idx0.close()
            res.calibrate_seconds = time.perf_counter() - c0
    log(f"index: {res.action} in {time.perf_counter() - t0:.0f} s")
    matcher = Matcher(home, model)
    idx = matcher.index
    size = idx.disk_bytes()
    cal = matcher.calibration
    print(f"\nindex: {idx.n_items} items, {len(idx.shards)} shard(s), {idx.audio_seconds / 3600:.2f} h of audio, "
          f"{size / 1e6:.1f} MB = {size / idx.audio_seconds:.0f} bytes per second of audio "
          f"(Annoy {idx.config.n_trees} trees, dim {idx.dim}, hop {idx.config.index_hop_seconds} s)")
    if res.segments_per_second:
        print(f"embedding throughput at build: {res.segments_per_second:.0f} indexed segments/s "
              f"({res.segments_per_second * idx.config.index_hop_seconds:.0f} s of audio per s)")
    if cal is not None:
        print("\ncalibration (" + cal.method + f", {cal.tracks} tracks):\n")
        print(pd.DataFrame(cal.table(config=idx.config)).to_string(index=False))

    lengths = [float(x) for x in args.lengths.split(",")]
    conds = [c for c in args.conditions.split(",") if c]
    t0 = time.perf_counter()
    queries = make_queries(tracks, conds, lengths, args.queries, args.absent_queries, wave_cache, args.seed, model.features)
    log(f"{len(queries)} clips made in {time.perf_counter() - t0:.0f} s")

    if args.search_k:
        sub = [q for q in queries if not q.absent and q.length == 5.0 and q.cond == "5dB+reverb"][:60]
        print("\n### search_k sweep (5 s clips at 5 dB + reverb; recall of the k=10 nearest vs exact search)\n")
        print(sweep_search_k(idx, model, sub, [int(x) for x in args.search_k.split(",")], idx.config.neighbours).round(4).to_string())

    hash_of = {tid: h for tid, h in idx.live_tracks().items()}
    t0 = time.perf_counter()
    df = run_ours(matcher, queries, hash_of)
    log(f"ours: {len(df)} clips in {time.perf_counter() - t0:.0f} s")
    by_hash = {t.content_hash: t for t in tracks}
    waves: dict[str, np.ndarray] = {}

    def load_wave(h: str) -> np.ndarray | None:
        if h not in waves and h in by_hash:
            waves[h] = wave(by_hash[h], wave_cache)
        return waves.get(h)

    df = mark_repeats(df, load_wave, model.features)
    if args.save:
        df.drop(columns=[]).to_csv(args.save, index=False)
    print(f"\nindex build {res.embed_seconds:.0f} s embedding, {res.build_seconds:.0f} s Annoy, "
          f"{res.calibrate_seconds:.0f} s calibration")
    tables = {**calibration_price(df, "audiosim"), **summarise(df, "audiosim")}
    print_tables(tables)
    if args.peer == "audfprint":
        peer = ensure_audfprint(Path(args.peers_dir))
        pdf = mark_repeats(run_audfprint(peer, work, tracks, queries, wave_cache), load_wave, model.features)
        print_tables({k: v for k, v in summarise(pdf, "audfprint").items() if "latency" not in k})
        print(f"\naudfprint: {pdf.seconds.iloc[0] * 1000:.0f} ms per clip on average (one batch process, incl. start-up)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
