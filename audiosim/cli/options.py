"""What the ``audiosim`` commands share: exit codes, usage errors, common options.

A command module (``audiosim.cli.<command>``) declares its options with the
helpers here (``--home``, ``--model``, ``--format``, ``--workers``/``--dask``)
and raises :class:`UsageError` for bad input; :mod:`audiosim.cli.main` prints
it and exits with :data:`EXIT_USAGE`. This module stays light (no pandas,
torch or Prefect), as every command imports it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from audiosim.runners import RunnerSpec, resolve
from audiosim.store.home import DataHome

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
"""Exit codes: success, some files (or clips) failed, usage or configuration error, interrupted."""

FORMATS = ("table", "csv", "json")
"""The choices of every ``--format`` option (see :func:`audiosim.cli.output.write_rows`)."""


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit code 2."""


def parse_settings(pairs: list[str], option: str = "--set") -> dict:
    """``FIELD=VALUE`` pairs as a dict, each value read as JSON when it is JSON
    (``p_babble=0.5``, ``snr_db=[-3, 20]``) and as a string otherwise.

    Raises
    ------
    UsageError
        For a pair without ``=``.
    """
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {pair!r}: expected FIELD=VALUE, e.g. p_babble=0.5")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:  # a bare word: a string field
            out[key.strip()] = value
    return out


def home_option() -> argparse.ArgumentParser:
    """A parent parser with ``--home DIR`` (every command has it)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--home",
        metavar="DIR",
        type=Path,
        default=None,
        help="data home holding catalog.sqlite, features/, index/, reports/ "
        "(default: $AUDIOSIM_HOME, else ./data)",
    )
    return p


def hint_home(args: argparse.Namespace) -> str:
    """`` --home DIR`` when the user gave one, for the commands a message suggests."""
    return f" --home {args.home}" if args.home is not None else ""


def need_catalogue(args: argparse.Namespace) -> DataHome:
    """The data home of ``--home``, which must hold a catalogue.

    Raises
    ------
    UsageError
        If it has none (suggesting ``audiosim ingest``).
    """
    home = DataHome.resolve(args.home)
    if not home.catalog_path.is_file():
        raise UsageError(no_catalogue(home, args))
    return home


def no_catalogue(home: DataHome, args: argparse.Namespace) -> str:
    """The message for a data home without a catalogue."""
    return f"no catalogue in {home.root} (run `audiosim ingest{hint_home(args)}` first)"


def model_option() -> argparse.ArgumentParser:
    """A parent parser with ``--model PATH``, the song-similarity model."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="weights of the song model; only the shipped musicnn weights are accepted "
                   "(default: models/musicnn/msd_musicnn.pt, frozen MSD musicnn features)")
    return p


def add_format_option(p: argparse.ArgumentParser) -> None:
    """``--format {table,csv,json}``, default table."""
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")


def check_max_false_match(rate: float | None) -> None:
    """Reject a ``--max-false-match`` outside [0, 1) with a :class:`UsageError`."""
    if rate is not None and not 0.0 <= rate < 1.0:
        raise UsageError(f"--max-false-match must be in [0, 1), not {rate}")


def check_at_least_one(option: str, value: int) -> None:
    """Reject a count below 1 (``--workers``, ``-k``) with a :class:`UsageError`."""
    if value < 1:
        raise UsageError(f"{option} must be at least 1, not {value}")


def add_runner_options(p: argparse.ArgumentParser, what: str, default: int | None = 1) -> None:
    """``--workers N`` and ``--dask ADDRESS``: where the work of a flow runs.

    Parameters
    ----------
    p : ArgumentParser
    what : str
        What runs in parallel, for the help (e.g. "files processed").
    default : int, optional
        Default ``--workers`` (None: the flow's own default).
    """
    p.add_argument("--workers", type=int, default=default, metavar="N",
                   help=f"{what} at once: 1 in this process; N > 1 in a local Dask cluster of N worker "
                   "processes" + (f" (default: {default})" if default is not None else ""))
    p.add_argument("--dask", metavar="ADDRESS", default=None,
                   help=f"send the {what} to the workers of an existing Dask scheduler (tcp://host:8786) "
                   "instead; they must see the data home at the same path, and PREFECT_API_URL should "
                   "name a Prefect server they can reach (default: $AUDIOSIM_DASK_ADDRESS)")


def runner_spec(args: argparse.Namespace) -> RunnerSpec:
    """The runner of ``--workers``/``--dask``.

    Raises
    ------
    UsageError
        For a bad combination or value.
    """
    try:
        return resolve(args.workers, args.dask)
    except ValueError as e:
        raise UsageError(f"--workers/--dask: {e}") from None


def in_flight(spec: RunnerSpec) -> int:
    """How many tasks the runner takes at once; a Dask scheduler that cannot be reached is a usage error."""
    try:
        return spec.in_flight()
    except OSError as e:
        raise UsageError(str(e)) from None
