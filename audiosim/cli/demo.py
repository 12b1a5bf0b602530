"""``audiosim demo``: the whole pipeline on the built-in songbook (:mod:`audiosim.demo.run`)."""

from __future__ import annotations

import argparse

from audiosim.cli.options import home_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Declare ``audiosim demo``."""
    sub.add_parser(
        "demo",
        parents=[home_option()],
        help="run the whole pipeline on the built-in songbook",
        description="Write the built-in synthetic songbook, ingest it (holding two songs out), "
        "build the fingerprint index, identify degraded clips and one clip of a song that is "
        "not in the catalogue, print the mood groups and write a playlist report.",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo in the data home of ``--home``."""
    # the stages this command runs, imported when it runs: --help needs neither torch nor Prefect
    from audiosim.demo.run import run_demo
    return run_demo(args.home)
