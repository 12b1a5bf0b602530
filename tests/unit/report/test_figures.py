"""The report's figures: every one that applies is drawn, and point labels never overlap."""

from __future__ import annotations

import numpy as np
import pytest
from report_support import SCRIPT_TITLE, synthetic_report

from audiosim.report.figures import (
    catalogue_scatter,
    draw_all,
    marker_radius_px,
    moods,
    overlapping_pairs,
    place_labels,
    text_boxes,
)

PNG = b"\x89PNG\r\n\x1a\n"
DOT = 120.0


def _canvas(width: float = 6, height: float = 4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _marker_boxes(fig, ax, xy: np.ndarray, radius: float) -> np.ndarray:
    fig.draw_without_rendering()
    centres = ax.transData.transform(xy)
    return np.column_stack([centres - radius, centres + radius])


def _covering(label_boxes: np.ndarray, marker_boxes: np.ndarray, tolerance: float = 0.5) -> list[tuple[int, int]]:
    """(label, marker) index pairs where the label covers the marker."""
    n = len(label_boxes)
    return [(i, j - n) for i, j in overlapping_pairs(np.vstack([label_boxes, marker_boxes]), tolerance)
            if i < n <= j]


def test_labels_of_near_identical_points_neither_overlap_nor_cover_markers():
    fig = _canvas()
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    xy = np.vstack([0.5 + rng.normal(0, 1e-4, (8, 2)), [[0.52, 0.5], [0.5, 0.53]], rng.uniform(0.1, 0.9, (6, 2))])
    ax.scatter(xy[:, 0], xy[:, 1], s=DOT)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    r = marker_radius_px(DOT)
    labels = place_labels(ax, list(map(tuple, xy)), [str(i + 1) for i in range(len(xy))], radius=r,
                          markers=[(x, y, r) for x, y in xy], fontsize=9)
    boxes = text_boxes(fig, labels)
    assert len(boxes) == len(xy)
    assert overlapping_pairs(boxes) == []
    assert _covering(boxes, _marker_boxes(fig, ax, xy, r)) == []
    frame = ax.get_window_extent()
    assert (boxes[:, 0] >= frame.x0).all() and (boxes[:, 2] <= frame.x1).all()
    assert (boxes[:, 1] >= frame.y0).all() and (boxes[:, 3] <= frame.y1).all()


def test_labels_avoid_labels_placed_before():
    fig = _canvas()
    ax = fig.add_subplot()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    first = place_labels(ax, [(0.5, 0.5)], ["first label"], fontsize=12)
    second = place_labels(ax, [(0.5, 0.5)], ["second label"], taken=first, fontsize=12)
    assert overlapping_pairs(text_boxes(fig, [*first, *second])) == []


def test_overlap_detection_sees_overlapping_labels():
    """The check the other tests rely on: two labels drawn on the same spot are found."""
    fig = _canvas()
    ax = fig.add_subplot()
    a, b = ax.text(0.5, 0.5, "6"), ax.text(0.5, 0.5, "8")
    assert overlapping_pairs(text_boxes(fig, [a, b])) == [(0, 1)]


def _clustered_report():
    r = synthetic_report([f"song {i}" for i in range(1, 11)], n_catalogue=30)
    m = r.catalogue_map
    playlist = m["role"] == "playlist"
    m.loc[playlist, "x"] = 0.1 + 1e-4 * np.arange(playlist.sum())  # the playlist songs on one spot
    m.loc[playlist, "y"] = 0.2
    r.tracks["valence"] = 0.44 + 0.01 * np.arange(len(r.tracks)) % 0.03  # and near the "energetic" prototype
    r.tracks["arousal"] = 0.80
    return r


@pytest.mark.slow
@pytest.mark.parametrize("draw", [catalogue_scatter, moods], ids=["map", "moods"])
def test_figure_labels_do_not_overlap_even_when_songs_share_a_spot(draw):
    fig = draw(_clustered_report())
    ax = fig.axes[0]
    labels = list(ax.texts)
    assert len(labels) >= 10
    assert overlapping_pairs(text_boxes(fig, labels)) == []


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


@pytest.mark.slow
def test_mood_mix_counts_are_whole_numbers():
    fig = moods(synthetic_report(["a", "b", "c"]))
    ticks = fig.axes[1].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
