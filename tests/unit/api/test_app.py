"""The lookup service's requests: what a client sends becomes samples at the model's rate, or a 4xx with a reason.

The application is driven with FastAPI's TestClient over a stand-in service
that records what it is asked, so these tests are about the HTTP side only
(the real service is tests/integration/test_api.py's).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from audiosim.api.app import create_app
from audiosim.api.service import ServiceSettings
from audiosim.config import FeatureConfig
from audiosim.match.clips import ANY_LENGTH
from audiosim.signal import audio
from audiosim.signal.audio import AudioError

RATE = FeatureConfig().sample_rate


@dataclass
class StandInService:
    """Answers like :class:`~audiosim.api.service.LookupService` and keeps what it was given."""

    settings: ServiceSettings = field(default_factory=lambda: ServiceSettings(max_upload_bytes=256 * 1024))
    sample_rate: int = RATE
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    async def identify(self, wave: np.ndarray, name: str, max_false_match: float | None = None) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("secret internals")
        self.calls.append({"wave": wave, "name": name, "max_false_match": max_false_match})
        return {"clip": name, "matched": False, "threshold": None, "generation": 7}

    async def monitor(self, wave: np.ndarray, name: str, window: float, hop: float,
                      max_false_match: float | None = None) -> dict[str, Any]:
        self.calls.append({"wave": wave, "name": name, "window": window, "hop": hop})
        return {"recording": name, "rows": [], "generation": 7}

    async def track(self, track_id: int) -> dict[str, Any] | None:
        return {"id": 3, "indexed": True, "generation": 7} if track_id == 3 else None

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "generation": 7, "model_digest": "abc", "tracks": 8}


@pytest.fixture
def service() -> StandInService:
    return StandInService()


@pytest.fixture
def client(service: StandInService):
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        yield c


def tone(seconds: float, sr: int, amplitude: float = 0.3, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def wav_bytes(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def post(client: TestClient, data: bytes, filename: str = "clip.wav", route: str = "/identify", **form: Any):
    return client.post(route, files={"clip": (filename, data)}, data={k: str(v) for k, v in form.items()})


# --------------------------------------------------------------------------
# Accepted clips
# --------------------------------------------------------------------------


def test_an_audio_file_is_decoded_to_the_models_rate_and_named_by_its_file_name(client, service) -> None:
    r = post(client, wav_bytes(tone(2.0, 16000), 16000, "FLAC"), "take 1.flac", max_false_match=0.001)
    assert r.status_code == 200, r.text
    assert r.json() == {"clip": "take 1.flac", "matched": False, "threshold": None, "generation": 7}
    (call,) = service.calls
    assert call["name"] == "take 1.flac" and call["max_false_match"] == 0.001
    assert call["wave"].dtype == np.float32 and len(call["wave"]) == 2 * RATE


@pytest.mark.parametrize("encoding", ["float32", "int16"])
def test_raw_pcm_with_its_rate_is_heard_as_the_same_clip_as_a_file(client, service, encoding: str) -> None:
    x = tone(2.0, 11025, channels=2)
    raw = x.astype("<f4").tobytes() if encoding == "float32" else np.round(x * 32767).astype("<i2").tobytes()
    assert post(client, raw, "clip.pcm", encoding=encoding, sample_rate=11025, channels=2).status_code == 200
    assert post(client, wav_bytes(x, 11025), "clip.wav").status_code == 200
    pcm, wav = (c["wave"] for c in service.calls)
    assert len(pcm) == len(wav) == 2 * RATE
    assert np.max(np.abs(pcm - wav)) < 1e-3


def test_a_recording_is_monitored_with_its_window_and_hop(client, service) -> None:
    r = post(client, wav_bytes(tone(12.0, RATE), RATE), "rec.wav", route="/monitor", window=4, hop=2)
    assert r.status_code == 200 and r.json()["rows"] == []
    assert service.calls[0]["window"] == 4.0 and service.calls[0]["hop"] == 2.0


def test_tracks_and_health_pass_the_services_answers_on(client) -> None:
    assert client.get("/tracks/3").json() == {"id": 3, "indexed": True, "generation": 7}
    assert client.get("/health").json()["tracks"] == 8
    r = client.get("/tracks/99")
    assert r.status_code == 404 and r.json()["reason"] == "unknown-track"


def test_the_openapi_page_describes_every_route(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/identify", "/monitor", "/tracks/{track_id}", "/health"} <= set(paths)
    assert client.get("/docs").status_code == 200


# --------------------------------------------------------------------------
# Refused clips: the reasons audiosim identify gives, never a 500
# --------------------------------------------------------------------------


def decoder_reason(data: bytes, folder: Path, filename: str = "clip.wav") -> str:
    """The reason the decoder (what ``audiosim identify`` uses) refuses these bytes for."""
    path = folder / filename
    path.write_bytes(data)
    with pytest.raises(AudioError) as e:
        audio.load(path, RATE, ANY_LENGTH)
    return e.value.reason


@pytest.mark.parametrize("data", [
    b"",
    b"this is not audio\n" * 50,
    wav_bytes(np.zeros(3 * RATE, np.float32), RATE),
], ids=["empty", "text", "digital-silence"])
def test_unusable_audio_is_refused_with_422_and_the_decoders_reason_naming_the_clip(
        client, service, tmp_path, data) -> None:
    reason = decoder_reason(data, tmp_path)
    r = post(client, data, "bad clip.wav")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["reason"] == reason and body["clip"] == "bad clip.wav"
    assert body["detail"].startswith(f"bad clip.wav: {reason}") and str(tempfile.gettempdir()) not in body["detail"]
    assert not service.calls


@pytest.mark.parametrize("reason, raw, form", [
    ("empty", b"", {"encoding": "float32", "sample_rate": 8000}),
    ("not-audio", b"\x00" * 7, {"encoding": "int16", "sample_rate": 8000}),
    ("unsupported", b"\x00" * 800, {"encoding": "int16", "sample_rate": 10**7}),
    ("unsupported", b"\x00" * 800, {"encoding": "int16", "sample_rate": 0}),
])
def test_raw_pcm_that_no_audio_file_could_hold_is_refused_with_422_and_the_reason(client, reason, raw, form) -> None:
    r = post(client, raw, "clip.raw", **form)
    assert r.status_code == 422 and r.json()["reason"] == reason, r.text


@pytest.mark.parametrize("x", [np.full(3 * RATE, np.nan, np.float32), np.zeros(3 * RATE, np.float32)],
                         ids=["nan", "digital-silence"])
def test_unusable_raw_pcm_is_refused_for_the_reason_the_same_samples_in_a_file_are(client, tmp_path, x) -> None:
    reason = decoder_reason(wav_bytes(x, RATE, subtype="FLOAT"), tmp_path)
    r = post(client, x.astype("<f4").tobytes(), "clip.raw", encoding="float32", sample_rate=RATE)
    assert r.status_code == 422 and r.json()["reason"] == reason, r.text


def test_an_upload_over_the_size_limit_is_refused_with_413(client, service) -> None:
    r = post(client, wav_bytes(tone(30.0, RATE), RATE), "long.wav")  # 480 KB > 256 KB
    assert r.status_code == 413, r.text
    assert r.json()["reason"] == "too-large" and "--max-upload-mb" in r.json()["detail"]
    assert not service.calls


def test_a_body_growing_past_the_limit_without_a_declared_length_is_refused_with_413(client) -> None:
    def chunks():
        for _ in range(64):
            yield b"x" * 65536

    r = client.post("/identify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and r.json()["reason"] == "too-large"


@pytest.mark.parametrize("form, words", [
    ({"max_false_match": 1.5}, "max_false_match must be in [0, 1)"),
    ({"max_false_match": "often"}, "max_false_match"),
    ({"encoding": "float32"}, "needs both encoding and sample_rate"),
    ({"encoding": "mp3", "sample_rate": 8000}, "encoding must be one of"),
    ({"channels": 2}, "channels is for raw PCM"),
])
def test_malformed_requests_are_refused_with_400_saying_what_is_wrong(client, form, words) -> None:
    r = post(client, wav_bytes(tone(2.0, RATE), RATE), **form)
    assert r.status_code == 400 and r.json()["reason"] == "bad-request" and words in r.json()["detail"], r.text


def test_a_request_without_a_clip_is_refused_with_400(client) -> None:
    r = client.post("/identify", data={"max_false_match": "0.01"})
    assert r.status_code == 400 and "clip" in r.json()["detail"]
    assert client.post("/identify", content=b"RIFF....", headers={"content-type": "audio/wav"}).status_code == 400


def test_monitor_refuses_a_hop_longer_than_the_window(client) -> None:
    r = post(client, wav_bytes(tone(12.0, RATE), RATE), route="/monitor", window=2, hop=3)
    assert r.status_code == 400 and "hop" in r.json()["detail"]


def test_a_failure_of_the_service_is_a_500_without_a_traceback(client, service) -> None:
    service.fail = True
    r = post(client, wav_bytes(tone(2.0, RATE), RATE))
    assert r.status_code == 500 and r.json()["reason"] == "internal-error"
    assert "secret internals" not in r.text and "Traceback" not in r.text
