"""Peer fingerprinters run beside audiosim by the benchmarks (never part of the project).

A peer's code is never copied into this repository. It is fetched and
cloned under a peers folder (see benchmarks/README.md, "Peer: audfprint"),
and run in a subprocess through a small shim that adapts it to this
environment, so that ``identify.py`` (matching) and ``ingest.py`` (ingest
speed) run it the same way.

audfprint (Dan Ellis's landmark fingerprinter) needs ``docopt``, which is
not a project dependency: it is installed outside the project venv, in
``<peers>/pylib``, which goes on the peer's ``PYTHONPATH``. Its other needs
(numpy, scipy, joblib, psutil) come from the project venv. The shim
restores ``numpy.asfarray`` (removed in numpy 2) and, for WAV input,
switches off audfprint's ffmpeg decoder (it then reads WAV files itself).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

AUDFPRINT_SHIM = """# Runs audfprint from {peer} on WAV files without ffmpeg, under numpy 2.
import sys
import numpy as np
np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)
sys.path.insert(0, {peer!r})
import audio_read
audio_read.HAVE_FFMPEG = False
import audfprint
audfprint.main(sys.argv)
"""
"""The shim for WAV input (what ``identify.py`` uses); format it with ``peer``."""

_NO_FFMPEG_LINE = "audio_read.HAVE_FFMPEG = False\n"


def audfprint_shim(peer: Path, ffmpeg: bool = False) -> str:
    """The shim's source: WAV-only (``ffmpeg`` False) or decoding any format with ffmpeg."""
    text = AUDFPRINT_SHIM.format(peer=str(peer))
    if ffmpeg:
        text = text.replace(_NO_FFMPEG_LINE, "").replace("on WAV files without ffmpeg", "decoding with ffmpeg")
    return text


def have_ffmpeg() -> bool:
    """True when an ``ffmpeg`` executable is on ``PATH`` (audfprint's own decoder needs it)."""
    return shutil.which("ffmpeg") is not None


def audfprint_command(peer: Path, work: Path, ffmpeg: bool = False) -> tuple[list[str], dict[str, str]]:
    """Write the shim into ``work`` and return (command prefix, environment) to run audfprint.

    Append audfprint's own arguments (``new --dbase DB --list LIST ...``) to the command.
    """
    work.mkdir(parents=True, exist_ok=True)
    shim = work / "run_audfprint.py"
    shim.write_text(audfprint_shim(peer, ffmpeg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(peer.parent / "pylib"), str(peer)])}
    return [sys.executable, str(shim)], env


def ensure_audfprint(peers: Path) -> Path:
    """The audfprint clone under ``peers``; exits with how to get it when it is missing."""
    target = peers / "audfprint"
    if (target / "audfprint.py").exists():
        return target
    raise SystemExit(
        f"audfprint is not at {target}: fetch github:dpwe/audfprint with the search tool's fetch verb, then\n"
        f"  git clone <returned mirror path> {target}\n(see benchmarks/README.md)"
    )
