"""The report's figures: every one that applies is drawn as a PNG."""

from __future__ import annotations

import pytest
from report_support import SCRIPT_TITLE, synthetic_report

from audiosim.report.figures import draw_all

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_every_figure_is_drawn_for_a_report(mix_report):
    figures = draw_all(mix_report)
    assert set(figures) == {"heatmap", "map", "moods", "arc"}
    assert all(png.startswith(PNG) for png in figures.values())


@pytest.mark.slow
def test_titles_with_dollars_and_tags_are_drawn_as_text():
    """matplotlib would read ``$...$`` as maths (and fail on unbalanced dollars); titles are plain text."""
    figures = draw_all(synthetic_report([SCRIPT_TITLE, "cost $5", "x$y$z", "$", "five", "six"]))
    assert set(figures) == {"heatmap", "map", "moods", "arc"}


@pytest.mark.slow
def test_figures_without_descriptors_are_left_out():
    r = synthetic_report(["a", "b", "c", "d"])
    r.tracks = r.tracks.drop(columns=["tempo_bpm", "valence"])
    r.catalogue_map = r.catalogue_map.iloc[0:0]
    assert set(draw_all(r)) == {"heatmap"}
