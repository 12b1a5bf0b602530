"""Benchmark ingest: decode, log-mel, feature store and catalogue, end to end.

Usage::

    python benchmarks/ingest.py LIST_OR_PATHS... [--home DIR] [--workers N]
                                [--limit N] [--flow] [--stages N]
                                [--runner threads|dask] [--compare N,N...]
                                [--index] [--prefect] [--peer audfprint]

Files, folders and path lists are expanded as by ``audiosim ingest``. Unless
``--home`` is given, a temporary data home is used and removed afterwards, so
every file is really decoded. Progress goes to stderr (without ``--flow``);
prints one table:

    files, ok, failed, audio hours, wall seconds, x real time, CPU seconds,
    x real time per CPU second, peak RSS

The CPU columns say what the machine could do when it is not shared: on an
idle machine with W workers, wall-clock x real time approaches
W x (x real time per CPU second) at best.

``--flow`` runs through the Prefect flow (includes Prefect's start-up and
per-task overhead); the default calls :func:`audiosim.ingest.ingest.ingest_many`
directly. ``--runner dask`` runs the flow on a local Dask cluster of
``--workers`` worker processes (:mod:`audiosim.runners`; cluster start-up
included; CPU columns then count this process only). ``--compare 1,2``
runs once per worker count, each in a fresh temporary data home, and adds a
speed-up column (wall time of the first count / this one). ``--stages N``
also times each stage (hash, file decode, resample, log-mel) in CPU seconds
on the first N files, one at a time: also probe, tags, the feature store
write and the catalogue (SQLite) transaction.

``--index`` then embeds the ingested tracks into a fresh index
(:func:`audiosim.index.writer.update`, ``--embed-threads`` torch threads,
by default ``--workers``) and, unless ``--no-calibrate``,
apart, calibrates its no-match thresholds (a second update with
:func:`audiosim.match.calibrate.calibrate_leave_one_out`), and prints the
embedding, the Annoy build, the rest of the update (hub scores, files,
manifest) and the calibration. ``--prefect`` measures what Prefect adds: the
start-up of its temporary API server, and the same ingest through the flow
(threads) into a fresh home once the server is up. ``--peer audfprint`` runs
audfprint's ingest (``new``, ``--ncores`` = ``--workers``) on the same files
in the same run; it decodes them itself with ffmpeg when ``ffmpeg`` is on
PATH, else the run stops (it would then only read WAV). The last table
compares every step as x real time (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peers import audfprint_command, ensure_audfprint, have_ffmpeg  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux: ru_maxrss is KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_stages(files: list[Path]) -> list[dict[str, float]]:
    """CPU seconds spent per stage for each file (decoded whole, not streamed).

    CPU time (all threads) rather than wall time, so that other jobs on the
    machine do not distort the split. The feature store and catalogue are
    written in a temporary data home of their own.
    """
    import numpy as np
    import soundfile as sf
    import torch

    from audiosim.config import FeatureConfig
    from audiosim.ingest.ingest import read_tags
    from audiosim.signal.audio import content_hash, probe, resample
    from audiosim.signal.features import log_mel
    from audiosim.store.catalog import Catalog
    from audiosim.store.content import FeatureStore

    fc = FeatureConfig()
    rows = []
    with tempfile.TemporaryDirectory(prefix="audiosim-bench-stages-") as tmp:
        store = FeatureStore(Path(tmp) / "features", fc)
        with Catalog(Path(tmp) / "catalog.sqlite") as cat:
            for p in files:
                c = [time.process_time()]
                info = probe(p)
                c.append(time.process_time())
                digest = content_hash(p)
                c.append(time.process_time())
                data, sr = sf.read(str(p), dtype="float32", always_2d=True)
                mono = data.mean(axis=1)
                c.append(time.process_time())
                y = resample(mono, sr, fc.sample_rate)
                c.append(time.process_time())
                with torch.inference_mode():
                    lm = log_mel(torch.from_numpy(np.ascontiguousarray(y)), fc).numpy()
                c.append(time.process_time())
                tags = read_tags(p)
                c.append(time.process_time())
                store.put(digest, lm)
                c.append(time.process_time())
                st = p.stat()
                with cat.transaction():
                    cat.upsert_ok(str(p), content_hash=digest, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                  duration=len(mono) / sr, sample_rate=info.sample_rate, channels=info.channels,
                                  **tags)
                c.append(time.process_time())
                names = ("probe", "hash", "decode", "resample", "log-mel", "tags", "feature store", "catalogue")
                rows.append({"audio_s": len(mono) / sr, **{k: c[i + 1] - c[i] for i, k in enumerate(names)}})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Tables go to stdout, progress to stderr. See benchmarks/README.md (ingest.py) for the measured "
        "figures and the commands behind them.",
    )
    parser.add_argument("paths", nargs="+", metavar="LIST_OR_PATH", help="files, folders or lists of paths")
    parser.add_argument("--home", type=Path, help="data home to use (default: a temporary one, removed)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="files at once; with --index also torch threads for embedding, with --peer "
                        "audfprint's --ncores (default: 1)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N files (sorted)")
    parser.add_argument("--flow", action="store_true", help="run through the Prefect flow")
    parser.add_argument("--stages", type=int, default=0, metavar="N", help="time each stage on N files")
    parser.add_argument("--runner", choices=("threads", "dask"), default="threads",
                        help="threads in this process, or (implies --flow) a local Dask cluster of --workers processes")
    parser.add_argument("--compare", metavar="N,N...", help="run once per worker count (fresh home each); speed-up table")
    parser.add_argument("--index", action="store_true",
                        help="then embed the tracks into a fresh index, and calibrate it apart (times each step)")
    parser.add_argument("--embed-threads", type=int, default=None, metavar="N",
                        help="torch threads for --index's embedding (default: --workers)")
    parser.add_argument("--no-calibrate", action="store_true", help="with --index: skip the calibration")
    parser.add_argument("--model", type=Path, default=None, metavar="PATH",
                        help="encoder for --index (default: models/fingerprint.pt)")
    parser.add_argument("--prefect", action="store_true",
                        help="also time the temporary Prefect API server's start-up and the same ingest as a flow")
    parser.add_argument("--peer", choices=("audfprint",), help="also run this peer's ingest on the same files")
    parser.add_argument("--peers-dir", type=Path, default=ROOT / "benchmarks" / "work" / "identify" / "peers",
                        metavar="DIR", help="where peers are cloned (default: benchmarks/work/identify/peers, "
                        "as for identify.py)")
    args = parser.parse_args(argv)
    if args.runner == "dask":
        args.flow = True
    if args.compare:
        return compare(args, [int(n) for n in args.compare.split(",")])
    peer = None
    if args.peer == "audfprint":
        peer = ensure_audfprint(args.peers_dir)
        if not have_ffmpeg():
            raise SystemExit("--peer audfprint: ffmpeg is not on PATH, so audfprint could not decode Ogg or MP3 "
                             "files (install it, e.g. apt-get install ffmpeg)")

    from audiosim.ingest.discover import discover
    from audiosim.ingest.ingest import count_statuses

    files = discover(args.paths)
    if args.limit:
        files = files[: args.limit]
    home = args.home or Path(tempfile.mkdtemp(prefix="audiosim-bench-"))
    rss_before = peak_rss_mb()
    steps: list[Step] = []
    try:
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        results = run(files, home, args.workers, args.flow, args.runner)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        audio_s = sum(r.duration or 0.0 for r in results if r.status != "failed")
        steps.append(Step("audiosim ingest (" + mode_name(args.flow, args.runner, args.workers) + ")", wall, cpu))
        if args.index:
            steps.extend(index_steps(home, args.embed_threads or args.workers, args.model, not args.no_calibrate))
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    counts = count_statuses(results)
    header = ["files", "ok", "failed", "audio hours", "wall s", "x real time", "CPU s", "x real time per CPU s",
              "peak RSS MB", "workers", "mode"]
    row = [
        str(len(files)),
        str(len(files) - counts["failed"]),
        str(counts["failed"]),
        f"{audio_s / 3600:.2f}",
        f"{wall:.1f}",
        f"{audio_s / wall:.0f}" if wall else "-",
        f"{cpu:.1f}",
        f"{audio_s / cpu:.0f}" if cpu else "-",
        f"{peak_rss_mb():.0f} (at start {rss_before:.0f})",
        str(args.workers),
        mode_name(args.flow, args.runner, args.workers),
    ]
    print_table(header, [row])
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print(f"failed: {r.path}: {r.reason} ({r.detail})")

    if args.stages:
        stage_rows = time_stages(files[: args.stages])
        total = {k: sum(r[k] for r in stage_rows) for k in stage_rows[0]} if stage_rows else {}
        if total:
            print()
            spent = sum(v for k, v in total.items() if k != "audio_s")
            print_table(
                ["stage", "CPU s", "share", "x real time per CPU s"],
                [[k, f"{total[k]:.2f}", f"{total[k] / spent:.0%}", f"{total['audio_s'] / total[k]:.0f}"]
                 for k in total if k != "audio_s"],
            )
            print(f"(stages timed on the first {len(stage_rows)} files, {total['audio_s'] / 3600:.2f} h of audio)")
    if args.prefect:
        steps.extend(prefect_steps(files, args.workers))
    if peer is not None:
        steps.append(run_audfprint_ingest(peer, files, args.workers))
    if len(steps) > 1 or args.index:
        print()
        print_steps(steps, audio_s)
    return 0


@dataclass(frozen=True)
class Step:
    """One timed step of the run: wall and CPU seconds (CPU of this process, or of the peer's processes)."""

    name: str
    wall: float
    cpu: float | None = None
    apart: bool = False  # not part of "ingest + index embedding" (calibration, Prefect, the peer)


def print_steps(steps: list[Step], audio_s: float) -> None:
    """Every step as x real time, and audiosim's ingest plus index embedding together."""
    rows = []
    for s in steps:
        rows.append([s.name, f"{s.wall:.1f}", f"{audio_s / s.wall:.0f}" if s.wall > 0 else "-",
                     "-" if s.cpu is None else f"{s.cpu:.1f}",
                     f"{audio_s / s.cpu:.0f}" if s.cpu else "-"])
    core = [s for s in steps if s.name.startswith("audiosim") and not s.apart]
    if len(core) > 1:
        wall, cpu = sum(s.wall for s in core), sum(s.cpu or 0.0 for s in core)
        rows.append(["audiosim ingest + index embedding", f"{wall:.1f}", f"{audio_s / wall:.0f}", f"{cpu:.1f}",
                     f"{audio_s / cpu:.0f}" if cpu else "-"])
    print_table(["step", "wall s", "x real time", "CPU s", "x real time per CPU s"], rows)
    print(f"({audio_s / 3600:.2f} h of audio; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")


def index_steps(home: Path, workers: int, model: Path | None, calibrate: bool = True) -> list[Step]:
    """Embed the catalogue into a fresh index (no calibration), then calibrate it apart.

    The update's embedding and Annoy build come from its own
    :class:`~audiosim.index.writer.UpdateResult`; what is left of its wall
    time (loading the model, hub scores, shard files, manifest) is one more
    row, so the rows add up to the update.
    """
    import torch

    from audiosim.index.writer import update
    from audiosim.match.calibrate import calibrate_leave_one_out

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, workers))
    try:
        t0, c0 = time.perf_counter(), cpu_seconds()
        r = update(home, model=model)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if calibrate:
            t1, c1 = time.perf_counter(), cpu_seconds()
            calibrated = update(home, model=model, calibrate=calibrate_leave_one_out).calibrated
            cal_wall, cal_cpu = time.perf_counter() - t1, cpu_seconds() - c1
    finally:
        torch.set_num_threads(before)
    print(f"index: {r.items} items from {r.added_tracks} tracks, embedding {r.segments_per_second:.0f} segments/s; "
          f"calibrated: {calibrated if calibrate else 'not asked'}", file=sys.stderr)
    share = cpu / wall if wall else 0.0  # CPU split in proportion to wall time (one process, one thing at a time)
    rest = wall - r.embed_seconds - r.build_seconds
    steps = [
        Step(f"audiosim index: embedding ({workers} torch thread(s))", r.embed_seconds, r.embed_seconds * share),
        Step("audiosim index: Annoy build", r.build_seconds, r.build_seconds * share),
        Step("audiosim index: model load, hub scores, files", rest, rest * share),
    ]
    if calibrate:
        steps.append(Step("audiosim index: calibration (apart)", cal_wall, cal_cpu, apart=True))
    return steps


