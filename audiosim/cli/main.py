"""The ``audiosim`` command: the parser, dispatch to the commands, exit codes.

Each command is a module ``audiosim.cli.<command>`` with two functions:
``add_parser(subparsers)`` declares its options and ``run(args) -> int``
runs it and returns the exit code. To add a command, write the module and
list it, with its one-line summary, in :data:`COMMANDS`. A command raises
:class:`~audiosim.cli.options.UsageError` for bad input (exit code 2).

Only the module of the command being run is imported (at dispatch), and a
command module imports the stages it runs inside the functions that run
them: torch and Prefect take seconds to import, which neither ``audiosim
--help`` nor ``audiosim COMMAND --help`` should wait for. This is the one
place where audiosim imports inside functions on purpose.

Exit codes: 0 success, 1 some files failed, 2 usage or configuration error,
4 disk full, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import signal
import sys
import threading
from types import ModuleType
from typing import Sequence

from audiosim.cli.options import (
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)
from audiosim.config import ConfigMismatchError
from audiosim.fingerprint.errors import CheckpointError
from audiosim.runners import reap_children_at_exit
from audiosim.store.errors import DiskFullError

__all__ = ["COMMANDS", "EXIT_DISK_FULL", "EXIT_FAILURES", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE",
           "PREFECT_ENV_DEFAULTS", "UsageError", "build_parser", "main"]

# Prefect runs locally without a server of its own (a temporary one is started
# per run) and quietly: these apply unless the user set them already, and must
# be set before prefect is imported. Telemetry is off unless the user turned it
# on: Prefect's SDK reports usage (and, on the first import in a terminal,
# prints a notice and writes $PREFECT_HOME/.sdk_telemetry/) unless DO_NOT_TRACK
# is set, and its server reports usage unless PREFECT_SERVER_ANALYTICS_ENABLED
# is false; a user who sets either keeps their choice. The temporary server's
# own log is turned down to CRITICAL because it reports harmless shutdown races
# as tracebacks. Its startup timeout (Prefect's default: 20 s) is generous, as a
# loaded machine may take minutes to start it.
PREFECT_ENV_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
}

EXIT_DISK_FULL = 4
"""Exit code of a command stopped by a full disk (:class:`~audiosim.store.errors.DiskFullError`)."""

COMMANDS: dict[str, str] = {
    "ingest": "decode audio files, store their features and catalogue them",
    "catalog": "list the catalogued tracks",
    "train": "train the fingerprint encoder on the catalogued tracks",
    "index": "build or update the fingerprint index from the catalogue",
    "identify": "name the catalogue track each clip comes from",
    "monitor": "timeline of the catalogue tracks heard in a long recording",
    "api": "HTTP lookup service: identify clips with the index kept loaded",
    "demo": "run the whole pipeline on the built-in songbook",
    "serve": "run the scheduled flows: ingest and index every 15 min, nightly compaction, weekly retrain",
    "similar": "list the catalogue songs that sound most like a track",
    "tags": "a track's musicnn tags, each ranked among the catalogue's songs",
    "moods": "group the catalogue's songs by mood, with the descriptors behind each label",
    "report": "write an HTML + CSV report on a playlist",
}
"""Every command and its summary for ``audiosim --help``, in that listing's order.

The summary is the one the command's own ``add_parser`` gives (a test checks
that they agree): it is repeated here so that listing the commands imports none.
"""


def package_version() -> str:
    """audiosim's version, from the installed package's metadata."""
    try:
        return importlib.metadata.version("audiosim")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: run `pip install -e .`)"


def _prefect_env_defaults() -> None:
    for k, v in PREFECT_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)


def command_module(name: str) -> ModuleType:
    """The module ``audiosim.cli.<name>`` that declares and runs a command."""
    return importlib.import_module(f"audiosim.cli.{name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``audiosim`` argument parser.

    Parameters
    ----------
    command : str, optional
        The command whose options to declare (importing its module); the
        others are declared by name and summary only, enough for the list of
        ``audiosim --help`` and for the "invalid choice" error. Default: none.
    """
    parser = argparse.ArgumentParser(
        prog="audiosim",
        description="Audio fingerprinting and music similarity. Data (catalogue, features, "
        "index, reports) lives in a data home: --home DIR, else $AUDIOSIM_HOME, else ./data.",
        epilog="Run `audiosim COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"audiosim {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        if name == command:
            command_module(name).add_parser(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs: its first word, unless ``--help`` comes first."""
    for arg in argv:
        if arg in ("-h", "--help") or not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``audiosim`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success, 1 some files failed, 2 usage or
        configuration error, 4 disk full, 130 interrupted.
    """
    _prefect_env_defaults()  # before a command module imports prefect
    argv = sys.argv[1:] if argv is None else list(argv)
    name = _command_named(argv)
    parser = build_parser(name)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return int(e.code or 0)
    reap_children_at_exit()  # Prefect's temporary server and Dask workers end with this process, even on SIGKILL
    with _exit_cleanly_on_sigterm():
        return _run(command_module(args.command), args)


def _run(command: ModuleType, args: argparse.Namespace) -> int:
    try:
        return int(command.run(args))
    except UsageError as e:
        print(f"audiosim {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigMismatchError, CheckpointError) as e:
        print(f"audiosim {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DiskFullError as e:
        print(f"audiosim {args.command}: {e}; nothing half-written was kept: free some space and run "
              "the command again", file=sys.stderr)
        return EXIT_DISK_FULL
    except BrokenPipeError:  # e.g. `audiosim catalog | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"audiosim {args.command}: interrupted (work done so far is kept)", file=sys.stderr)
        return EXIT_INTERRUPTED


class _exit_cleanly_on_sigterm:
    """Turn SIGTERM into SystemExit so that cleanup (Prefect's temporary server) runs."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handler)

    @staticmethod
    def _handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


if __name__ == "__main__":
    sys.exit(main())
