"""Decoding: every format, channel counts and rates, block streaming, every error."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosim.config import DecodeConfig
from audiosim.signal import audio
from audiosim.signal.audio import AudioError

OUT = 8000  # the fingerprinting rate


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])))
    return float(np.argmax(spectrum)) * rate / x.shape[0]


def amplitude_at(x: np.ndarray, rate: int, freq: float) -> float:
    """Amplitude of the sinusoid at ``freq`` (Hann-windowed DFT peak)."""
    w = np.hanning(x.shape[0])
    spectrum = np.abs(np.fft.rfft(x * w))
    k = int(round(freq * x.shape[0] / rate))
    return float(spectrum[k - 2 : k + 3].max() * 2 / w.sum())


def rms_db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.square(x, dtype=np.float64))) + 1e-20)


def can_write(fmt: str, subtype: str) -> bool:
    return fmt in sf.available_formats() and subtype in sf.available_subtypes(fmt)


# (format, subtype, extension, file rate, lossy)
FORMATS = [
    ("WAV", "PCM_16", "wav", 44100, False),
    ("WAV", "FLOAT", "wav", 44100, False),
    ("FLAC", "PCM_16", "flac", 44100, False),
    ("OGG", "VORBIS", "ogg", 44100, True),
    ("OGG", "OPUS", "opus", 48000, True),  # Opus only runs at 8/12/16/24/48 kHz
    ("MP3", "MPEG_LAYER_III", "mp3", 44100, True),
]


@pytest.mark.parametrize("fmt,subtype,ext,rate,lossy", FORMATS, ids=[f"{f[0]}-{f[1]}" for f in FORMATS])
def test_decodes_every_format(tmp_path, fmt, subtype, ext, rate, lossy):
    if not can_write(fmt, subtype):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}/{subtype}")
    path = tmp_path / f"tone.{ext}"
    try:
        sf.write(path, tone(440, rate, 2.0, amp=0.5), rate, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError) as e:  # listed but no encoder compiled in
        pytest.skip(f"libsndfile lists {fmt}/{subtype} but cannot write it: {e}")

    info = audio.probe(path)
    assert (info.sample_rate, info.channels) == (rate, 1)
    y = audio.load(path, OUT)
    assert y.dtype == np.float32 and y.ndim == 1
    if lossy:
        assert abs(y.shape[0] / OUT - 2.0) < 0.06  # codec padding is allowed for
    else:
        assert y.shape[0] == 2 * OUT
        assert info.frames == 2 * rate
    assert abs(peak_hz(y, OUT) - 440) <= OUT / y.shape[0]
    assert rms_db(y) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=1.0 if lossy else 0.05)


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = tone(440, 44100, 2.0, amp=0.6), tone(440, 44100, 2.0, amp=0.2)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    assert audio.probe(tmp_path / "stereo.wav").channels == 2
    y = audio.load(tmp_path / "stereo.wav", OUT)
    assert amplitude_at(y, OUT, 440) == pytest.approx(0.4, rel=0.02)  # the mean of 0.6 and 0.2


def test_eight_channels_are_averaged(tmp_path):
    freqs = [300, 500, 700, 900, 1100, 1300, 1500, 1700]
    data = np.stack([tone(f, 48000, 2.0, amp=0.8) for f in freqs], axis=1)
    sf.write(tmp_path / "eight.wav", data, 48000, subtype="FLOAT")
    assert audio.probe(tmp_path / "eight.wav").channels == 8
    y = audio.load(tmp_path / "eight.wav", OUT)
    assert y.shape[0] == 2 * OUT
    for f in freqs:  # each channel contributes 1/8 of its amplitude
        assert amplitude_at(y, OUT, f) == pytest.approx(0.1, rel=0.03), f


def test_to_mono_and_resample_helpers():
    stereo = np.stack([np.ones(10, np.float32), np.zeros(10, np.float32)], axis=1)
    assert np.allclose(audio.to_mono(stereo), 0.5)
    mono = np.arange(5, dtype=np.float32)
    assert audio.to_mono(mono) is not None and np.array_equal(audio.to_mono(mono), mono)
    x = tone(1000, 44100, 1.0)
    assert audio.resample(x, 44100, 44100) is not None and np.array_equal(audio.resample(x, 44100, 44100), x)
    y = audio.resample(x, 44100, OUT)
    assert y.shape[0] == OUT and abs(peak_hz(y, OUT) - 1000) <= 1


@pytest.mark.parametrize("rate", [192000, 44100, 22050, 8000])
def test_any_rate_decodes_to_8000_keeping_frequency_and_duration(tmp_path, rate):
    seconds = 2.5
    sf.write(tmp_path / "x.wav", tone(1000, rate, seconds, amp=0.5), rate, subtype="FLOAT")
    y = audio.load(tmp_path / "x.wav", OUT)
    assert y.shape[0] == int(seconds * OUT)
    assert abs(peak_hz(y, OUT) - 1000) <= OUT / y.shape[0]
    assert amplitude_at(y, OUT, 1000) == pytest.approx(0.5, rel=0.02)


def test_tones_above_the_new_nyquist_are_removed_not_aliased(tmp_path):
    # 6 kHz cannot exist at 8 kHz; naive decimation would fold it to 2 kHz.
    sf.write(tmp_path / "hi.wav", tone(6000, 44100, 2.0, amp=0.5), 44100, subtype="FLOAT")
    y = audio.load(tmp_path / "hi.wav", OUT)
    assert amplitude_at(y, OUT, 2000) < 1e-3
    assert rms_db(y[OUT // 10 : -OUT // 10]) < -50


@pytest.mark.parametrize("rate", [192000, 44100, 22050, 48000])
def test_block_streamed_decode_equals_one_shot_resample(tmp_path, rate):
    rng = np.random.default_rng(rate)
    n = int(3.3 * rate) + 7  # not a whole number of blocks
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    sf.write(tmp_path / "x.wav", x, rate, subtype="FLOAT")
    config = DecodeConfig(block_seconds=0.2)
    blocks = list(audio.stream(tmp_path / "x.wav", OUT, config))
    assert len(blocks) >= 15
    streamed = np.concatenate(blocks)
    whole = audio.resample(x, rate, OUT)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=2e-6)
    np.testing.assert_allclose(audio.load(tmp_path / "x.wav", OUT, DecodeConfig()), streamed, atol=2e-6)


def test_block_streaming_without_resampling_is_exact(tmp_path):
    x = tone(700, OUT, 3.0)
    sf.write(tmp_path / "x.wav", x, OUT, subtype="FLOAT")
    blocks = list(audio.stream(tmp_path / "x.wav", OUT, DecodeConfig(block_seconds=0.25)))
    assert len(blocks) == 12
    np.testing.assert_array_equal(np.concatenate(blocks), x)


# ---------------------------------------------------------------------------
# Errors: every reason, each naming the file.


def _missing(p):
    return p / "no-such-file.wav"


def _directory(p):
    (p / "folder.wav").mkdir()
    return p / "folder.wav"


def _text(p):
    (p / "notes.wav").write_text("these are not the samples you are looking for\n" * 20)
    return p / "notes.wav"


def _zero_bytes(p):
    (p / "zero.wav").write_bytes(b"")
    return p / "zero.wav"


def _header_only(p):
    sf.write(p / "header.wav", np.zeros(0, np.float32), 44100)
    assert (p / "header.wav").stat().st_size > 0
    return p / "header.wav"


def _too_short(p):
    sf.write(p / "short.wav", tone(440, 44100, 0.5), 44100)
    return p / "short.wav"


def _silence(p):
    sf.write(p / "silence.wav", np.zeros(3 * 44100, np.float32), 44100)
    return p / "silence.wav"


def _nan(p):
    x = tone(440, 44100, 2.0)
    x[30000] = np.nan
    sf.write(p / "nan.wav", x, 44100, subtype="FLOAT")
    return p / "nan.wav"


def _inf_late(p):
    x = tone(440, 8000, 3.0)
    x[-10] = np.inf  # in the last block, after others were yielded
    sf.write(p / "inf.wav", x, 8000, subtype="FLOAT")
    return p / "inf.wav"


def _many_channels(p):
    sf.write(p / "wide.wav", np.full((8000, audio.MAX_CHANNELS + 1), 0.1, np.float32), 8000)
    return p / "wide.wav"


def _low_rate(p):
    sf.write(p / "slow.wav", np.full(2000, 0.1, np.float32), 500)
    return p / "slow.wav"


def _text_named_mp3(p):
    (p / "notes.mp3").write_text("these are not the samples you are looking for\n" * 20)
    return p / "notes.mp3"


def _device(p):
    return Path("/dev/zero")


def _fifo(p):
    os.mkfifo(p / "pipe.wav")
    return p / "pipe.wav"


def _wav_cut_in_header(p):
    sf.write(p / "whole.wav", tone(440, 8000, 2.0), 8000)
    (p / "cut.wav").write_bytes((p / "whole.wav").read_bytes()[:30])
    return p / "cut.wav"


def _wav_cut_to_a_third(p):
    sf.write(p / "whole.wav", tone(440, 8000, 6.0), 8000)
    data = (p / "whole.wav").read_bytes()
    (p / "cut.wav").write_bytes(data[: len(data) // 3])
    return p / "cut.wav"


def _corrupt_flac(p):
    sf.write(p / "whole.flac", tone(440, 8000, 3.0), 8000)
    data = bytearray((p / "whole.flac").read_bytes())
    data[200:] = np.random.default_rng(0).integers(0, 256, len(data) - 200, dtype=np.uint8).tobytes()
    (p / "corrupt.flac").write_bytes(bytes(data))
    return p / "corrupt.flac"


ERRORS = [
    (_missing, "unreadable"),
    (_directory, "not-a-regular-file"),
    (_device, "not-a-regular-file"),
    (_fifo, "not-a-regular-file"),
    (_text, "not-audio"),
    (_text_named_mp3, "not-audio"),
    (_zero_bytes, "empty"),
    (_header_only, "empty"),
    (_wav_cut_in_header, "truncated"),
    (_wav_cut_to_a_third, "truncated"),
    (_corrupt_flac, "corrupt"),
    (_too_short, "too-short"),
    (_silence, "silence"),
    (_nan, "corrupt"),
    (_inf_late, "corrupt"),
    (_many_channels, "unsupported"),
    (_low_rate, "unsupported"),
]


@pytest.mark.parametrize("make,reason", ERRORS, ids=[m.__name__.strip("_") for m, _ in ERRORS])
def test_every_error_has_its_reason_and_names_the_file(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(AudioError) as caught:
        audio.load(path, OUT, DecodeConfig(block_seconds=0.5))
    assert caught.value.reason == reason
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value) and reason in str(caught.value)
    assert caught.value.detail and reason in audio.REASONS


def test_too_long(tmp_path):
    sf.write(tmp_path / "long.wav", tone(440, 8000, 3.0), 8000)
    with pytest.raises(AudioError) as caught:
        audio.load(tmp_path / "long.wav", OUT, DecodeConfig(max_seconds=2.0))
    assert caught.value.reason == "too-long"


def test_probe_errors_come_before_any_block(tmp_path):
    stream = audio.stream(_text(tmp_path), OUT)
    with pytest.raises(AudioError, match="not-audio"):
        next(stream)


def test_limits_are_configurable(tmp_path):
    sf.write(tmp_path / "short.wav", tone(440, 8000, 0.5), 8000)
    assert audio.load(tmp_path / "short.wav", OUT, DecodeConfig(min_seconds=0.25)).shape[0] == 4000
    sf.write(tmp_path / "quiet.wav", tone(440, 8000, 2.0, amp=1e-4), 8000, subtype="FLOAT")  # about -83 dBFS
    with pytest.raises(AudioError, match="silence"):
        audio.load(tmp_path / "quiet.wav", OUT)
    assert audio.load(tmp_path / "quiet.wav", OUT, DecodeConfig(silence_dbfs=-100)).shape[0] == 2 * OUT


def test_content_hash_and_audio_paths(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, tone(440, 8000, 1.5), 8000)
    assert audio.content_hash(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert audio.content_hash(path, chunk=1000) == audio.content_hash(path)
    with pytest.raises(AudioError, match="unreadable"):
        audio.content_hash(tmp_path / "missing.wav")
    assert audio.is_audio_path("a/B.WAV") and audio.is_audio_path("x.opus") and audio.is_audio_path("y.mp3")
    assert not audio.is_audio_path("notes.txt") and not audio.is_audio_path("wav")


def test_audio_info_duration(tmp_path):
    sf.write(tmp_path / "x.flac", tone(440, 44100, 1.5), 44100)
    info = audio.probe(tmp_path / "x.flac")
    assert info.format == "FLAC" and info.frames == 66150
    assert info.duration == pytest.approx(1.5)


# ---------------------------------------------------------------------------
# Reasons that say what is really wrong.


def test_an_unknown_reason_is_refused():
    with pytest.raises(ValueError, match="REASONS"):
        AudioError("x.wav", "weird")


def test_text_is_reported_as_not_audio_whatever_its_extension(tmp_path):
    for make in (_text, _text_named_mp3):
        with pytest.raises(AudioError) as caught:
            audio.probe(make(tmp_path))
        assert caught.value.reason == "not-audio"
        assert caught.value.detail.startswith("not audio")
        assert "pipe" not in caught.value.detail and "does not exist" not in caught.value.detail


def test_a_device_or_pipe_is_named_as_such_and_never_opened(tmp_path):
    with pytest.raises(AudioError, match="character device"):
        audio.probe("/dev/zero")
    with pytest.raises(AudioError, match="named pipe"):  # opening a pipe would block: it is not opened
        audio.probe(_fifo(tmp_path))
    with pytest.raises(AudioError, match="a folder"):
        audio.probe(_directory(tmp_path))


def test_permission_denied_is_reported_as_such(tmp_path, monkeypatch):
    path = tmp_path / "x.wav"
    sf.write(path, tone(440, 8000, 2.0), 8000)

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(audio, "open", denied, raising=False)
    for call in (audio.probe, audio.content_hash, lambda p: audio.load(p, OUT)):
        with pytest.raises(AudioError) as caught:
            call(path)
        assert caught.value.reason == "permission-denied" and "permission denied" in caught.value.detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_mode_is_reported_as_permission_denied(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, tone(440, 8000, 2.0), 8000)
    path.chmod(0)
    try:
        with pytest.raises(AudioError) as caught:
            audio.load(path, OUT)
        assert caught.value.reason == "permission-denied"
    finally:
        path.chmod(0o644)


DROP_TO_NOBODY = r"""
import os, sys
from audiosim.signal import audio  # imported as root: nobody may not read the virtualenv
os.setgid(65534); os.setuid(65534)
try:
    audio.load(sys.argv[1], 8000)
