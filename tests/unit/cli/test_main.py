"""The ``audiosim`` command: every command listed, dispatched, and its help; exit codes of bad input."""

from __future__ import annotations

import importlib.metadata
import os
import pty
import subprocess
import sys
from pathlib import Path

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


def test_version_prints_the_installed_package_version(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"audiosim {importlib.metadata.version('audiosim')}\n"


def test_prefect_telemetry_is_off_unless_the_user_turned_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    cli._prefect_env_defaults()
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "true", "the user's choice is kept"
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    cli._prefect_env_defaults()
    assert os.environ["DO_NOT_TRACK"] == "0"


@pytest.mark.slow  # imports Prefect in a terminal, twice
def test_the_first_run_in_a_terminal_prints_no_telemetry_notice_and_writes_no_telemetry_file(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k != "DO_NOT_TRACK" and not k.startswith("PREFECT_") and k not in _CI_VARIABLES}

    def first_run(defaults: bool, prefect_home: Path) -> str:
        code = ("from audiosim.cli.main import _prefect_env_defaults\n" + ("_prefect_env_defaults()\n" if defaults else "")
                + "import prefect\nprint('IMPORTED')\n")
        return _run_in_terminal([sys.executable, "-c", code], dict(env, PREFECT_HOME=str(prefect_home)), tmp_path)

    out = first_run(True, tmp_path / "prefect")
    assert "IMPORTED" in out, out
    assert "telemetry" not in out.lower(), out
    assert not (tmp_path / "prefect" / ".sdk_telemetry").exists()
    # Without audiosim's defaults the same first run does both: the test sees what it guards against.
    plain = first_run(False, tmp_path / "prefect-plain")
    assert "IMPORTED" in plain and (tmp_path / "prefect-plain" / ".sdk_telemetry").exists(), plain


_CI_VARIABLES = {"CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "CIRCLECI", "BUILDKITE", "TF_BUILD",
                 "CODEBUILD_BUILD_ID", "BITBUCKET_COMMIT", "TEAMCITY_VERSION", "DRONE", "SEMAPHORE", "APPVEYOR",
                 "BUDDY", "CI_NAME"}
"""The variables by which Prefect recognises a CI run (and then stays quiet by itself)."""


def _run_in_terminal(argv: list[str], env: dict[str, str], cwd) -> str:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr; its output."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=cwd)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")
