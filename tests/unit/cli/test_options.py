"""Options and checks the commands share: their messages are the command line's."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from audiosim.cli.options import (
    UsageError,
    check_at_least_one,
    check_max_false_match,
    hint_home,
    home_option,
    need_catalogue,
    runner_spec,
)


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(parents=[home_option()])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--dask", default=None)
    return p.parse_args(argv)


def test_a_message_repeats_home_only_when_the_user_gave_it(tmp_path: Path) -> None:
    assert hint_home(_args()) == ""
    assert hint_home(_args("--home", str(tmp_path))) == f" --home {tmp_path}"


def test_a_home_without_catalogue_suggests_ingesting_first(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^no catalogue in .* \(run `audiosim ingest --home .*` first\)$"):
        need_catalogue(_args("--home", str(tmp_path)))


def test_rates_and_counts_out_of_range_are_usage_errors() -> None:
    check_max_false_match(None)
    check_max_false_match(0.0)
    with pytest.raises(UsageError, match=r"^--max-false-match must be in \[0, 1\), not 1.0$"):
        check_max_false_match(1.0)
    check_at_least_one("-k", 1)
    with pytest.raises(UsageError, match="^--workers must be at least 1, not 0$"):
        check_at_least_one("--workers", 0)


def test_a_bad_runner_is_a_usage_error_naming_both_options() -> None:
    with pytest.raises(UsageError, match="^--workers/--dask: "):
        runner_spec(_args("--dask", " "))