def prefect_steps(files: list[Path], workers: int) -> list[Step]:
    """Start-up of Prefect's temporary API server, then the ingest as a flow (threads) once it is up.

    The flow ingests into a fresh temporary home, so every file is decoded
    again; compare its row with the direct ingest's.
    """
    from audiosim.cli.main import PREFECT_ENV_DEFAULTS

    for k, v in PREFECT_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    t0, c0 = time.perf_counter(), cpu_seconds()
    from audiosim.runners import shared_prefect_api

    with contextlib.ExitStack() as stack:
        stack.enter_context(shared_prefect_api())
        up, up_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="audiosim-bench-flow-")))
        t1, c1 = time.perf_counter(), cpu_seconds()
        run(files, home, workers, True)
        wall, cpu = time.perf_counter() - t1, cpu_seconds() - c1
    return [
        Step("Prefect: import and temporary API server start-up", up, up_cpu, apart=True),
        Step(f"audiosim ingest as a flow ({mode_name(True, 'threads', workers)}; server up)", wall, cpu, apart=True),
    ]


def run_audfprint_ingest(peer: Path, files: list[Path], workers: int) -> Step:
    """audfprint ``new`` on ``files`` (decoded by its ffmpeg reader), ``--ncores workers``.

    CPU seconds are those of its processes (``RUSAGE_CHILDREN``: the peer,
    its worker processes and the ffmpeg decoders, all waited for).
    """
    with tempfile.TemporaryDirectory(prefix="audiosim-bench-audfprint-") as tmp:
        work = Path(tmp)
        exe, env = audfprint_command(peer, work, ffmpeg=True)
        listing = work / "files.txt"
        listing.write_text("".join(f"{p}\n" for p in files))
        cmd = exe + ["new", "--dbase", str(work / "fpdb.pklz"), "--list", str(listing), "--ncores", str(workers)]
        c0 = _children_cpu()
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
        if done.returncode != 0:
            raise SystemExit(f"audfprint failed ({done.returncode}):\n{done.stderr[-2000:]}")
        stored = [line for line in done.stdout.splitlines() if "hashes" in line]
        print(f"audfprint: {stored[-1] if stored else done.stdout.strip().splitlines()[-1:]}", file=sys.stderr)
    return Step(f"audfprint new (--ncores {workers}, ffmpeg decoding)", wall, cpu, apart=True)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def mode_name(flow: bool, runner: str, workers: int = 1) -> str:
    if runner == "dask" and workers > 1:
        return "flow, local Dask processes"
    return ("flow" if flow else "direct") + (", threads" if workers > 1 else ", 1 thread")


