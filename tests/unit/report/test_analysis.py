"""The analysis of a playlist: cohesion, outliers, order, additions, the catalogue map."""

from __future__ import annotations

import numpy as np
import pytest

import audiosim.report.analysis as analysis
from audiosim.report.analysis import best_path, build_report, cohesion_stats
from audiosim.store.catalog import Catalog
from audiosim.store.home import DataHome


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


@pytest.mark.slow
def test_report_analyses_found_songs_in_playlist_order(lib, mix_report):
    r = mix_report
    assert list(r.tracks["position"]) == [1, 2, 3, 4, 5, 7]
    assert (r.entries["status"] == "ingested").sum() == 1  # paths[7] was not in the catalogue
    assert list(r.missing["status"]) == ["missing"]
    assert r.similarity.shape == (6, 6) and np.allclose(np.diag(r.similarity), 1.0, atol=1e-5)
    assert len(r.pairs) == 15 and r.pairs["similarity"].is_monotonic_decreasing
    assert sorted(r.order["was"]) == [1, 2, 3, 4, 5, 7] and r.order["was"].iloc[0] == 1
    with Catalog(DataHome(lib.home).catalog_path) as cat:
        n_catalogue = len(cat.tracks(status="ok"))
    assert len(r.additions) == min(3, n_catalogue - 6)
    assert not set(r.additions["id"]) & set(r.tracks["id"])
    assert set(r.tracks["mood"]) <= {"energetic", "happy", "tense", "calm", "melancholic"}
    assert len(r.catalogue_map) == n_catalogue and (r.catalogue_map["role"] == "playlist").sum() == 6


@pytest.mark.slow
def test_outlier_is_found_and_explained(lib, monkeypatch):
    """A song whose vector points away from the rest is flagged, with the reason."""
    real = analysis.catalogue_vectors

    def skewed(*a, **k):
        table = real(*a, **k)
        v = np.tile(table.vectors[:1], (len(table.vectors), 1)) + 0.05 * np.random.default_rng(0).standard_normal(table.vectors.shape)
        v[2] = -v[2]  # track id 3 sounds unlike everything
        table.vectors = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        return table

    monkeypatch.setattr(analysis, "catalogue_vectors", skewed)
    pl = lib.root / "out.txt"
    pl.write_text("1\n2\n3\n4\n5\n")
    r = build_report(pl, lib.home, model=lib.model)
    out = r.tracks[r.tracks["outlier"]]
    assert list(out["id"]) == [3]
    assert "mean similarity to the others" in out["outlier_why"].iloc[0]
