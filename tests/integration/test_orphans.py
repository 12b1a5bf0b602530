"""A killed ``audiosim`` takes its children with it: no orphaned Prefect servers.

Prefect's temporary API server (a ``uvicorn`` child process) is stopped by
an ``atexit`` hook, which a killed process never runs;
:func:`audiosim.runners.reap_children_at_exit` ends the children when their
parent is gone, however it ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

pytestmark = pytest.mark.slow

SERVER_START_TIMEOUT = 900.0
"""Seconds to wait for Prefect's temporary server (minutes on a busy 2-core machine)."""

GONE_TIMEOUT = 20.0
"""Seconds within which the children must be gone (5 s of SIGTERM grace, then SIGKILL)."""


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(procs: list[psutil.Process], timeout: float = GONE_TIMEOUT) -> list[psutil.Process]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = [p for p in procs if alive(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p for p in procs if alive(p)]


SPAWNER = textwrap.dedent("""
    import subprocess, sys, time
    from audiosim.runners import reap_children_at_exit
    assert reap_children_at_exit()
    subprocess.Popen(["sleep", "600"])
    subprocess.Popen(["sh", "-c", "sleep 601 & wait"])  # a grandchild too
    print("ready", flush=True)
    time.sleep(600)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc")
def test_children_and_grandchildren_of_a_killed_process_are_ended():
    parent = subprocess.Popen([sys.executable, "-c", SPAWNER], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        end = time.monotonic() + 10  # `sh` forks its sleep a moment after "ready"
        while True:
            kids = [k for k in psutil.Process(parent.pid).children(recursive=True) if "sleep" in k.name()]
            if len(kids) == 2 or time.monotonic() > end:
                break
            time.sleep(0.05)
        assert len(kids) == 2
        parent.kill()
        parent.wait()
        assert wait_until_gone(kids) == []
    finally:
        if parent.poll() is None:
            parent.kill()


def prefect_servers(proc: psutil.Process) -> list[psutil.Process]:
    out = []
    for child in proc.children(recursive=True):
        try:
            if "uvicorn" in child.cmdline():
                out.append(child)
        except psutil.Error:
            pass
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_audiosim_leaves_no_prefect_server(tmp_path, make_wav, sig):
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "AUDIOSIM_REAPER")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    song = make_wav("a.wav", seconds=20.0)
    cli = subprocess.Popen(
        [sys.executable, "-m", "audiosim.cli.main", "ingest", "--home", str(tmp_path / "home"), str(song)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        end = time.monotonic() + SERVER_START_TIMEOUT
        servers: list[psutil.Process] = []
        while not servers and cli.poll() is None and time.monotonic() < end:
            servers = prefect_servers(psutil.Process(cli.pid))
            time.sleep(0.2)
        if not servers:
            pytest.fail(f"no Prefect server was started (exit {cli.poll()}): {cli.stderr.read()[-2000:]}")
        cli.send_signal(sig)
        cli.wait(timeout=120)
        assert wait_until_gone(servers) == []
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