def run(files: list[Path], home: Path, workers: int, flow: bool, runner: str = "threads") -> list:
    """Ingest ``files`` into ``home`` one way; returns the results."""
    from audiosim.ingest.ingest import ingest_many
    from audiosim.progress import Progress

    if not flow:
        done: list = []
        with Progress() as progress:
            def count(result) -> None:  # type: ignore[no-untyped-def]
                done.append(result)
                progress("ingest", {"done": len(done), "total": len(files)})

            return ingest_many(files, home=home, workers=workers, progress=count)
    from audiosim.cli.main import PREFECT_ENV_DEFAULTS

    for k, v in PREFECT_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    from flows.ingest import run_ingest

    if runner == "dask":
        from audiosim.runners import RunnerSpec, prefect_api_for_workers

        spec = RunnerSpec(workers=workers)
        with prefect_api_for_workers(spec):
            return run_ingest(files, home=home, workers=spec.in_flight(), task_runner=spec.task_runner())
    return run_ingest(files, home=home, workers=workers)


def compare(args: argparse.Namespace, counts: list[int]) -> int:
    """Ingest the same files once per worker count, each into a fresh temporary home."""
    from audiosim.ingest.discover import discover

    files = discover(args.paths)
    if args.limit:
        files = files[: args.limit]
    rows, base = [], None
    with contextlib.ExitStack() as stack:
        if args.flow:  # start Prefect's temporary API (and warm up) before timing anything
            from audiosim.cli.main import PREFECT_ENV_DEFAULTS

            for k, v in PREFECT_ENV_DEFAULTS.items():
                os.environ.setdefault(k, v)
            from audiosim.runners import shared_prefect_api

            stack.enter_context(shared_prefect_api())
            run([], Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="audiosim-bench-"))), 1, True)
        for n in counts:
            rows.append(_compare_one(args, files, n))
            base = base or float(rows[0][5])
            rows[-1][7] = f"{base / float(rows[-1][5]):.2f}"
    print_table(["workers", "mode", "files", "failed", "audio hours", "wall s", "wall min per audio hour",
                 "speed-up", "feature MB per audio hour"], rows)
    return 0


def _compare_one(args: argparse.Namespace, files: list[Path], n: int) -> list[str]:
    from audiosim.ingest.ingest import count_statuses

    home = Path(tempfile.mkdtemp(prefix="audiosim-bench-"))
    try:
        t0 = time.perf_counter()
        results = run(files, home, n, args.flow, args.runner)
        wall = time.perf_counter() - t0
        features = sum(p.stat().st_size for p in (home / "features").rglob("*.npy"))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    audio_h = sum(r.duration or 0.0 for r in results if r.status != "failed") / 3600
    return [str(n), mode_name(args.flow, args.runner, n), str(len(files)),
            str(count_statuses(results)["failed"]), f"{audio_h:.2f}", f"{wall:.1f}",
            f"{wall / audio_h / 60:.1f}" if audio_h else "-", "-",
            f"{features / audio_h / 1e6:.0f}" if audio_h else "-"]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Print a plain-text table with right-aligned columns."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    sys.exit(main())
