"""Benchmark catalogue growth: index size, build time, memory, lookup time and accuracy as the haystack grows.

Usage::

    python benchmarks/scale.py --corpus LIST [--base-hours H|all] [--sizes 10,30]
                               [--clips N] [--absent-tracks N] [--seed N]

1. A base catalogue (``--base-hours`` of corpus tracks, drawn at random;
   ``all``: every track but the absent ones) is
   ingested (:func:`audiosim.ingest.ingest.ingest_many`) and indexed with
   calibrated thresholds (:func:`audiosim.index.writer.update` with
   :func:`audiosim.match.background.self_calibrate`: the model's background
   bank, else leave-one-track-out), as ``audiosim index`` does.
2. The catalogue then grows to each of ``--sizes`` times the base's hours
   with distractors: speed-shifted copies (pitch and tempo together, as a
   tape played fast or slow; factors ``--speeds``, 0.90-0.94 and 1.06-1.10
   by default) of other corpus tracks, which fingerprint as different
   recordings. With ``--base-hours all`` no track is left over, so the
   copies are of the catalogue's own tracks, at speeds far from those a
   lookup allows (0.66-0.88 and 1.12-1.48 by default, a little over 30x
   the originals' hours): the standard clips' own music as other
   recordings is in the haystack. The copies are made from waveforms,
   without writing audio: each source is decoded once
   (:func:`audiosim.signal.audio.load`), resampled per factor
   (:func:`audiosim.signal.resample.resample`), turned into a log-mel
   (:func:`audiosim.signal.features.log_mel_stream`), put into the
   feature store and catalogued (as ``ok`` tracks whose path names the
   source and factor but does not exist), then indexed by the same
   :func:`~audiosim.index.writer.update`, which adds a shard per growth step
   and recalibrates against the whole grown index, unless
   ``--keep-thresholds`` keeps the base's. With ``--compact`` the largest
   size is then merged into one shard (:func:`audiosim.index.writer.compact`,
   recalibrated) and measured again.
3. At each size a fresh process (``--measure``, so that nothing else this
   one holds is counted) opens a :class:`audiosim.match.matcher.Matcher`
   and answers the standard clips, one thread: ``--clips`` clips per
   length (1, 5 and 10 s) of base tracks, lightly degraded (gain 0.7 and
   white noise at 20 dB SNR), and as many of ``--absent-tracks`` corpus
   tracks kept out of the catalogue and out of the distractors' sources.

Printed per size: catalogue hours, index items and shards, index bytes
per audio second, build time (embedding and Annoy apart, calibration
apart), resident memory the loaded index added (from
``/proc/self/smaps_rollup``: anonymous/private vs file-backed, i.e. the
memory-mapped shards), lookup median and p95 per clip length, and the hit
rate (right track) and false-match rate (absent clips matched; base clips
matched to a wrong track apart) under the index's own thresholds.

The data home is temporary (removed afterwards) unless ``--home`` is
given. Run it with ``nice -n 10`` and ``OMP_NUM_THREADS=1`` on a shared
machine. The lookups use ``--threads`` torch threads (default 1, one
request); ingest, distractors and the index build ``--build-threads``
(default: the same).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LENGTHS = (1.0, 5.0, 10.0)
SPEEDS = (0.90, 0.92, 0.94, 1.06, 1.08, 1.10)
"""Speed factors of copies of tracks outside the catalogue."""
COPY_SPEEDS = tuple(round(0.66 + 0.02 * i, 2) for i in range(12)) + tuple(round(1.12 + 0.02 * i, 2) for i in range(19))
"""Speed factors of copies of the catalogue's own tracks (``--base-hours all``): 0.66-0.88 and 1.12-1.48, far
from the +-2 % a lookup allows, so each copy is another recording of the same music; together a little over 30x
the originals' hours."""
SNR_DB, GAIN = 20.0, 0.7


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------
# Choosing tracks
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which corpus tracks play which part: base catalogue, absent clips, distractor sources."""

    base: list[str]
    absent: list[str]
    sources: list[str]
    durations: dict[str, float]


def select(paths: list[str], base_hours: float | None, absent_tracks: int, seed: int) -> Selection:
    """Shuffle the corpus (``seed``) and take base tracks until ``base_hours``, then absent tracks; the rest are sources.

    ``base_hours=None`` takes the whole corpus (:func:`select_whole`).
    Tracks under 20 s are left out (too short for 10 s clips with margins).
    """
    durations = track_durations(paths)
    usable = sorted(p for p, d in durations.items() if d >= 20.0)
    if base_hours is None:
        return select_whole(usable, durations, absent_tracks, seed)
    random.Random(seed).shuffle(usable)
    base, total = [], 0.0
    while usable and total < base_hours * 3600:
        base.append(usable.pop())
        total += durations[base[-1]]
    absent = [usable.pop() for _ in range(min(absent_tracks, len(usable)))]
    return Selection(base, absent, usable, durations)


def track_durations(paths: list[str]) -> dict[str, float]:
    """Seconds of each readable file of ``paths`` (an unreadable file plays no part)."""
    import soundfile as sf

    durations = {}
    for p in paths:
        try:
            durations[p] = float(sf.info(p).duration)
        except Exception:
            continue
    return durations


def select_whole(usable: list[str], durations: dict[str, float], absent_tracks: int, seed: int) -> Selection:
    """The whole corpus as the base, but for whole soundtracks kept out as absent music.

    A file packaged twice counts once (the first path by content). Absent
    music is drawn by soundtrack (:func:`scripts.split_dev_corpus.soundtrack`),
    at random, until there are at least ``absent_tracks`` tracks; a soundtrack
    of more tracks than that is never drawn. Absent tracks of a soundtrack
    the catalogue holds would be variations of its themes, not music it
    lacks. The distractors' sources are the base's own tracks (copies at
    other speeds, see :data:`COPY_SPEEDS`).
    """
    from audiosim.signal.audio import content_hash
    from scripts.split_dev_corpus import soundtrack

    seen: set[str] = set()
    unique = [p for p in usable if not ((h := content_hash(p)) in seen or seen.add(h))]
    by_soundtrack: dict[str, list[str]] = {}
    for p in unique:
        by_soundtrack.setdefault(soundtrack(p), []).append(p)
    names = sorted(by_soundtrack)
    random.Random(seed).shuffle(names)
    absent: list[str] = []
    for name in names:
        if len(absent) >= absent_tracks:
            break
        if len(by_soundtrack[name]) <= absent_tracks:
            absent += by_soundtrack[name]
    kept_out = set(absent)
    base = [p for p in unique if p not in kept_out]
    random.Random(seed).shuffle(base)
    return Selection(base, absent, list(base), durations)


# --------------------------------------------------------------------------
# Distractors
# --------------------------------------------------------------------------


def speed_shift(wave: np.ndarray, speed: float) -> np.ndarray:
    """``wave`` played ``speed`` times as fast (pitch and tempo together), same sample rate."""
    from audiosim.signal.resample import resample

    num = round(speed * 100)
    return resample(wave, num, 100)


def add_distractors(home: Path, sources: list[str], target_seconds: float, speeds: tuple[float, ...],
                    used: dict[str, int]) -> float:
    """Catalogue speed-shifted copies of ``sources`` until ``target_seconds`` of them are added.

    Each source gives one copy per factor in ``speeds`` (``used`` remembers
    how many factors of each source are taken already, across calls).
    Features go to the feature store and a row to the catalogue, as ingest
    would, so :func:`audiosim.index.writer.update` indexes them.

    Returns
    -------
    float
        Seconds of distractor audio added.
    """
    from audiosim.config import FeatureConfig
    from audiosim.signal import audio
    from audiosim.signal.features import log_mel_stream
    from audiosim.store.catalog import Catalog
    from audiosim.store.content import FeatureStore
    from audiosim.store.home import DataHome

    fc = FeatureConfig()
    dh = DataHome.resolve(home)
    store = FeatureStore(dh.features_dir, fc)
    added, made = 0.0, 0
    with Catalog(dh.catalog_path) as cat:
        for src in sources:
            if added >= target_seconds:
                break
            start = used.get(src, 0)
            if start >= len(speeds):
                continue
            try:
                wave = audio.load(src, fc.sample_rate)
            except audio.AudioError as e:
                log(f"distractor source skipped: {e}")
                used[src] = len(speeds)
                continue
            src_hash = audio.content_hash(src)
            for i in range(start, len(speeds)):
                if added >= target_seconds:
                    break
                v = speeds[i]
                y = speed_shift(wave, v)
                digest = hashlib.sha256(f"distractor {src_hash} speed {v:.4f}".encode()).hexdigest()
                store.put(digest, log_mel_stream([y], fc))
                seconds = len(y) / fc.sample_rate
                with cat.transaction():
                    cat.upsert_ok(f"{src}@speed{v:.2f}", content_hash=digest, size=0, mtime_ns=0, duration=seconds,
                                  sample_rate=fc.sample_rate, channels=1, title=f"{Path(src).stem} x{v:.2f}")
                added += seconds
                used[src] = i + 1
            made += 1
            if made % 25 == 0:
                log(f"distractors: {made} sources, {added / 3600:.1f} of {target_seconds / 3600:.1f} h")
    if added < target_seconds:
        log(f"warning: only {added / 3600:.2f} h of distractors could be made ({target_seconds / 3600:.2f} h asked)")
    return added


# --------------------------------------------------------------------------
# Standard clips
# --------------------------------------------------------------------------


def standard_clips(sel: Selection, per_length: int, seed: int, sample_rate: int) -> dict[str, np.ndarray]:
    """Clips of base tracks (lightly degraded) and of absent tracks, ``per_length`` of each per length.

    Returns arrays for an ``.npz``: ``clip_<i>`` waveforms and the
    ``length``, ``absent`` and ``truth`` (base track path index, -1 for
    absent) of each.
    """
    from audiosim.match.calibrate import read_excerpt

    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    meta = {"length": [], "absent": [], "truth": []}
    i = 0
    for length in LENGTHS:
        for absent, pool in ((False, sel.base), (True, sel.absent)):
            for _ in range(per_length):
                k = int(rng.integers(len(pool)))
                path = pool[k]
                t0 = float(rng.uniform(2.0, max(2.0, sel.durations[path] - length - 2.0)))
                x = read_excerpt(path, t0, length, sample_rate)
                if not absent:
                    power = float(np.mean(x.astype(np.float64) ** 2)) + 1e-12
                    noise = rng.standard_normal(len(x)) * np.sqrt(power / 10 ** (SNR_DB / 10))
                    x = (GAIN * (x + noise)).astype(np.float32)
                out[f"clip_{i}"] = x
                meta["length"].append(length)
                meta["absent"].append(absent)
                meta["truth"].append(-1 if absent else k)
                i += 1
    out.update({k: np.asarray(v) for k, v in meta.items()})
    return out


# --------------------------------------------------------------------------
# Measuring a loaded index (in a fresh process)
# --------------------------------------------------------------------------


def smaps_rollup() -> dict[str, int]:
    """This process's ``/proc/self/smaps_rollup`` fields, in bytes."""
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return fields


