"""Ingest of one file and of batches, retries through Prefect, pruning, the Prefect flow and the CLI."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import mutagen
import numpy as np
import pytest
import soundfile as sf
from conftest import EXPECTED_REASONS, tone

from audiosim.cli.main import main
from audiosim.config import ConfigMismatchError, FeatureConfig
from audiosim.ingest import ingest as ingest_mod
from audiosim.ingest.ingest import (
    FAILURE_REASONS,
    BatchResult,
    TransientIngestError,
    compute_features,
    count_statuses,
    ingest_batch,
    ingest_file,
    ingest_many,
)
from audiosim.signal import audio
from audiosim.signal.audio import REASONS
from audiosim.store.catalog import Catalog
from audiosim.store.content import FeatureStore

REPO = Path(__file__).resolve().parents[3]


def no_recompute(monkeypatch):
    """Make any feature computation fail the test."""

    def boom(*a, **k):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(ingest_mod, "compute_features", boom)


def rows(home):
    with Catalog(home.catalog_path) as cat:
        return list(cat.iter_tracks())


def feature_files(home):
    return sorted(home.features_dir.glob("??/*.npy"))


def temp_files(folder):
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


def flaky_store(monkeypatch, fails=lambda digest, attempt: attempt == 1, errno_=errno.EIO):
    """Make ``FeatureStore.put`` raise a transient ``OSError`` when ``fails(digest, attempt)``.

    Returns the list of digests ``put`` was called with (one per attempt).
    """
    real_put = FeatureStore.put
    calls: list[str] = []

    def put(self, digest, *a, **k):
        calls.append(digest)
        if fails(digest, calls.count(digest)):
            raise OSError(errno_, os.strerror(errno_))
        return real_put(self, digest, *a, **k)

    monkeypatch.setattr(FeatureStore, "put", put)
    return calls


# ---------------------------------------------------------------- one file


def test_ingest_adds_track_with_features(home, make_wav):
    p = make_wav("song.wav", seconds=3, sr=22050, channels=2)
    r = ingest_file(p, home)
    assert r.status == "added" and r.track_id is not None and r.seconds > 0
    [t] = rows(home)
    assert (t.path, t.title, t.status, t.sample_rate, t.channels) == (str(p), "song", "ok", 22050, 2)
    assert t.duration == pytest.approx(3.0, abs=0.01)
    feats = FeatureStore(home.features_dir).get(t.content_hash)
    assert feats.dtype == np.float16 and feats.shape[0] == 64
    assert feats.shape[1] == pytest.approx(3.0 * FeatureConfig().frames_per_second, abs=10)


def test_tags_are_read(home, tmp_path):
    p = tmp_path / "x.flac"
    sf.write(p, tone(2.0), 8000)
    f = mutagen.File(p, easy=True)
    f["title"], f["artist"], f["album"] = "Title", "Artist", "Album"
    f.save()
    ingest_file(p, home)
    [t] = rows(home)
    assert (t.title, t.artist, t.album) == ("Title", "Artist", "Album")


def test_reingest_is_idempotent(home, make_wav, monkeypatch):
    files = [make_wav(f"{i}.wav", freq=300 + 100 * i) for i in range(3)]
    assert count_statuses(ingest_many(files, home))["added"] == 3
    before = {p: p.stat().st_mtime_ns for p in feature_files(home)}
    no_recompute(monkeypatch)
    assert count_statuses(ingest_many(files, home))["skipped"] == 3
    os.utime(files[0], ns=(1, 1))  # touched, content unchanged: re-hashed, still skipped
    assert ingest_file(files[0], home).status == "skipped"
    assert ingest_file(files[0], home).status == "skipped"
    assert len(rows(home)) == 3
    assert {p: p.stat().st_mtime_ns for p in feature_files(home)} == before


def test_renamed_file_is_not_recomputed(home, make_wav, monkeypatch):
    p = make_wav("old.wav")
    tid = ingest_file(p, home).track_id
    new = p.with_name("new.wav")
    p.rename(new)
    no_recompute(monkeypatch)
    r = ingest_file(new, home)
    assert (r.status, r.track_id, r.reason) == ("updated", tid, "moved")
    [t] = rows(home)
    assert t.path == str(new)
    assert len(feature_files(home)) == 1


def test_copied_file_shares_features(home, make_wav, monkeypatch):
    p = make_wav("a.wav")
    ingest_file(p, home)
    copy = p.with_name("copy.wav")
    copy.write_bytes(p.read_bytes())
    no_recompute(monkeypatch)
    assert ingest_file(copy, home).status == "added"
    assert len(rows(home)) == 2 and len(feature_files(home)) == 1


def test_changed_file_is_updated(home, make_wav):
    p = make_wav("a.wav", freq=440)
    r1 = ingest_file(p, home)
    old_hash = rows(home)[0].content_hash
    make_wav("a.wav", freq=880, seconds=4)
    r2 = ingest_file(p, home)
    assert (r2.status, r2.track_id, r2.reason) == ("updated", r1.track_id, "changed")
    [t] = rows(home)
    assert t.content_hash != old_hash and t.duration == pytest.approx(4.0, abs=0.01)
    assert FeatureStore(home.features_dir).has(t.content_hash)


def test_missing_features_are_recomputed(home, make_wav):
    p = make_wav("a.wav")
    ingest_file(p, home)
    [f] = feature_files(home)
    f.unlink()
    r = ingest_file(p, home)
    assert (r.status, r.reason) == ("updated", "features-missing") and f.exists()


def test_bad_files_recorded_with_reasons(home, make_wav, bad_files):
    good = [make_wav("good1.wav"), make_wav("good2.wav", freq=660)]
    results = ingest_many([*bad_files.values(), *good], home, workers=2)
    by_path = {r.path: r for r in results}
    for kind, p in bad_files.items():
        r = by_path[str(p)]
        assert r.status == "failed" and r.reason in EXPECTED_REASONS[kind], (kind, r)
        assert r.detail
    assert [by_path[str(p)].status for p in good] == ["added", "added"]
    with Catalog(home.catalog_path) as cat:
        assert cat.counts() == {"ok": 2, "failed": len(bad_files)}
        failed = cat.tracks(status="failed")
    assert set(failed["reason"]) >= {"empty", "not-audio", "silence", "corrupt", "truncated", "too-short"}
    assert len(feature_files(home)) == 2


def test_every_failure_reason_is_listed_in_one_place():
    assert set(REASONS) <= set(FAILURE_REASONS) and {"error", ingest_mod.MISSING} <= set(FAILURE_REASONS)
    for kind, reasons in EXPECTED_REASONS.items():
        assert reasons <= set(REASONS), kind
    assert all(FAILURE_REASONS.values())


def one_row(home):
    [t] = rows(home)
    return t


def test_permission_denied_is_recorded_as_such(home, make_wav, monkeypatch):
    p = make_wav("locked.wav")

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(audio, "open", denied, raising=False)  # the decoder's own reads
    r = ingest_file(p, home)
    assert (r.status, r.reason) == ("failed", "permission-denied") and "permission denied" in r.detail
    assert (one_row(home).reason, one_row(home).detail) == ("permission-denied", r.detail)


def test_permission_denied_on_the_folder_is_recorded_as_such(home, make_wav, monkeypatch):
    p = make_wav("hidden.wav")
    real_stat = os.stat

    def stat(path, *a, **k):
        if str(path) == str(p):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *a, **k)

    monkeypatch.setattr(ingest_mod.os, "stat", stat)
    r = ingest_file(p, home)
    assert (r.status, r.reason) == ("failed", "permission-denied")


def test_a_device_is_recorded_as_not_a_regular_file(home):
    r = ingest_file("/dev/zero", home)
    assert (r.status, r.reason, r.detail) == ("failed", "not-a-regular-file", "a character device")


def test_text_named_mp3_is_recorded_as_not_audio(home, tmp_path):
    p = tmp_path / "song.mp3"
    p.write_text("not a song\n" * 50)
    r = ingest_file(p, home)
    assert (r.status, r.reason, r.detail) == ("failed", "not-audio", "not audio: the file holds text")


def test_nan_is_recorded_as_corrupt_at_its_time(home, tmp_path):
    x = tone(5.0)
    x[3 * 8000 + 5] = np.nan
    sf.write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    r = ingest_file(tmp_path / "nan.wav", home)
    assert (r.status, r.reason) == ("failed", "corrupt") and "at 3.0 s" in r.detail


def test_a_truncated_file_fails_or_is_kept_with_a_warning(home, tmp_path):
    sr = 44100
    x = tone(12.0, sr) + 0.05 * np.random.default_rng(0).standard_normal(12 * sr).astype(np.float32)
    whole_ogg, whole_wav = tmp_path / "whole.ogg", tmp_path / "whole.wav"
    sf.write(whole_ogg, x, sr, format="OGG", subtype="VORBIS")
    sf.write(whole_wav, x, sr)
    cuts = {}
    for name, whole, share in (("third.ogg", whole_ogg, 1 / 3), ("third.wav", whole_wav, 1 / 3),
                               ("most.wav", whole_wav, 0.8)):
        data = whole.read_bytes()
        cuts[name] = tmp_path / name
        cuts[name].write_bytes(data[: int(len(data) * share)])
    results = {Path(r.path).name: r for r in ingest_many([whole_ogg, whole_wav, *cuts.values()], home)}
    assert results["whole.ogg"].detail is None and results["whole.wav"].detail is None
    assert results["third.wav"].status == "failed" and results["third.wav"].reason == "truncated"
    for name in ("third.ogg", "most.wav"):  # the Ogg states no length: it can only be warned about
        r = results[name]
        assert r.status == "added" and r.reason is None and r.detail.startswith("cut short"), r
    by_name = {Path(t.path).name: t for t in rows(home)}
    assert by_name["third.ogg"].status == "ok" and by_name["third.ogg"].detail == results["third.ogg"].detail
    assert by_name["most.wav"].detail == "cut short: decoded 9.6 s of the 12.0 s its header states"
    assert by_name["whole.wav"].detail is None


def test_failed_file_is_retried(home, make_wav, bad_files):
    p = bad_files["not-audio"]
    r1 = ingest_file(p, home)
    assert r1.status == "failed"
    assert ingest_file(p, home).status == "failed"  # retried, not skipped
    sf.write(p, tone(2.0), 8000, format="WAV")  # fixed
    r3 = ingest_file(p, home)
    assert (r3.status, r3.track_id) == ("added", r1.track_id)
    [t] = rows(home)
    assert t.status == "ok" and t.reason is None


def test_unexpected_error_is_recorded(home, make_wav, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("library bug")

    monkeypatch.setattr(ingest_mod, "compute_features", broken)
    r = ingest_file(make_wav("a.wav"), home)
    assert (r.status, r.reason) == ("failed", "error") and "RuntimeError: library bug" in r.detail


def test_feature_config_mismatch_refused(home, make_wav):
    p = make_wav("a.wav")
    ingest_file(p, home)
    other = FeatureConfig(n_mels=32)
    with pytest.raises(ConfigMismatchError, match=other.digest()):
        ingest_many([p], home, feature_config=other)
    with pytest.raises(ConfigMismatchError, match=FeatureConfig().digest()):
        ingest_file(p, home, feature_config=other)
    assert len(rows(home)) == 1


def test_crash_between_features_and_row(home, make_wav, monkeypatch):
    p = make_wav("a.wav")

    def killed(*a, **k):
        raise KeyboardInterrupt  # not an Exception: escapes like a kill would

    monkeypatch.setattr(Catalog, "upsert_ok", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest_file(p, home)
    monkeypatch.undo()
    assert rows(home) == [] and len(feature_files(home)) == 1
    no_recompute(monkeypatch)
    assert ingest_file(p, home).status == "added"
    assert len(rows(home)) == 1 and len(feature_files(home)) == 1


def test_a_transient_error_is_raised_typed_and_leaves_no_trace(home, make_wav, monkeypatch):
    p = make_wav("a.wav")
    calls = flaky_store(monkeypatch)
    with pytest.raises(TransientIngestError) as e:
        ingest_file(p, home)
    assert e.value.path == str(p) and isinstance(e.value.cause, OSError)
    assert e.value.cause.errno == errno.EIO and "a.wav" in str(e.value)
    assert rows(home) == [] and feature_files(home) == []
    assert ingest_file(p, home).status == "added"  # the next attempt is the caller's choice
    assert len(calls) == 2


def test_a_busy_catalogue_is_transient(home, make_wav, monkeypatch):
    def busy(*a, **k):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Catalog, "upsert_ok", busy)
    with pytest.raises(TransientIngestError):
        ingest_file(make_wav("a.wav"), home)


def test_ingest_many_makes_one_attempt_and_records_a_transient_error(home, make_wav, monkeypatch):
    bad, good = make_wav("bad.wav"), make_wav("good.wav", freq=660)
    from audiosim.signal.audio import content_hash

    calls = flaky_store(monkeypatch, fails=lambda digest, attempt: digest == content_hash(bad))
    by_name = {Path(r.path).name: r for r in ingest_many([bad, good], home)}
    assert (by_name["bad.wav"].status, by_name["bad.wav"].reason) == ("failed", "error")
    assert by_name["bad.wav"].detail == f"OSError: [Errno {errno.EIO}] {os.strerror(errno.EIO)}"
    assert by_name["good.wav"].status == "added"
    assert calls.count(content_hash(bad)) == 1  # no retry in the library
    failed = {Path(t.path).name: t for t in rows(home) if not t.ok}
    assert (failed["bad.wav"].reason, failed["bad.wav"].detail) == ("error", by_name["bad.wav"].detail)


def test_a_batch_returns_its_transient_files_unrecorded(home, make_wav, monkeypatch, bad_files):
    files = [make_wav(f"{i}.wav", freq=300 + 100 * i) for i in range(3)]
    calls = flaky_store(monkeypatch, fails=lambda digest, attempt: len(calls) == 2)  # the second file's put
    out = ingest_batch([*files, bad_files["silence"]], home)
    assert isinstance(out, BatchResult)
    assert out.transient == (str(files[1]),)
    assert [(Path(r.path).name, r.status) for r in out.results] == [
        ("0.wav", "added"), ("2.wav", "added"), ("silence.wav", "failed")]
    assert str(files[1]) not in {t.path for t in rows(home)}


def test_features_stream_without_holding_the_waveform(tmp_path):
    # 10 minutes at 8 kHz: the waveform would be 19 MB of float32,
    # the float32 features 9.8 MB. Peak must stay near the features.
    p = tmp_path / "long.wav"
    sr, seconds = 8000, 600
    with sf.SoundFile(p, "w", sr, 1, "PCM_16") as f:
        for i in range(seconds // 60):
            f.write(tone(60.0, sr, freq=200 + 50 * i))
    fc = FeatureConfig()
    tracemalloc.start()
    logmel, duration = compute_features(p, fc, ingest_mod.DecodeConfig())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert duration == pytest.approx(seconds)
    waveform_bytes = sr * seconds * 4
    assert peak < 2.5 * logmel.nbytes + 0.25 * waveform_bytes, (peak, logmel.nbytes)


# ---------------------------------------------------------------- Prefect flow


@pytest.mark.slow
def test_ingest_flow(prefect_harness, home, make_wav, bad_files, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.ingest import ingest_flow

    good = [make_wav(f"g{i}.wav", freq=300 + 50 * i) for i in range(3)]
    seen = []
    results = ingest_flow(
        [good[0].parent], home=home.root, workers=2, progress=seen.append
    )
    counts = count_statuses(results)
    assert counts == {"added": 3, "updated": 0, "skipped": 0, "failed": len(bad_files)}
    assert len(seen) == len(results)
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-summary", "ingest-results"]))
        )
    assert {a.key for a in arts} == {"ingest-summary", "ingest-results"}
    # the Prefect harness is shared by the session: pick this test's run by its data home
    summary = next(a for a in arts if a.key == "ingest-summary" and str(home.root) in a.data)
    assert "| 3 |" in summary.data and "silence" in summary.data

    no_recompute(monkeypatch)
    again = count_statuses(ingest_flow([good[0].parent], home=home.root))
    assert again == {"added": 0, "updated": 0, "skipped": 3, "failed": len(bad_files)}


def _task_runs(flow_state) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=flow_run)


@pytest.mark.slow
def test_prefect_retries_a_transient_failure_and_the_file_is_ingested(prefect_harness, home, make_wav, monkeypatch):
    from flows.ingest import ingest_flow

    calls = flaky_store(monkeypatch, errno_=errno.EAGAIN)  # fails on the first attempt only
    state = ingest_flow([make_wav("a.wav")], home=home.root, return_state=True)
    [r] = state.result()
    assert r.status == "added" and len(calls) == 2
    [run] = [t for t in _task_runs(state) if t.name == "ingest a.wav"]
    assert run.run_count == 2 and run.state.is_completed()  # the second attempt was Prefect's retry


@pytest.mark.slow
def test_a_file_failing_every_time_ends_failed_and_the_batch_goes_on(prefect_harness, home, make_wav, monkeypatch):
    from audiosim.signal.audio import content_hash
    from flows.ingest import RETRIES, ingest_flow

    bad = make_wav("bad.wav")
    good = [make_wav(f"g{i}.wav", freq=300 + 100 * i) for i in range(2)]
    calls = flaky_store(monkeypatch, fails=lambda digest, attempt: digest == content_hash(bad))
    results = {Path(r.path).name: r for r in ingest_flow([bad.parent], home=home.root, workers=2)}
    assert (results["bad.wav"].status, results["bad.wav"].reason) == ("failed", "error")
    assert results["bad.wav"].detail == f"OSError: [Errno {errno.EIO}] {os.strerror(errno.EIO)}"
    assert calls.count(content_hash(bad)) == 1 + RETRIES
    assert [results[p.name].status for p in good] == ["added", "added"]
    by_name = {Path(t.path).name: t for t in rows(home)}
    assert (by_name["bad.wav"].status, by_name["bad.wav"].reason) == ("failed", "error")


@pytest.mark.slow
def test_a_batch_file_with_a_transient_error_gets_a_retried_task_of_its_own(prefect_harness, home, make_wav,
                                                                            monkeypatch):
    from flows.ingest import ingest_flow

    files = [make_wav(f"{i}.wav", freq=300 + 100 * i) for i in range(3)]
    calls = flaky_store(monkeypatch, fails=lambda digest, attempt: len(calls) == 2)  # the batch's second file
    state = ingest_flow([files[0].parent], home=home.root, batch_size=3, return_state=True)
    results = state.result()
    assert sorted((Path(r.path).name, r.status) for r in results) == [
        ("0.wav", "added"), ("1.wav", "added"), ("2.wav", "added")]  # not re-ingested as "skipped"
    assert len(calls) == 4
    names = sorted(t.name for t in _task_runs(state) if t.name.startswith("ingest "))
    assert names == ["ingest 0.wav and 2 more", "ingest 1.wav"]


# ---------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_ingest_exit_codes_and_catalog(prefect_harness, home, make_wav, bad_files, capsys):
    good = [make_wav("g1.wav"), make_wav("g2.wav", freq=550)]
    h = str(home.root)
    assert main(["ingest", str(good[0].parent), "--home", h, "-q"]) == 1
    out = capsys.readouterr().out
    assert out.strip() == (
        f"2 added, 0 updated, 0 skipped, {len(bad_files)} failed (see `audiosim catalog --failed --home {h}`)"
    )

    assert main(["catalog", "--home", h, "--failed", "--format", "json"]) == 0
    failed = json.loads(capsys.readouterr().out)
    assert {Path(r["path"]).name for r in failed} == {p.name for p in bad_files.values()}
    assert all(r["status"] == "failed" and r["reason"] for r in failed)

    assert main(["catalog", "--home", h, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2 + len(bad_files)
    assert main(["catalog", "--home", h, "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("\n") == 1 + 2 + len(bad_files)
    assert main(["catalog", "--home", h, "--failed"]) == 0
    table = capsys.readouterr().out
    assert "silence" in table and "g1.wav" not in table

    assert main(["ingest", *map(str, good), "--home", h, "-q"]) == 0
    assert capsys.readouterr().out.strip() == "0 added, 0 updated, 2 skipped, 0 failed"


def test_cli_no_audio_found(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["ingest", str(tmp_path / "empty"), "--home", str(tmp_path / "h")]) == 0
    captured = capsys.readouterr()
    assert "no audio files found" in captured.err
    assert captured.out.strip() == "0 added, 0 updated, 0 skipped, 0 failed"


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "missing.wav"), "--home", str(tmp_path / "h")]) == 2
    assert "missing.wav: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()
    assert main(["ingest", str(tmp_path), "--workers", "0"]) == 2
    assert main(["catalog", "--home", str(tmp_path / "none")]) == 2
    assert "no catalogue" in capsys.readouterr().err
    assert main(["catalog", "--format", "xml"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "ingest" in capsys.readouterr().out


@pytest.mark.slow
def test_kill_and_resume(prefect_harness, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    sr = 44100
    for i in range(30):
        sf.write(audio / f"{i:02d}.wav", tone(12.0, sr, freq=200 + 20 * i, seed=i), sr)
    home = tmp_path / "home"
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "audiosim.cli.main", "ingest", str(audio), "--home", str(home), "-q"]

    def n_rows() -> int:
        try:
            with sqlite3.connect(f"file:{home / 'catalog.sqlite'}?mode=ro", uri=True, timeout=5) as c:
                return c.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
        except sqlite3.Error:
            return 0

    # cwd outside the repo: the CLI must still find the flows package.
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600  # generous: busy machines start slowly
        while n_rows() < 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "ingest made no progress"
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
    at_kill = n_rows()
    assert 4 <= at_kill < 30, "the run finished before it could be killed"
    with Catalog(home / "catalog.sqlite") as cat:  # no row without features, even now
        store = FeatureStore(home / "features")
        assert all(store.has(t.content_hash) for t in cat.iter_tracks("ok"))

    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    added, updated, skipped, failed = (int(w) for w in done.stdout.split()[0:8:2])
    assert (added + updated, skipped, failed) == (30 - at_kill, at_kill, 0), done.stdout
    with Catalog(home / "catalog.sqlite") as cat:
        tracks = list(cat.iter_tracks())
    assert len(tracks) == 30 and len({t.path for t in tracks}) == 30
    assert all(t.status == "ok" and store.has(t.content_hash) for t in tracks)
    assert len(list(store.hashes())) == 30
    assert temp_files(home) == []


# ---------------------------------------------------------------- prune


def _by_name(home) -> dict:
    with Catalog(home.catalog_path) as cat:
        return {Path(t.path).name: t for t in cat.iter_tracks()}


def test_prune_marks_deleted_files_missing(home, tmp_path):
    from audiosim.ingest.ingest import ingest_many, prune_missing

    music, other = tmp_path / "music", tmp_path / "other"
    music.mkdir(), other.mkdir()
    files = [music / f"{i}.wav" for i in range(3)]
    for i, p in enumerate(files):
        sf.write(p, tone(2.0, freq=300 + 100 * i), 8000)
    elsewhere = other / "x.wav"
    sf.write(elsewhere, tone(2.0, freq=900), 8000)
    ingest_many([*files, elsewhere], home)
    before = _by_name(home)
    files[1].unlink()
    elsewhere.unlink()  # gone too, but not under the folder pruned

    res = prune_missing([music], home)
    assert res.pruned == ((before["1.wav"].id, str(files[1])),)
    assert res.roots == (str(music),) and res.skipped == ()
    assert "pruned 1 track(s)" in res.describe()
    after = _by_name(home)
    assert (after["1.wav"].status, after["1.wav"].reason) == ("failed", "missing")
    assert after["1.wav"].content_hash == before["1.wav"].content_hash  # the row keeps its history
    assert after["0.wav"].ok and after["2.wav"].ok and after["x.wav"].ok
    assert prune_missing([music], home).pruned == ()  # already marked: nothing new

    sf.write(files[1], tone(2.0, freq=400), 8000)  # the file comes back: same track again
    [r] = ingest_many([files[1]], home)
    assert (r.status, r.track_id) == ("added", before["1.wav"].id)


def test_prune_refuses_missing_or_empty_roots(home, tmp_path):
    from audiosim.ingest.ingest import ingest_many, prune_missing

    disk = tmp_path / "disk"
    (disk / "sub").mkdir(parents=True)
    files = [disk / "sub" / f"{i}.wav" for i in range(2)]
    for i, p in enumerate(files):
        sf.write(p, tone(2.0, freq=300 + 100 * i), 8000)
    (disk / "notes.txt").write_text("not audio\n")
    ingest_many(files, home)
    for p in files:  # as if the disk were unmounted, leaving its mount point with no audio
        p.unlink()
    res = prune_missing([disk, tmp_path / "nowhere"], home)
    assert res.pruned == () and res.roots == ()
    assert [Path(r).name for r, _ in res.skipped] == ["disk", "nowhere"]
    assert "no audio file" in res.skipped[0][1] and "does not exist" in res.skipped[1][1]
    assert all(t.ok for t in _by_name(home).values())


@pytest.mark.slow
def test_cli_ingest_prune(prefect_harness, home, tmp_path, capsys):
    music = tmp_path / "music"
    music.mkdir()
    for i in range(2):
        sf.write(music / f"{i}.wav", tone(2.0, freq=300 + 100 * i), 8000)
    assert main(["ingest", "-q", "--home", str(home.root), str(music)]) == 0
    (music / "0.wav").unlink()
    capsys.readouterr()
    assert main(["ingest", "--home", str(home.root), "--prune", str(music)]) == 0
    out, err = capsys.readouterr()
    assert "pruned 1 track(s) whose file is gone" in out
    assert f"pruned: {music / '0.wav'}" in err
    assert _by_name(home)["0.wav"].reason == "missing"
