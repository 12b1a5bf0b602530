"""The ``audiosim`` command: every command listed, dispatched, and its help; exit codes of bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from audiosim.cli import main as cli


def test_help_lists_every_command_without_importing_any(tmp_path) -> None:
    code = ("import sys\nfrom audiosim.cli.main import main\ncode = main(['--help'])\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('audiosim.cli.', 'flows', 'prefect', 'torch')))\n"
            "print('LOADED', loaded)\nsys.exit(code)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    for name, summary in cli.COMMANDS.items():
        assert name in r.stdout and summary in " ".join(r.stdout.split())
    assert "LOADED ['audiosim.cli.main', 'audiosim.cli.options']" in r.stdout


def test_only_the_named_command_is_declared_in_full() -> None:
    assert cli._command_named(["catalog", "--format", "csv"]) == "catalog"
    assert cli._command_named(["--bogus", "catalog"]) == "catalog"
    assert cli._command_named(["-h", "catalog"]) is None  # the list of commands is asked for
    assert cli._command_named(["nonsense"]) is None and cli._command_named([]) is None


def test_no_command_or_an_unknown_one_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    assert cli.main([]) == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err
    assert cli.main(["nonsense"]) == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_a_usage_error_is_printed_with_the_command_name_and_exit_code_2(tmp_path, capsys) -> None:
    assert cli.main(["catalog", "--home", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err == f"audiosim catalog: error: no catalogue in {tmp_path / 'none'} (run `audiosim ingest --home " \
                  f"{tmp_path / 'none'}` first)\n"


@pytest.mark.slow  # imports every command's libraries (torch, Prefect)
@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_has_help_and_the_summary_listed_for_it(name: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main([name, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: audiosim {name} ")
    parser = cli.build_parser(name)
    listed = {a.dest: a.help for a in parser._subparsers._group_actions[0]._choices_actions}  # type: ignore[union-attr]
    assert listed[name] == cli.COMMANDS[name]