def measure(home: Path, clips_file: Path, truth_ids: list[int], threads: int) -> dict:
    """Open a Matcher on ``home``, answer every standard clip, return timings, accuracy and memory."""
    import torch

    from audiosim.fingerprint.model import load_encoder
    from audiosim.index.reader import Index
    from audiosim.match.matcher import Matcher

    torch.set_num_threads(threads)
    with np.load(clips_file, allow_pickle=False) as z:
        lengths, absent, truth = z["length"], z["absent"], z["truth"]
        clips = [z[f"clip_{i}"] for i in range(len(lengths))]
    index_meta = Index.open(home)
    model = load_encoder(index_meta.manifest.model_path).for_inference()
    index_meta.close()
    before = smaps_rollup()
    t0 = time.perf_counter()
    matcher = Matcher(home, model, threads=threads)
    open_seconds = time.perf_counter() - t0
    opened = smaps_rollup()
    sr = model.features.sample_rate
    rows = []
    for x, length, ab, tr in zip(clips, lengths, absent, truth):
        t1 = time.perf_counter()
        m = matcher.answer(x, sr)
        dt = time.perf_counter() - t1
        rows.append({"length": float(length), "absent": bool(ab), "matched": m.matched,
                     "right": bool(m.matched and not ab and m.track_id == truth_ids[int(tr)]), "seconds": dt})
    after = smaps_rollup()
    idx = matcher.index
    result = {
        "items": idx.n_items, "shards": len(idx.shards), "audio_seconds": idx.audio_seconds,
        "disk_bytes": idx.disk_bytes(), "open_seconds": open_seconds, "rows": rows,
        "memory": {k: {f: d.get(f, 0) - before.get(f, 0) for f in ("Rss", "Anonymous", "Private_Clean",
                                                                     "Private_Dirty", "Shared_Clean")}
                   for k, d in (("opened", opened), ("after_lookups", after))},
    }
    matcher.close()
    return result


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def build(home: Path, model: Path | None, calibrate: bool = True, compact: bool = False) -> dict:
    """Update the index (embed what is new; recalibrate when due, unless ``calibrate`` is False) and time it.

    With ``compact``, merge its shards into one instead (as ``audiosim index
    --compact``; recalibrated unless ``calibrate`` is False).
    """
    from audiosim.index import writer
    from audiosim.match.background import self_calibrate

    calibrator = self_calibrate if calibrate else None
    t0, c0 = time.perf_counter(), cpu_seconds()
    if compact:
        r = writer.compact(home, model=model, calibrate=calibrator)
    else:
        r = writer.update(home, model=model, calibrate=calibrator)
    return {"embed": r.embed_seconds, "annoy": r.build_seconds, "calibrate": r.calibrate_seconds,
            "total": time.perf_counter() - t0, "cpu": cpu_seconds() - c0, "items": r.items,
            "calibrated": r.calibrated}


