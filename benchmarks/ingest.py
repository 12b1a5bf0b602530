"""Benchmark ingest: decode, log-mel, feature store and catalogue, end to end.

Usage::

    python benchmarks/ingest.py LIST_OR_PATHS... [--home DIR] [--workers N]
                                [--limit N] [--flow] [--stages N]
                                [--runner threads|dask] [--compare N,N...]

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
on the first N files, one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


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
    machine do not distort the split.
    """
    import numpy as np
    import soundfile as sf
    import torch

    from audiosim.config import FeatureConfig
    from audiosim.signal.audio import content_hash, resample
    from audiosim.signal.features import log_mel

    fc = FeatureConfig()
    rows = []
    for p in files:
        t0 = time.process_time()
        content_hash(p)
        t1 = time.process_time()
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
        mono = data.mean(axis=1)
        t2 = time.process_time()
        y = resample(mono, sr, fc.sample_rate)
        t3 = time.process_time()
        with torch.inference_mode():
            log_mel(torch.from_numpy(np.ascontiguousarray(y)), fc)
        t4 = time.process_time()
        rows.append(
            {"audio_s": len(mono) / sr, "hash": t1 - t0, "decode": t2 - t1, "resample": t3 - t2, "log-mel": t4 - t3}
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="LIST_OR_PATH", help="files, folders or lists of paths")
    parser.add_argument("--home", type=Path, help="data home to use (default: a temporary one, removed)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="files at once (default: 1)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N files (sorted)")
    parser.add_argument("--flow", action="store_true", help="run through the Prefect flow")
    parser.add_argument("--stages", type=int, default=0, metavar="N", help="time each stage on N files")
    parser.add_argument("--runner", choices=("threads", "dask"), default="threads",
                        help="threads in this process, or (implies --flow) a local Dask cluster of --workers processes")
    parser.add_argument("--compare", metavar="N,N...", help="run once per worker count (fresh home each); speed-up table")
    args = parser.parse_args(argv)
    if args.runner == "dask":
        args.flow = True
    if args.compare:
        return compare(args, [int(n) for n in args.compare.split(",")])

    from audiosim.ingest.discover import discover
    from audiosim.ingest.ingest import count_statuses

    files = discover(args.paths)
    if args.limit:
        files = files[: args.limit]
    home = args.home or Path(tempfile.mkdtemp(prefix="audiosim-bench-"))
    rss_before = peak_rss_mb()
    try:
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        results = run(files, home, args.workers, args.flow, args.runner)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    counts = count_statuses(results)
    audio_s = sum(r.duration or 0.0 for r in results if r.status != "failed")
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
            print_table(
                ["stage", "CPU s", "x real time per CPU s"],
                [[k, f"{total[k]:.2f}", f"{total['audio_s'] / total[k]:.0f}"] for k in total if k != "audio_s"],
            )
    return 0


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
