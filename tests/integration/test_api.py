"""``audiosim api`` as a real server in a subprocess, talked to over HTTP on 127.0.0.1.

Needs the trained model and builds a songbook index (minutes). The server
is shared by the module's tests; the last one publishes a new generation
under it, so it must stay last.
"""

from __future__ import annotations

import dataclasses
import io
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from match_support import SR, songbook_home

from audiosim.index import writer as I
from audiosim.ingest.ingest import ingest_many
from audiosim.match.matcher import Match

pytestmark = pytest.mark.slow

START_TIMEOUT = 600.0
"""Seconds the server may take to load the index and model on a loaded machine."""


@pytest.fixture(scope="module")
def songbook_index(tmp_path_factory: pytest.TempPathFactory):
    return songbook_home(tmp_path_factory.mktemp("api-songbook"))


@pytest.fixture(scope="module")
def server(songbook_index):
    """The base URL of ``audiosim api --port 0`` on the songbook index (2 MB upload limit)."""
    home, _, model = songbook_index
    cmd = [sys.executable, "-m", "audiosim.cli.main", "api", "--home", str(home), "--model", str(model),
           "--port", "0", "--max-upload-mb", "2", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            log.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    url = None
    deadline = time.monotonic() + START_TIMEOUT
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if "answering on http://" in line:
            url = line.split("answering on ")[1].split()[0]
    try:
        assert url is not None, f"the server did not start:\n{''.join(log)}"
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in "".join(log), "".join(log)


def excerpt(path: Path, start: float, seconds: float) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32")
    assert sr == SR
    return x[int(start * SR): int((start + seconds) * SR)]


def wav(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV")
    return buf.getvalue()


def identify(client: httpx.Client, data: bytes, name: str = "clip.wav", **form) -> httpx.Response:
    return client.post("/identify", files={"clip": (name, data)}, data={k: str(v) for k, v in form.items()})


def test_it_listens_on_loopback_and_reports_its_index(server: str, songbook_index) -> None:
    assert server.startswith("http://127.0.0.1:")
    home, _, _ = songbook_index
    h = httpx.get(f"{server}/health", timeout=60).json()
    assert h["tracks"] == 8 and h["calibrated"] and h["status"] == "ok"
    manifest = (Path(home) / "index" / "manifest.json").read_text()
    assert f'"generation": {h["generation"]}' in manifest and h["model_digest"] in manifest


def test_identify_answers_the_fields_of_match_for_files_and_raw_pcm(server: str, songbook_index) -> None:
    _, paths, _ = songbook_index
    present, absent = excerpt(paths[3], 6.0, 5.0), excerpt(paths[9], 6.0, 5.0)
    with httpx.Client(base_url=server, timeout=120) as c:
        generation = c.get("/health").json()["generation"]
        hit = identify(c, wav(present), "present.wav").json()
        miss = identify(c, wav(absent), "absent.wav").json()
        pcm = identify(c, present.astype("<f4").tobytes(), "present.f32", encoding="float32", sample_rate=SR).json()
        strict = identify(c, wav(present), max_false_match=0.0001).json()
        track = c.get(f"/tracks/{hit['track_id']}").json()
        unknown = c.get("/tracks/987654")
    assert {f.name for f in dataclasses.fields(Match)} <= set(hit)
    assert hit["clip"] == "present.wav" and hit["matched"] and hit["generation"] == generation
    assert hit["path"] == str(paths[3].resolve()) and abs(hit["offset"] - 6.0) <= 0.25
    assert not miss["matched"] and miss["score"] < miss["threshold"]
    assert pcm["matched"] and pcm["track_id"] == hit["track_id"] and abs(pcm["score"] - hit["score"]) < 0.05
    assert strict["threshold"] > hit["threshold"]
    assert track["path"] == hit["path"] and track["indexed"]
    assert unknown.status_code == 404


def test_monitor_answers_the_timeline_of_a_recording(server: str, songbook_index) -> None:
    _, paths, _ = songbook_index
    rec = np.concatenate([excerpt(paths[9], 0.0, 8.0), excerpt(paths[3], 4.0, 20.0)])
    r = httpx.post(f"{server}/monitor", files={"clip": ("rec.wav", wav(rec))}, timeout=300)
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert row["path"] == str(paths[3].resolve()) and 6.5 <= row["start"] <= 9.5


def test_bad_input_gets_a_4xx_with_the_reason_and_the_server_keeps_answering(server: str) -> None:
    with httpx.Client(base_url=server, timeout=120) as c:
        answers = {
            "empty": identify(c, b""),
            "not-audio": identify(c, b"not audio at all\n" * 100, "notes.txt"),
            "too-short": identify(c, wav(np.full(int(0.3 * SR), 0.1, np.float32))),
            "silence": identify(c, wav(np.zeros(5 * SR, np.float32))),
            "too-large": identify(c, np.zeros(3 * 2**20, np.uint8).tobytes(), "huge.wav"),
        }
        assert c.get("/health").status_code == 200
    for reason, r in answers.items():
        assert r.status_code == (413 if reason == "too-large" else 422), (reason, r.text)
        assert r.json()["reason"] == reason


def test_a_generation_published_while_requests_run_is_taken_up_and_no_answer_mixes_them(
        server: str, songbook_index) -> None:
    home, paths, model = songbook_index
    # A passage of song 9 unlike the catalogue's songs (at 6 s it scores within 5 % of the threshold).
    newcomer = wav(excerpt(paths[8], 14.0, 5.0))
    with httpx.Client(base_url=server, timeout=120) as c:
        old = c.get("/health").json()["generation"]
        published: dict[str, object] = {}

        def publish() -> None:
            try:
                assert ingest_many([paths[8]], home)[0].status == "added"
                published["generation"] = I.update(home, model).generation
            except BaseException as e:  # reported by the test's thread
                published["error"] = e

        writer = threading.Thread(target=publish)
        writer.start()
        during = []
        deadline = time.monotonic() + 600
        while writer.is_alive() and len(during) < 300 and time.monotonic() < deadline:
            during.append(identify(c, newcomer).json())
        writer.join(timeout=600)
        assert "error" not in published, published.get("error")
        new = published["generation"]
        after = [identify(c, newcomer).json() for _ in range(3)]
        health = c.get("/health").json()
    assert new == old + 1 and during, "no request ran while the new generation was published"
    assert {a["generation"] for a in during} <= {old, new}
    assert all(not a["matched"] for a in during if a["generation"] == old)  # the old index has no such track
    assert all(a["matched"] and a["path"] == str(paths[8].resolve()) for a in during + after
               if a["generation"] == new)
    assert {a["generation"] for a in after} == {new} and health["generation"] == new and health["tracks"] == 9