def run_measure(home: Path, clips_file: Path, truth_ids: list[int], threads: int) -> dict:
    """:func:`measure` in a fresh process (``--measure``), so the memory counted is the index's."""
    out = home / "measure.json"
    cmd = [sys.executable, __file__, "--measure", str(home), "--clips-file", str(clips_file),
           "--truth", json.dumps(truth_ids), "--threads", str(threads), "--out", str(out)]
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def summarise(size: str, hours: float, b: dict, m: dict) -> list[str]:
    rows = m["rows"]
    base = [r for r in rows if not r["absent"]]
    absent = [r for r in rows if r["absent"]]
    cells = [size, f"{hours:.1f}", str(m["items"]), str(m["shards"]),
             f"{m['disk_bytes'] / m['audio_seconds']:.0f}",
             f"{b['embed']:.0f}", f"{b['annoy']:.1f}", f"{b['calibrate']:.0f}"]
    for when in ("opened", "after_lookups"):
        mem = m["memory"][when]
        anon, rss = mem["Anonymous"], mem["Rss"]
        cells += [f"{rss / 1e6:.0f}", f"{anon / 1e6:.0f}", f"{(rss - anon) / 1e6:.0f}"]
    for length in LENGTHS:
        t = np.array([r["seconds"] for r in rows if r["length"] == length]) * 1000
        cells.append(f"{np.median(t):.0f} / {np.percentile(t, 95):.0f}")
    cells.append(f"{np.mean([r['right'] for r in base]):.2f}")
    cells.append(f"{np.mean([r['matched'] and not r['right'] for r in base]):.3f}")
    cells.append(f"{np.mean([r['matched'] for r in absent]):.3f}")
    return cells


