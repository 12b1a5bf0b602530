"""The report page: one self-contained HTML file, every report value escaped."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from report_support import (
    FORMULA_TAG,
    SCRIPT_TITLE,
    assert_images_are_png,
    chromium,
    run_chromium,
    synthetic_report,
)

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


BROWSER_REQUIRED = os.environ.get("AUDIOSIM_REQUIRE_BROWSER") == "1"
"""Set by ``.ci/run``: there the browser test must run, so a missing chromium fails it instead of skipping it."""


def _need_chromium() -> None:
    if chromium() is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if BROWSER_REQUIRED:
            pytest.fail(f"{message}, and AUDIOSIM_REQUIRE_BROWSER=1 requires the browser test")
        pytest.skip(message)


BROKEN_IMAGES_PROBE = """<script>window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.setAttribute("data-images", document.images.length + " " + broken);
});</script>"""


@pytest.mark.slow
def test_report_renders_in_headless_chromium_with_every_image(lib, tmp_path):
    from audiosim.report.analysis import build_report

    _need_chromium()
    pl = tmp_path / "folder-mix"
    pl.mkdir()
    for p in lib.paths[:5]:
        shutil.copy(p, pl / p.name)
    html = write_report(build_report(pl, lib.home, model=lib.model), tmp_path / "r")
    text = html.read_text()
    assert_images_are_png(text, expected=4)

    probe = tmp_path / "probe.html"  # the page with a script that counts the images the browser could not show
    probe.write_text(text.replace("</body>", BROKEN_IMAGES_PROBE + "</body>"))
    dom = run_chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert 'data-images="4 0"' in dom

    shot = tmp_path / "shot.png"
    run_chromium(f"--screenshot={shot}", "--window-size=1280,4000", html.as_uri())
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (4000, 1280)
    assert (img < 128).mean() > 0.01  # text and figures were drawn, not a blank page


def test_a_missing_browser_fails_the_browser_test_when_required(monkeypatch):
    """With AUDIOSIM_REQUIRE_BROWSER=1 (as ``.ci/run`` sets) the browser test fails instead of skipping."""
    monkeypatch.setattr(sys.modules[__name__], "chromium", lambda: None)
    monkeypatch.setattr(sys.modules[__name__], "BROWSER_REQUIRED", True)
    with pytest.raises(pytest.fail.Exception, match="AUDIOSIM_REQUIRE_BROWSER=1"):
        _need_chromium()
    monkeypatch.setattr(sys.modules[__name__], "BROWSER_REQUIRED", False)
    with pytest.raises(pytest.skip.Exception):
        _need_chromium()


def test_map_caption_names_only_the_points_the_map_shows():
    r = synthetic_report(["one", "two", "three", "four"])
    assert "Grey: the catalogue&#39;s other songs; numbered: the playlist in order; stars: suggested additions." in (
        render_html(r, {"map": b"png"}))
    r.catalogue_map = r.catalogue_map[r.catalogue_map["role"] != "catalogue"]
    html = render_html(r, {"map": b"png"})
    assert "Grey" not in html and "Numbered: the playlist in order; stars: suggested additions." in html
