"""The report page: one self-contained HTML file, every report value escaped."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np
import pandas as pd
import pytest
from report_support import FORMULA_TAG, SCRIPT_TITLE, synthetic_report

from audiosim.report.html import render_html, table
from audiosim.report.write import write_report


def test_table_escapes_cells_and_headers():
    html = table(pd.DataFrame({"<b>col</b>": [SCRIPT_TITLE], "n": [1.5]}), {"n": "{:.2f}"})
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;col&lt;/b&gt;" in html and "1.50" in html


def test_page_escapes_every_report_value():
    r = synthetic_report([SCRIPT_TITLE, FORMULA_TAG, "three", "four", "five", "six"])
    r.name, r.source, r.home = "<u>name</u>", "<u>source</u>", "<u>home</u>"
    html = render_html(r, {})
    assert "<script" not in html and "<u>" not in html and "<a " not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;u&gt;name&lt;/u&gt;" in html and "&lt;u&gt;source&lt;/u&gt;" in html and "&lt;u&gt;home&lt;/u&gt;" in html
    assert "could not decode &lt;script&gt;" in html  # descriptor errors


def test_page_has_every_section_and_embeds_the_figures_it_is_given():
    r = synthetic_report(["one", "two", "three", "four", "five", "six"])
    png = b"\x89PNG fake"
    html = render_html(r, {"heatmap": png, "moods": png})
    for section in ("Cohesion", "Songs", "Similarity", "Most similar pairs", "Outliers", "Map of the catalogue",
                    "Moods", "Tempo and energy arc", "Suggested order", "Suggested additions", "Not analysed (1)",
                    "How this was computed"):
        assert section.lower() in html.lower(), section
    assert html.count("data:image/png;base64,") == 2
    assert "(catalogue map: not enough data to draw)" in html and "(tempo and energy arc: not enough data to draw)" in html
    assert "http://" not in html and "https://" not in html


def test_songs_table_shows_lengths_as_durations():
    r = synthetic_report(["one", "two", "three", "four"])
    r.tracks["duration"] = [75.4, 3725.0, np.nan, 59.6]
    html = render_html(r, {})
    assert ">1:15<" in html and ">1:02:05<" in html and ">1:00<" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(lib, tmp_path):
    from audiosim.report.analysis import build_report

    pl = tmp_path / "folder-mix"
    pl.mkdir()
    for p in lib.paths[:5]:
        shutil.copy(p, pl / p.name)
    html = write_report(build_report(pl, lib.home, model=lib.model), tmp_path / "r")
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