except audio.AudioError as e:
    print(e.reason)
"""


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to nobody needs root")
def test_an_unreadable_mode_is_reported_as_permission_denied_to_another_user(tmp_path):
    tmp_path.chmod(0o755)
    path = tmp_path / "x.wav"
    sf.write(path, tone(440, 8000, 2.0), 8000)
    path.chmod(0o600)  # root's, unreadable to nobody
    done = subprocess.run([sys.executable, "-c", DROP_TO_NOBODY, str(path)], capture_output=True, text=True)
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("this root cannot drop to nobody")
    assert done.stdout.strip() == "permission-denied", done.stderr


def test_nan_is_reported_at_its_time(tmp_path):
    x = tone(440, 8000, 5.0)
    x[3 * 8000 + 17] = np.nan
    sf.write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(AudioError) as caught:
        audio.load(tmp_path / "nan.wav", OUT)  # one block: the time is not the block's start
    assert caught.value.reason == "corrupt" and "at 3.0 s" in caught.value.detail


def _cut(path, share):
    data = path.read_bytes()
    cut = path.with_name(f"cut-{path.name}")
    cut.write_bytes(data[: int(len(data) * share)])
    return cut


def test_a_truncated_ogg_is_kept_with_a_warning(tmp_path):
    path = tmp_path / "x.ogg"
    noise = 0.05 * np.random.default_rng(0).standard_normal(12 * 44100).astype(np.float32)
    sf.write(path, tone(440, 44100, 12.0) + noise, 44100, format="OGG", subtype="VORBIS")
    warnings: list[str] = []
    whole = np.concatenate(list(audio.stream(path, OUT, warnings=warnings)))
    assert warnings == []
    cut = _cut(path, 1 / 3)
    y = np.concatenate(list(audio.stream(cut, OUT, warnings=warnings)))
    assert 0 < y.shape[0] < 0.5 * whole.shape[0]
    assert len(warnings) == 1 and "cut short" in warnings[0] and "Ogg" in warnings[0]
    with pytest.raises(AudioError, match="truncated"):  # cut before any audio page
        audio.load(_cut(path, 0.02), OUT)


def test_a_wav_mostly_there_is_kept_with_a_warning_and_a_third_fails(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, tone(440, 8000, 10.0), 8000)
    warnings: list[str] = []
    y = audio.load(path, OUT)
    assert y.shape[0] == 10 * OUT
    y = np.concatenate(list(audio.stream(_cut(path, 0.8), OUT, warnings=warnings)))
    assert y.shape[0] == pytest.approx(8 * OUT, abs=10)
    assert warnings == ["cut short: decoded 8.0 s of the 10.0 s its header states"]
    with pytest.raises(AudioError) as caught:
        audio.load(_cut(path, 0.3), OUT)
    assert caught.value.reason == "truncated" and "of the 10.0 s its header states" in caught.value.detail
    assert audio.TRUNCATED_SHARE == 0.5


def test_a_truncated_mp3_with_a_stated_length_fails(tmp_path):
    if not can_write("MP3", "MPEG_LAYER_III"):
        pytest.skip("this libsndfile cannot write MP3")
    path = tmp_path / "x.mp3"
    sf.write(path, tone(440, 44100, 10.0), 44100, format="MP3", subtype="MPEG_LAYER_III")
    with pytest.raises(AudioError) as caught:
        audio.load(_cut(path, 1 / 3), OUT)
    assert caught.value.reason == "truncated"


def test_whole_files_of_every_format_give_no_warning(tmp_path):
    for fmt, subtype, ext, rate, _ in FORMATS:
        if not can_write(fmt, subtype):
            continue
        path = tmp_path / f"x.{ext}"
        try:
            sf.write(path, tone(440, rate, 3.0), rate, format=fmt, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError):
            continue
        warnings: list[str] = []
        assert sum(b.shape[0] for b in audio.stream(path, OUT, warnings=warnings)) > 0
        assert warnings == [], (fmt, subtype)
