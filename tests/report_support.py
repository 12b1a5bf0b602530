"""Shared by the report tests and the report flow test: a small songbook library, hostile tags, a synthetic report,
the page's embedded images."""

from __future__ import annotations

import base64
import binascii
import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from mutagen.flac import FLAC
from PIL import Image

from audiosim.demo.songbook import write_songbook
from audiosim.ingest.ingest import ingest_many
from audiosim.report.analysis import (
    PlaylistReport,
    catalogue_map,
    cohesion_stats,
    pair_table,
    suggest_order,
)
from audiosim.similarity.model import cosine_matrix, load_similarity_model
from audiosim.similarity.mood import MOODS

SCRIPT_TITLE = "<script>alert(1)</script>"
"""A song title that is an HTML script tag."""
FORMULA_TAG = '=HYPERLINK("evil.example","click")'
"""A tag that a spreadsheet would run as a formula."""


@dataclass
class Library:
    """Eight 8-second songbook songs, six ingested (two left for a report to ingest), two more ingested
    as FLAC with hostile tags, and the shipped song model."""

    root: Path
    home: Path
    paths: list[Path]
    hostile: list[Path]
    model: object


def tagged_flac(wav: Path, flac: Path, title: str, artist: str) -> Path:
    """``wav`` re-encoded as FLAC with the given title and artist tags."""
    x, sr = sf.read(wav, dtype="float32")
    sf.write(flac, x, sr)
    f = FLAC(flac)
    f["title"], f["artist"] = title, artist
    f.save()
    return flac


def build_library(root: Path) -> Library:
    paths = write_songbook(root / "songs", n=10, seconds=8.0, sample_rate=8000)
    home = root / "home"
    ingest_many(paths[:6], home)
    hostile = [tagged_flac(paths[8], root / "songs" / "script.flac", SCRIPT_TITLE, FORMULA_TAG),
               tagged_flac(paths[9], root / "songs" / "formula.flac", FORMULA_TAG, "@SUM(A1:A9)")]
    ingest_many(hostile, home)
    return Library(root, home, paths[:8], hostile, load_similarity_model())


def synthetic_report(titles: list[str], n_catalogue: int = 30, seed: int = 0) -> PlaylistReport:
    """A complete :class:`PlaylistReport` from random song vectors, without audio (fast).

    The first song is an outlier, the first title is also the missing entry and
    a suggested addition's title, so every table carries the given titles.
    """
    rng = np.random.default_rng(seed)
    n = len(titles)
    cat_vecs = rng.standard_normal((n_catalogue, 16)).astype(np.float32)
    cat_vecs /= np.linalg.norm(cat_vecs, axis=1, keepdims=True)
    vecs = cat_vecs[:n]
    ids = list(range(1, n + 1))
    labels = [f"{i}. {t}" for i, t in zip(ids, titles)]
    sim = cosine_matrix(vecs)
    tracks = pd.DataFrame({
        "position": ids, "id": ids, "title": titles, "artist": [titles[0]] * n,
        "duration": 150.0 + 10 * np.arange(n), "path": [f"/music/{i}.flac" for i in ids],
        "tempo_bpm": 90.0 + 5 * np.arange(n), "key": "C", "mode": ["major", "minor"] * (n // 2) + ["major"] * (n % 2),
        "loudness_db": -20.0 + np.arange(n), "centroid_hz": 1500.0 + 100 * np.arange(n),
        "mood": [MOODS[i % len(MOODS)] for i in range(n)], "valence": np.linspace(-0.8, 0.8, n),
        "arousal": np.linspace(0.7, -0.7, n), "why": [f"because of {t}" for t in titles],
    })
    masked = sim - 2 * np.eye(n)
    tracks["mean_similarity"] = ((sim.sum(1) - 1) / (n - 1)).round(3)
    tracks["closest"] = [labels[j] for j in masked.argmax(1)]
    tracks["closest_similarity"] = masked.max(1).round(3)
    tracks["outlier"] = [True] + [False] * (n - 1)
    tracks["outlier_why"] = [f"mean similarity to the others low; closest: {labels[1]}"] + [""] * (n - 1)
    tracks.attrs["outlier_rule"] = "far below the playlist median"
    order, order_stats = suggest_order(tracks, sim)
    entries = pd.DataFrame({"position": [*ids, n + 1], "entry": [*(f"/music/{i}.flac" for i in ids), titles[0]],
                            "id": pd.array([*ids, None], dtype="Int64"), "path": [*(f"/music/{i}.flac" for i in ids), None],
                            "status": ["ok"] * n + ["missing"], "detail": [""] * n + ["no such file"]})
    additions = pd.DataFrame({"rank": [1], "id": [n + 1], "title": [titles[0]], "similarity": [0.5],
                              "closest": [labels[0]], "closest_similarity": [0.6], "tempo_bpm": [100.0],
                              "mood": ["calm"], "path": ["/music/extra.flac"]})
    cat_tracks = pd.DataFrame({"title": [*titles, *(f"song {i}" for i in range(n + 1, n_catalogue + 1))]},
                              index=pd.Index(range(1, n_catalogue + 1), name="id"))
    return PlaylistReport(
        name="synthetic", source="/music/list.m3u", home="/data", created="2026-01-01 00:00", model_digest="abc123",
        entries=entries, tracks=tracks, similarity=pd.DataFrame(sim, index=labels, columns=labels),
        pairs=pair_table(sim, labels), cohesion=cohesion_stats(vecs, cat_vecs), order=order, order_stats=order_stats,
        additions=additions, catalogue_map=catalogue_map(cat_tracks, cat_vecs, dict(zip(ids, ids)), [n + 1]),
        descriptor_errors={n: f"could not decode {titles[0]}"},
    )


def page_images(html: str) -> list[str]:
    """The ``src`` of every ``<img>`` in ``html`` (empty string for an image without one)."""
    class Images(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.sources: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                self.sources.append(dict(attrs).get("src") or "")

    parser = Images()
    parser.feed(html)
    return parser.sources


def assert_images_are_png(html: str, expected: int) -> None:
    """``html`` has ``expected`` images and each is an embedded, non-empty PNG that decodes."""
    sources = page_images(html)
    assert len(sources) == expected, f"{len(sources)} images, expected {expected}"
    for i, src in enumerate(sources):
        head, _, data = src.partition(",")
        assert head == "data:image/png;base64" and data, f"image {i}: not an embedded PNG: {src[:60]!r}"
        try:
            raw = base64.b64decode(data, validate=True)
        except binascii.Error as e:
            raise AssertionError(f"image {i}: bad base64: {e}") from None
        assert raw.startswith(b"\x89PNG\r\n\x1a\n"), f"image {i}: not PNG bytes"
        with Image.open(io.BytesIO(raw)) as img:
            img.verify()
        with Image.open(io.BytesIO(raw)) as img:
            assert img.width > 100 and img.height > 100, f"image {i}: {img.size}"


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def chromium() -> str | None:
    """The headless browser of the browser tests (Debian's ``chromium``), if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(*args: str, timeout: float = 180) -> str:
    """Run headless chromium with ``args`` in a throwaway profile; returns its stdout."""
    exe = chromium()
    assert exe is not None, "chromium is not installed (apt-get install -y chromium)"
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        done = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], check=True,
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, "HOME": profile})
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return done.stdout