HEADER = ["size", "catalogue h", "items", "shards", "index B per audio s", "embed s (new)", "Annoy s (new)",
          "calibrate s",
          "opened: RSS MB", "anon MB", "file-backed MB", "after lookups: RSS MB", "anon MB", "file-backed MB"] + [f"lookup {int(n)} s ms (median / p95)" for n in LENGTHS] + [
          "hit rate", "wrong track", "false-match rate (absent)"]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, help="list of corpus audio files, one a line (e.g. the dev corpus list)")
    ap.add_argument("--base-hours", default="1", metavar="H",
                    help="hours of the base catalogue, or 'all': the whole corpus but the absent tracks, grown with "
                    "copies of its own tracks at --speeds (default 1)")
    ap.add_argument("--sizes", default="10,30", metavar="N,N...",
                    help="catalogue sizes to grow to, in multiples of the base's hours (default 10,30)")
    ap.add_argument("--speeds", default=None, metavar="LIST",
                    help="speed factors of the distractor copies (default "
                    f"{','.join(f'{v:g}' for v in SPEEDS)}; with --base-hours all, 0.66-0.88 and 1.12-1.48 "
                    "in steps of 0.02)")
    ap.add_argument("--clips", type=int, default=40, metavar="N",
                    help="standard clips per length and kind (base, absent); default 40")
    ap.add_argument("--absent-tracks", type=int, default=20, metavar="N",
                    help="corpus tracks kept out of catalogue and distractors, for absent clips (default 20)")
    ap.add_argument("--keep-thresholds", action="store_true",
                    help="grow without recalibrating: the base's thresholds stay (as `audiosim index "
                    "--no-calibrate`); default: recalibrate at every size, as `audiosim index` would")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compact", action="store_true",
                    help="after the largest size, merge its shards into one (as `audiosim index --compact`) and "
                    "measure again: a lookup searches every shard")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the lookups (default 1)")
    ap.add_argument("--build-threads", type=int, default=None, metavar="N",
                    help="torch threads (and ingest workers) building the catalogue and index "
                    "(default: --threads)")
    ap.add_argument("--model", type=Path, default=None, help="encoder (default: models/fingerprint.pt)")
    ap.add_argument("--home", type=Path, default=None, help="data home to build in (default: temporary, removed)")
    ap.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--clips-file", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--truth", default="[]", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure is not None:  # the child process of run_measure
        result = measure(args.measure, args.clips_file, json.loads(args.truth), args.threads)
        args.out.write_text(json.dumps(result))
        return 0
    if args.corpus is None:
        ap.error("--corpus LIST is needed (a list of audio files, one a line)")
    sizes = [float(s) for s in args.sizes.split(",") if s]
    whole = args.base_hours.strip().lower() == "all"
    try:
        base_hours = None if whole else float(args.base_hours)
    except ValueError:
        ap.error(f"--base-hours: a number of hours or 'all', not {args.base_hours!r}")
    speeds = (tuple(float(v) for v in args.speeds.split(",")) if args.speeds
              else COPY_SPEEDS if whole else SPEEDS)
    build_threads = args.build_threads or args.threads

    import torch

    from audiosim.config import FeatureConfig
    from audiosim.ingest.ingest import ingest_many
    from audiosim.store.catalog import Catalog, normalise_path
    from audiosim.store.home import DataHome

    torch.set_num_threads(build_threads)
    paths = [line.strip() for line in args.corpus.read_text().splitlines() if line.strip()]
    sel = select(paths, base_hours, args.absent_tracks, args.seed)
    base_s = sum(sel.durations[p] for p in sel.base)
    log(f"base: {len(sel.base)} tracks, {base_s / 3600:.2f} h; absent: {len(sel.absent)} tracks; "
        f"distractor sources: {len(sel.sources)} tracks, {sum(sel.durations[p] for p in sel.sources) / 3600:.1f} h "
        f"x {len(speeds)} speeds")
    home = args.home or Path(tempfile.mkdtemp(prefix="audiosim-scale-"))
    rows, timings = [], []
    try:
        t0, c0 = time.perf_counter(), cpu_seconds()
        ingest_many(sel.base, home=home, workers=build_threads)
        log(f"base ingested in {time.perf_counter() - t0:.0f} s")
        with Catalog(DataHome.resolve(home).catalog_path) as cat:
            truth_ids = [cat.get_by_path(normalise_path(p)).id for p in sel.base]
        clips_file = home / "standard-clips.npz"
        np.savez(clips_file, **standard_clips(sel, args.clips, args.seed, FeatureConfig().sample_rate))
        used: dict[str, int] = {}
        catalogue_s = base_s
        for size in [1.0, *sizes]:
            if size > 1.0:
                t1, c1 = time.perf_counter(), cpu_seconds()
                catalogue_s += add_distractors(home, sel.sources, size * base_s - catalogue_s, speeds, used)
                timings.append((f"{size:g}x: make distractors", time.perf_counter() - t1, cpu_seconds() - c1))
            b = build(home, args.model, calibrate=size == 1.0 or not args.keep_thresholds)
            timings.append((f"{size:g}x: index update (embed, build, calibrate)", b["total"], b["cpu"]))
            log(f"{size:g}x: {catalogue_s / 3600:.1f} h indexed ({b['items']} new items); measuring")
            t2 = time.perf_counter()
            m = run_measure(home, clips_file, truth_ids, args.threads)
            timings.append((f"{size:g}x: lookups (child process)", time.perf_counter() - t2, None))
            rows.append(summarise(f"{size:g}x", catalogue_s / 3600, b, m))
        if args.compact:
            b = build(home, args.model, compact=True)
            timings.append((f"{size:g}x: compaction (merge, build, calibrate)", b["total"], b["cpu"]))
            t2 = time.perf_counter()
            m = run_measure(home, clips_file, truth_ids, args.threads)
            timings.append((f"{size:g}x compacted: lookups (child process)", time.perf_counter() - t2, None))
            rows.append(summarise(f"{size:g}x, 1 shard", catalogue_s / 3600, b, m))
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    print_table(HEADER, rows)
    print()
    print_table(["step", "wall s", "CPU s (this process)"],
                [[n, f"{w:.0f}", "-" if c is None else f"{c:.0f}"] for n, w, c in timings])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"(total {wall:.0f} s wall, {cpu:.0f} CPU s in this process; {args.clips} clips per length and kind; "
          f"seed {args.seed}; {build_threads} build threads, {args.threads} lookup threads; load average {load})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
