"""``audiosim api``: the lookup service, identification over HTTP with the index and model kept loaded.

The service is :mod:`audiosim.api`; this module declares the options, opens
the matchers (so that a missing index or a wrong model is a usage error
before anything listens), then serves with uvicorn until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from audiosim.cli.options import (
    EXIT_OK,
    UsageError,
    check_at_least_one,
    check_max_false_match,
    hint_home,
    home_option,
)
from audiosim.store.home import DataHome

if TYPE_CHECKING:
    import uvicorn

    from audiosim.api.service import LookupService, ServiceSettings

DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 50.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim api`` and its options."""
    p = sub.add_parser(
        "api",
        parents=[home_option()],
        help="HTTP lookup service: identify clips with the index kept loaded",
        description="Serve identification over HTTP: the index and model are loaded once. POST /identify "
        "takes a clip (an audio file, or raw PCM with encoding and sample_rate) and answers the fields "
        "`audiosim identify --format json` gives; POST /monitor takes a longer recording and answers its "
        "timeline; GET /tracks/ID and GET /health. A newly published index (by `audiosim index` or the "
        "scheduled flow) is taken up without a restart. The OpenAPI page is at /docs.",
        epilog="Example: audiosim api --port 8000 & curl -F clip=@clip.wav http://127.0.0.1:8000/identify. "
        "Exit code: 0 when stopped (Ctrl-C: 130), 2 on usage errors (no index, model mismatch, port in use).",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="N",
                   help=f"port to listen on (default {DEFAULT_PORT}; 0: any free port, printed at start)")
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="encoder checkpoint (default: the one the index was built with)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--threshold", type=float, default=None, metavar="X",
                   help="fixed score threshold instead of the calibrated ones")
    g.add_argument("--max-false-match", type=float, default=None, metavar="RATE",
                   help="share of absent-music clips allowed to match, unless a request asks for another "
                   "(default: the index's, 0.01)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help=f"largest clip accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB:g}); larger ones get HTTP 413")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="lookups answered at the same time, each by a matcher of its own (default 1)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads (default 1: a clip is a small batch, more threads mostly wait)")
    p.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info",
                   help="server log level (default info: one line per request)")


def run(args: argparse.Namespace) -> int:
    """Open the matchers, then serve until stopped."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    import uvicorn

    from audiosim.api.app import create_app
    settings = _settings(args)
    service = _open(settings, args)
    try:
        app = create_app(service)
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                                timeout_graceful_shutdown=10)
        server = uvicorn.Server(config)
        try:
            asyncio.run(_serve(server, service, args))
        except SystemExit:
            if not server.started:  # uvicorn exits when it cannot listen, after logging why
                raise UsageError(f"cannot listen on {args.host}:{args.port} (see the message above)") from None
            raise
    finally:
        service.close()
    return EXIT_OK


def _settings(args: argparse.Namespace) -> ServiceSettings:
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.api.service import ServiceSettings
    if args.model is not None and not args.model.is_file():
        raise UsageError(f"{args.model}: no such model checkpoint")
    check_max_false_match(args.max_false_match)
    check_at_least_one("--workers", args.workers)
    check_at_least_one("--threads", args.threads)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, not {args.port}")
    if not args.max_upload_mb > 0:
        raise UsageError(f"--max-upload-mb must be positive, not {args.max_upload_mb:g}")
    return ServiceSettings(home=DataHome.resolve(args.home).root, model=args.model, threshold=args.threshold,
                           max_false_match=args.max_false_match, workers=args.workers, torch_threads=args.threads,
                           max_upload_bytes=int(args.max_upload_mb * 2**20))


def _open(settings: ServiceSettings, args: argparse.Namespace) -> LookupService:
    """The opened service; a missing index is a :class:`UsageError` (a model mismatch raises
    :class:`~audiosim.config.ConfigMismatchError`, also exit code 2)."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.api.service import LookupService
    try:
        return LookupService(settings).open()
    except FileNotFoundError as e:
        if "no index" in str(e):
            raise UsageError(f"no index in {settings.home} (run `audiosim index{hint_home(args)}` first)") from e
        raise UsageError(str(e)) from e


async def _serve(server: uvicorn.Server, service: LookupService, args: argparse.Namespace) -> None:
    """Serve; once listening, say where (with the port chosen when ``--port 0``)."""
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        health = await service.health()
        print(f"audiosim api: answering on http://{host}:{port} from index generation {health['generation']} "
              f"({health['tracks']} tracks); OpenAPI page at http://{host}:{port}/docs; Ctrl-C stops",
              file=sys.stderr, flush=True)
    await task
