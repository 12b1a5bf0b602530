"""``audiosim serve``: run the deployments of ``prefect.yaml`` with their schedules, in this process.

The deployments and what overrides them are :mod:`flows.deploy`; this
module declares the options, checks them, lists the deployments
(``--list``, which works before a watched folder is chosen) or serves them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audiosim.cli.options import (
    EXIT_OK,
    UsageError,
    add_runner_options,
    home_option,
    runner_spec,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim serve`` and its options."""
    p = sub.add_parser(
        "serve",
        parents=[home_option()],
        help="run the scheduled flows: ingest and index every 15 min, nightly compaction, weekly retrain",
        description="Serve the deployments of prefect.yaml, with their schedules, in this process: "
        "ingest-and-index every 15 minutes over the watched folder(s) (only new or changed files do "
        "work), nightly-compaction of the index shards, weekly-retrain (the model is replaced only "
        "if the new one validates better) and the on-demand playlist report. Nothing to set up: "
        "without PREFECT_API_URL a temporary local Prefect API runs alongside (it has no UI). Each run "
        "prints one line here when it ends: flow, run name, state, start and end times, duration. "
        "Stop with Ctrl-C.",
        epilog="With PREFECT_API_URL pointing at a Prefect server (`prefect server start`) the deployments "
        "and their runs also appear in its UI (serve prints its address) and can be triggered, e.g. "
        "`prefect deployment run playlist-report/on-demand --param "
        "playlist=mix.m3u`. To run flows on workers elsewhere, use `prefect deploy --all` and "
        "`prefect worker start --pool audiosim` instead (see the README).",
    )
    p.add_argument("--watch", nargs="+", type=Path, metavar="DIR",
                   help="folder(s) ingested every 15 minutes (default: $AUDIOSIM_WATCH)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="serve only these deployments (ingest-and-index, nightly-compaction, "
                   "weekly-retrain, on-demand)")
    add_runner_options(p, "files ingested", default=None)
    p.add_argument("--list", action="store_true", help="print the deployments and their schedules, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List or serve the deployments; returns the exit code."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from flows.deploy import (
        WATCH_HINT,
        build_deployments,
        configure,
        describe_deployment,
        serve_deployments,
        unresolved_parameters,
    )
    spec = runner_spec(args)
    for w in args.watch or []:
        if not w.is_dir():
            raise UsageError(f"--watch {w}: no such folder")
    overrides = dict(watch=args.watch, home=args.home, only=args.only, workers=args.workers, dask_address=spec.dask)
    try:
        deployments = build_deployments(allow_unresolved=args.list, **overrides)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.list:
        for d in deployments:
            print(f"{describe_deployment(d)}; parameters {json.dumps(d.parameters)}")
        for s in configure(**overrides):
            bad = unresolved_parameters(s)
            if bad:
                hint = f" ({WATCH_HINT})" if "paths" in bad else ""
                print(f"note: {s.name}: parameter(s) {', '.join(bad)} not set yet{hint}; serving needs them",
                      file=sys.stderr)
        return EXIT_OK
    serve_deployments(**overrides)
    return EXIT_OK

