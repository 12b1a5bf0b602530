"""Playlist reports: reading playlists, resolving them, the analysis, HTML and CSV output."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from audiosim.config import SIMILARITY_MODEL, similarity_features
from audiosim.fingerprint.model import Encoder, save_encoder
from audiosim.report.playlist import (
    PlaylistItem,
    best_path,
    build_report,
    cohesion_stats,
    read_playlist,
    resolve_playlist,
    summary_markdown,
    write_report,
)
from audiosim.similarity.vectors import load_similarity_model


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """Eight 8-second songbook songs, six ingested (two left for the report to ingest), and a model."""
    from audiosim.demo.songbook import write_songbook
    from audiosim.ingest.ingest import ingest_many

    root = tmp_path_factory.mktemp("report")
    paths = write_songbook(root / "songs", n=8, seconds=8.0, sample_rate=8000)
    home = root / "home"
    ingest_many(paths[:6], home)
    torch.manual_seed(0)
    save_encoder(Encoder(SIMILARITY_MODEL, similarity_features()), root / "model.pt", {"kind": "test"})
    return root, home, paths, load_similarity_model(root / "model.pt")


def test_read_m3u_with_relative_paths_comments_and_ids(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    m3u = tmp_path / "list.m3u"
    m3u.write_text("#EXTM3U\n#EXTINF:1,A\na.wav\n\n12\nmissing.ogg\n")
    items = read_playlist(m3u)
    assert [i.entry for i in items] == [str(tmp_path / "a.wav"), "12", str(tmp_path / "missing.ogg")]
    assert items[1].track_id == 12 and items[0].path == tmp_path / "a.wav"


def test_read_csv_by_column_name(tmp_path):
    csv = tmp_path / "p.csv"
    pd.DataFrame({"title": ["x", "y"], "Path": ["/abs/one.wav", "two.wav"]}).to_csv(csv, index=False)
    items = read_playlist(csv)
    assert [i.path for i in items] == [Path("/abs/one.wav"), tmp_path / "two.wav"]
    pd.DataFrame({"track_id": [3, 1]}).to_csv(csv, index=False)
    assert [i.track_id for i in read_playlist(csv)] == [3, 1]


def test_read_folder_and_reject_other_files(tmp_path, make_wav):
    make_wav(tmp_path / "f" / "b.wav")
    make_wav(tmp_path / "f" / "a.wav")
    assert [Path(i.entry).name for i in read_playlist(tmp_path / "f")] == ["a.wav", "b.wav"]
    with pytest.raises(ValueError, match="not a playlist"):
        read_playlist(tmp_path / "f" / "a.wav")
    with pytest.raises(FileNotFoundError):
        read_playlist(tmp_path / "nope.m3u")


def test_resolve_marks_missing_unknown_duplicates_and_ingests(lib):
    root, home, paths, _ = lib
    items = [PlaylistItem(str(paths[0]), path=paths[0]), PlaylistItem("2", track_id=2), PlaylistItem("99", track_id=99),
             PlaylistItem(str(root / "gone.wav"), path=root / "gone.wav"), PlaylistItem("1", track_id=1)]
    df = resolve_playlist(items, home, ingest=False)
    assert list(df["status"]) == ["ok", "ok", "missing", "missing", "duplicate"]
    assert "no track with id 99" in df.loc[2, "detail"] and df.loc[3, "detail"] == "no such file"
    not_yet = [PlaylistItem(str(paths[6]), path=paths[6])]
    assert resolve_playlist(not_yet, home, ingest=False).loc[0, "status"] == "missing"
    assert resolve_playlist(not_yet, home, ingest=True).loc[0, "status"] == "ingested"
    assert resolve_playlist(not_yet, home, ingest=True).loc[0, "status"] == "ok"


def test_best_path_recovers_a_line():
    pts = np.array([0.0, 5.0, 1.0, 4.0, 2.0, 3.0])
    cost = np.abs(pts[:, None] - pts[None, :])
    path = best_path(cost, start=0)
    assert [pts[i] for i in path] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_cohesion_against_random_playlists():
    rng = np.random.default_rng(0)
    cat = rng.standard_normal((200, 8))
    tight = cat[0] + 0.05 * rng.standard_normal((5, 8))
    c = cohesion_stats(tight, cat)
    assert c["cohesion"] > 0.9 and c["percentile"] == 100.0 and abs(c["random_mean"]) < 0.1
    assert c["pair_baseline"] == pytest.approx(c["random_mean"], abs=0.05)


def test_report_end_to_end(lib, tmp_path):
    root, home, paths, model = lib
    pl = root / "mix.m3u"
    pl.write_text("\n".join([str(paths[i]) for i in (0, 2, 4, 7, 1)] + ["nowhere.wav", "4"]) + "\n")
    r = build_report(pl, home, model=model, n_additions=3)
    assert list(r.tracks["position"]) == [1, 2, 3, 4, 5, 7]
    assert (r.entries["status"] == "ingested").sum() == 1  # paths[7] was not in the catalogue
    assert list(r.missing["status"]) == ["missing"]
    assert r.similarity.shape == (6, 6) and np.allclose(np.diag(r.similarity), 1.0, atol=1e-5)
    assert len(r.pairs) == 15 and r.pairs["similarity"].is_monotonic_decreasing
    assert sorted(r.order["was"]) == [1, 2, 3, 4, 5, 7] and r.order["was"].iloc[0] == 1
    from audiosim.similarity.vectors import catalogue_tracks

    assert len(r.additions) == min(3, len(catalogue_tracks(home)) - 6)
    assert not set(r.additions["id"]) & set(r.tracks["id"])
    assert set(r.tracks["mood"]) <= {"energetic", "happy", "tense", "calm", "melancholic"}
    assert set(r.figures) == {"heatmap", "map", "moods", "arc"}
    html = write_report(r, tmp_path / "out")
    text = html.read_text()
    for section in ("Cohesion", "Similarity", "Outliers", "Map of the catalogue", "Moods", "Tempo and energy arc",
                    "Suggested order", "Suggested additions", "Not analysed (1)"):
        assert section.lower() in text.lower(), section
    assert text.count("data:image/png;base64,") == 4 and "http://" not in text and "https://" not in text
    for name in ("tracks.csv", "pairs.csv", "similarity.csv", "suggested_order.csv", "suggested_additions.csv",
                 "entries.csv", "summary.md"):
        assert (tmp_path / "out" / name).is_file(), name
    assert pd.read_csv(tmp_path / "out" / "tracks.csv")["position"].tolist() == [1, 2, 3, 4, 5, 7]
    assert "Cohesion" in summary_markdown(r)
    default = write_report(r)
    assert default == Path(home) / "reports" / "mix" / "report.html"


def test_outlier_is_found_and_explained(lib, monkeypatch):
    """A song whose vector points away from the rest is flagged, with the reason."""
    import audiosim.report.playlist as rep

    root, home, paths, model = lib
    real = rep.catalogue_vectors

    def skewed(*a, **k):
        table = real(*a, **k)
        v = np.tile(table.vectors[:1], (len(table.vectors), 1)) + 0.05 * np.random.default_rng(0).standard_normal(table.vectors.shape)
        v[2] = -v[2]  # track id 3 sounds unlike everything
        table.vectors = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        return table

    monkeypatch.setattr(rep, "catalogue_vectors", skewed)
    pl = root / "out.txt"
    pl.write_text("1\n2\n3\n4\n5\n")
    r = build_report(pl, home, model=model, figures=False)
    out = r.tracks[r.tracks["outlier"]]
    assert list(out["id"]) == [3]
    assert "mean similarity to the others" in out["outlier_why"].iloc[0]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(lib, tmp_path):
    root, home, paths, model = lib
    pl = root / "folder-mix"
    pl.mkdir(exist_ok=True)
    for p in paths[:5]:
        shutil.copy(p, pl / p.name)
    html = write_report(build_report(pl, home, model=model), tmp_path / "r")
    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,4000", html.as_uri()],
            check=True, capture_output=True, timeout=120, env={**os.environ, "HOME": profile},
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (4000, 1280)
    assert (img < 128).mean() > 0.01  # text and figures were drawn, not a blank page


def test_report_flow_publishes_artifacts(lib, prefect_harness, tmp_path):
    """The Prefect flow writes the same report and publishes its summary and tables."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.report import report_flow

    root, home, paths, _ = lib
    pl = root / "flow.txt"
    pl.write_text("\n".join(str(p) for p in paths[:4]) + "\n")
    html = report_flow(str(pl), home=str(home), out=str(tmp_path / "flow"), model=str(root / "model.pt"))
    assert Path(html).is_file() and (tmp_path / "flow" / "summary.md").is_file()

    keys = ["playlist-report-summary", "playlist-report-tracks", "playlist-report-order", "playlist-report-additions"]
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    assert {a.key for a in arts} == set(keys)
    summary = next(a for a in arts if a.key == "playlist-report-summary")
    assert "Cohesion" in summary.data and "report.html" in summary.data
