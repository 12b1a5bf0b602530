"""benchmarks/peers.py: the shim that runs audfprint, with or without its ffmpeg decoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.peers import audfprint_command, audfprint_shim, ensure_audfprint


def test_the_wav_shim_turns_ffmpeg_off_and_the_ffmpeg_shim_leaves_it_on() -> None:
    wav = audfprint_shim(Path("/peers/audfprint"))
    with_ffmpeg = audfprint_shim(Path("/peers/audfprint"), ffmpeg=True)
    assert "HAVE_FFMPEG = False" in wav
    assert "HAVE_FFMPEG" not in with_ffmpeg
    for text in (wav, with_ffmpeg):
        assert "np.asfarray" in text and "'/peers/audfprint'" in text
        compile(text, "shim", "exec")  # valid Python


def test_the_command_runs_the_written_shim_with_docopt_and_the_peer_on_the_path(tmp_path: Path) -> None:
    peer = tmp_path / "peers" / "audfprint"
    exe, env = audfprint_command(peer, tmp_path / "work", ffmpeg=True)
    assert Path(exe[-1]).read_text() == audfprint_shim(peer, ffmpeg=True)
    assert env["PYTHONPATH"].split(":") == [str(tmp_path / "peers" / "pylib"), str(peer)]


def test_a_missing_peer_stops_with_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="github:dpwe/audfprint"):
        ensure_audfprint(tmp_path)
    (tmp_path / "audfprint").mkdir()
    (tmp_path / "audfprint" / "audfprint.py").write_text("")
    assert ensure_audfprint(tmp_path) == tmp_path / "audfprint"
