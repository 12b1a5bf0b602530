"""The figures of a playlist report, drawn with matplotlib.

Each figure function takes a :class:`~audiosim.report.analysis.PlaylistReport`
and returns a ``matplotlib.figure.Figure`` (or ``None`` when the report lacks
the data); :func:`draw_all` draws every one that applies as PNG bytes.
Figures are built with ``matplotlib.figure.Figure`` and an Agg canvas
directly (no pyplot state), so drawing is safe in worker threads.
matplotlib is imported when a figure is drawn, not with this module: it is
slow to import and table-only users never need it.

Point labels (song numbers, mood names) are placed by :func:`place_labels`,
which measures every label with the renderer and moves it to the nearest
free spot around its point, so that no two labels overlap and no label
covers a marker.
"""

from __future__ import annotations

import io
import math
from contextlib import contextmanager
from functools import wraps
from typing import Callable, Iterator, Sequence

import numpy as np

from audiosim.report.analysis import PlaylistReport
from audiosim.similarity.mood import MOODS, PROTOTYPES

MOOD_COLOURS = {
    "energetic": "#d62728",
    "happy": "#f2a900",
    "tense": "#8c3fbf",
    "calm": "#2ca02c",
    "melancholic": "#1f77b4",
}
DPI = 100
LABEL_ANGLES = (45, 90, 0, 135, -45, 180, -90, -135, 22.5, 67.5, 112.5, 157.5, -22.5, -67.5, -112.5, -157.5)
"""Directions (degrees) a label tries around its point, in order of preference."""
LABEL_RINGS = 14
"""Distances a label tries, each :data:`LABEL_RING_STEP` pixels further out."""
LABEL_RING_STEP = 5.0
LEADER_FROM_RING = 2
"""A label placed this many rings out or further gets a thin line to its point."""


@contextmanager
def plain_text() -> Iterator[None]:
    """matplotlib settings under which song titles are drawn as text (``$`` is not maths)."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        yield


def _plain(fn: Callable) -> Callable:
    @wraps(fn)
    def wrapped(*args, **kwargs):
        with plain_text():
            return fn(*args, **kwargs)

    return wrapped


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig) -> bytes:
    """``fig`` as PNG bytes (cropped to its content)."""
    buf = io.BytesIO()
    with plain_text():
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    return buf.getvalue()


def _mood_colour(m: object) -> str:
    return MOOD_COLOURS.get(str(m), "#7f7f7f")


def marker_radius_px(size: float, dpi: float = DPI) -> float:
    """Radius in pixels of a scatter marker of area ``size`` (points squared, as ``scatter(s=...)``)."""
    return math.sqrt(size) / 2 * dpi / 72


def _boxes_overlap(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Overlap area of ``box`` (x0, y0, x1, y1) with each row of ``others``."""
    if not len(others):
        return np.zeros(0)
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def text_boxes(fig, texts: Sequence) -> np.ndarray:
    """Display-space boxes (x0, y0, x1, y1) of ``texts``' text alone (no leader line), after a draw."""
    from matplotlib.text import Text

    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in texts]
    return np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes]).reshape(-1, 4)


def overlapping_pairs(boxes: np.ndarray, tolerance: float = 0.5) -> list[tuple[int, int]]:
    """Index pairs of ``boxes`` that overlap by more than ``tolerance`` pixels both ways."""
    pairs = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            if w > tolerance and h > tolerance:
                pairs.append((i, j))
    return pairs


def place_labels(ax, xy: Sequence[tuple[float, float]], labels: Sequence[str], *,
                 radius: float = 0.0, markers: Sequence[tuple[float, float, float]] = (), taken: Sequence = (),
                 gap: float = 1.5, **text_style) -> list:
    """Annotate each point of ``xy`` with its label where it covers nothing.

    Each label tries the spots around its point (:data:`LABEL_ANGLES`, ring
    after ring outwards) and takes the first one that stays inside the axes
    and overlaps no marker and no label placed before it; if there is none,
    the spot with the least overlap. Far spots get a thin leader line.

    Parameters
    ----------
    ax : matplotlib Axes
        Its figure is drawn once first, so that the layout and the axis
        limits are final; draw every point and set the limits before.
    xy : sequence of (x, y)
        Label anchors, in data coordinates.
    labels : sequence of str
    radius : float
        Radius in pixels of the markers at the anchors (see
        :func:`marker_radius_px`): labels start just outside it.
    markers : sequence of (x, y, radius_px)
        Markers no label may cover (data coordinates, radius in pixels),
        the anchors' own markers among them.
    taken : sequence of Text
        Labels placed earlier (by another call) that these must avoid too.
    gap : float
        Pixels between a label and the marker it names.
    **text_style
        Passed to ``ax.annotate`` (``fontsize``, ``color``, ``fontweight``...).

    Returns
    -------
    list of matplotlib.text.Annotation
        The labels, in the order of ``labels``; they take no part in the
        figure's layout, so placing them does not move the axes.
    """
    fig = ax.figure
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    frame = ax.get_window_extent(renderer)
    if len(markers):
        centres = to_px(np.array([(x, y) for x, y, _ in markers], dtype=float))
        radii = np.array([r for _, _, r in markers], dtype=float)
        obstacles = np.column_stack([centres - radii[:, None], centres + radii[:, None]])
    else:
        obstacles = np.zeros((0, 4))
    placed = list(text_boxes(fig, list(taken))) if len(taken) else []
    anchors = to_px(np.asarray(xy, dtype=float).reshape(-1, 2)) if len(xy) else np.zeros((0, 2))
    out = []
    px_to_pt = 72 / fig.dpi
    for (ax_x, ax_y), (dx, dy), label in zip(np.asarray(xy, dtype=float).reshape(-1, 2), anchors, labels):
        probe = ax.text(0, 0, label, **text_style)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width + 2, ext.height + 2
        start = radius + gap
        best, best_cost, best_ring = None, math.inf, 0
        for ring in range(LABEL_RINGS):
            d = start + ring * LABEL_RING_STEP
            for angle in LABEL_ANGLES:
                c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
                c, s = c / max(abs(c), abs(s)), s / max(abs(c), abs(s))  # a point on the unit square
                cx, cy = dx + c * (d + w / 2), dy + s * (d + h / 2)
                box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
                outside = (max(0.0, frame.x0 - box[0]) + max(0.0, box[2] - frame.x1)
                           + max(0.0, frame.y0 - box[1]) + max(0.0, box[3] - frame.y1))
                cost = (float(_boxes_overlap(box, obstacles).sum())
                        + float(_boxes_overlap(box, np.array(placed).reshape(-1, 4)).sum()) + 1000.0 * outside)
                if cost < best_cost:
                    best, best_cost, best_ring = (cx - dx, cy - dy, box), cost, ring
                if cost == 0:
                    break
            if best_cost == 0:
                break
        ox, oy, box = best
        arrow = (dict(arrowstyle="-", lw=0.5, color="#777777", shrinkA=1, shrinkB=2)
                 if best_ring >= LEADER_FROM_RING else None)
        ann = ax.annotate(label, (ax_x, ax_y), xytext=(ox * px_to_pt, oy * px_to_pt), textcoords="offset points",
                          ha="center", va="center", arrowprops=arrow, annotation_clip=False, **text_style)
        ann.set_in_layout(False)
        placed.append(box)
        out.append(ann)
    return out


@_plain
def heatmap(report: PlaylistReport):
    """Cosine similarity of every pair of playlist songs, in playlist order."""
    sim = report.similarity.to_numpy()
    labels = list(report.similarity.index)
    n = len(labels)
    side = float(np.clip(0.34 * n + 3.5, 5.5, 16))
    fig = _figure(side + 1.8, side)
    ax = fig.add_subplot()
    off = sim[~np.eye(n, dtype=bool)]
    vmin = float(np.floor(min(off.min(), 0.9) * 10) / 10) if off.size else 0.0
    im = ax.imshow(sim, cmap="viridis", vmin=vmin, vmax=1.0)
    font = float(np.clip(13 - 0.12 * n, 6, 10))
    ax.set_xticks(range(n), [str(int(p)) for p in report.tracks["position"]], fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("playlist position")
    if n <= 16:
        for i in range(n):
            for j in range(n):
                if i != j:
                    light = (sim[i, j] - vmin) / max(1e-9, 1 - vmin) < 0.6
                    ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=font - 1,
                            color="white" if light else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="cosine similarity of song vectors")
    ax.set_title("Similarity between playlist songs")
    return fig


CATALOGUE_DOT = 28.0
"""Marker area (points squared) of the catalogue's other songs on the map."""
PLAYLIST_DOT = 120.0
SUGGESTED_STAR = 150.0
SONG_DOT = 90.0
"""Marker area of a song on the valence-arousal plane."""
PROTOTYPE_MARK = 60.0


@_plain
def catalogue_scatter(report: PlaylistReport):
    """2-D PCA map of the catalogue, playlist numbered in order, additions starred."""
    m = report.catalogue_map
    if m.empty:
        return None
    fig = _figure(10, 7.5)
    ax = fig.add_subplot()
    cat = m[m["role"] == "catalogue"]
    if len(cat):
        ax.scatter(cat["x"], cat["y"], s=CATALOGUE_DOT, c="#8f8f8f", alpha=0.75, edgecolors="white", linewidths=0.4,
                   zorder=1, label=f"other catalogue songs ({len(cat)})")
    add = m[m["role"] == "suggested"]
    if len(add):
        ax.scatter(add["x"], add["y"], s=SUGGESTED_STAR, marker="*", c="#f2a900", edgecolors="#7a5600",
                   linewidths=0.6, label="suggested additions", zorder=3)
    pl = m[m["role"] == "playlist"].sort_values("position")
    ax.plot(pl["x"], pl["y"], color="#444444", lw=0.8, alpha=0.5, zorder=2, label="playlist order")
    sc = ax.scatter(pl["x"], pl["y"], s=PLAYLIST_DOT, c=pl["position"], cmap="plasma", edgecolors="black",
                    linewidths=0.6, zorder=4, label="playlist songs")
    fig.colorbar(sc, ax=ax, shrink=0.7, label="playlist position")
    var = m.attrs.get("explained_variance")
    if var:
        ax.set_xlabel(f"first principal component ({100 * var[0]:.0f}% of variance)")
        ax.set_ylabel(f"second principal component ({100 * var[1]:.0f}% of variance)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=4, fontsize=9, frameon=False)
    ax.set_title("The playlist on a map of the catalogue (PCA of song vectors)")
    ax.margins(0.08)
    size = {"catalogue": CATALOGUE_DOT, "suggested": SUGGESTED_STAR, "playlist": PLAYLIST_DOT}
    markers = [(x, y, marker_radius_px(size.get(role, CATALOGUE_DOT)))
               for x, y, role in zip(m["x"], m["y"], m["role"])]
    place_labels(ax, list(zip(pl["x"], pl["y"])), [str(int(p)) for p in pl["position"]],
                 radius=marker_radius_px(PLAYLIST_DOT), markers=markers, fontsize=9, fontweight="bold", zorder=5)
    return fig


@_plain
def moods(report: PlaylistReport):
    """Valence-arousal plane (songs numbered, prototypes marked) and the mood mix."""
    from matplotlib.ticker import MaxNLocator

    t = report.tracks
    if "valence" not in t or t["valence"].isna().all():
        return None
    fig = _figure(12, 5.5)
    ax, bx = fig.subplots(1, 2, width_ratios=[1.35, 1])
    ax.axhline(0, color="#cccccc", lw=0.8)
    ax.axvline(0, color="#cccccc", lw=0.8)
    protos = list(PROTOTYPES.items())
    ax.scatter([v for _, (v, _) in protos], [a for _, (_, a) in protos], s=PROTOTYPE_MARK, marker="D",
               facecolors="none", edgecolors=[_mood_colour(m) for m, _ in protos], linewidths=1.2, alpha=0.6,
               zorder=2)
    songs = t.dropna(subset=["valence", "arousal"])
    ax.scatter(songs["valence"], songs["arousal"], s=SONG_DOT, c=[_mood_colour(m) for m in songs["mood"]],
               edgecolors="black", linewidths=0.5, zorder=3)
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("valence (negative ← → positive)")
    ax.set_ylabel("arousal (calm ← → energetic)")
    ax.set_title("Songs on the valence-arousal plane")
    counts = t["mood"].value_counts().reindex(list(MOODS), fill_value=0)
    bars = bx.barh(list(counts.index)[::-1], list(counts.to_numpy())[::-1],
                   color=[_mood_colour(m) for m in list(counts.index)[::-1]])
    bx.bar_label(bars, padding=3)
    bx.set_xlabel("songs")
    bx.set_xlim(0, max(1, counts.max()) * 1.15)
    bx.xaxis.set_major_locator(MaxNLocator(integer=True))
    bx.set_title("Mood mix")
    markers = ([(v, a, marker_radius_px(SONG_DOT)) for v, a in zip(songs["valence"], songs["arousal"])]
               + [(v, a, marker_radius_px(PROTOTYPE_MARK)) for _, (v, a) in protos])
    numbers = place_labels(ax, list(zip(songs["valence"], songs["arousal"])),
                           [str(int(p)) for p in songs["position"]], radius=marker_radius_px(SONG_DOT),
                           markers=markers, fontsize=9, zorder=4)
    names = place_labels(ax, [xy for _, xy in protos], [m for m, _ in protos], radius=marker_radius_px(PROTOTYPE_MARK),
                         markers=markers, taken=numbers, fontsize=12, fontweight="bold", alpha=0.7, zorder=2)
    for (mood, _), name in zip(protos, names):
        name.set_color(_mood_colour(mood))
    return fig


@_plain
def arc(report: PlaylistReport):
    """Tempo and energy (arousal) in playlist order, and the suggested order's energy."""
    t = report.tracks
    if "tempo_bpm" not in t or t["tempo_bpm"].isna().all():
        return None
    n = len(t)
    x = np.arange(1, n + 1)
    ticks = [str(int(p)) for p in t["position"]]
    fig = _figure(float(np.clip(0.45 * n + 4, 8, 16)), 6.5)
    ax, bx = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1])
    ax.plot(x, t["tempo_bpm"], color="#555555", lw=1.2, zorder=1)
    ax.scatter(x, t["tempo_bpm"], s=60, c=[_mood_colour(m) for m in t["mood"]], edgecolors="black", linewidths=0.5,
               zorder=2)
    ax.set_ylabel("tempo (BPM)")
    ax.set_title("Tempo and energy through the playlist (dots coloured by mood)")
    ax.grid(alpha=0.3)
    bx.axhline(0, color="#cccccc", lw=0.8)
    bx.plot(x, t["arousal"], marker="o", color="#d62728", label="energy (arousal), playlist order")
    bx.plot(x, t["valence"], marker="s", color="#1f77b4", alpha=0.7, label="valence, playlist order")
    order = report.order
    if report.order_stats.get("changed") and "arousal" in order:
        bx.plot(x, order["arousal"], ls="--", color="#d62728", alpha=0.45, label="energy, suggested order")
    bx.set_ylim(-1.05, 1.05)
    bx.set_ylabel("score (-1 .. 1)")
    bx.set_xlabel("position in the playlist")
    bx.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    bx.grid(alpha=0.3)
    bx.set_xticks(x, ticks, fontsize=9 if n <= 40 else 7)
    return fig


FIGURES: dict[str, Callable] = {"heatmap": heatmap, "map": catalogue_scatter, "moods": moods, "arc": arc}
"""Figure name (as the page's template knows it) -> the function that draws it."""


def draw_all(report: PlaylistReport) -> dict[str, bytes]:
    """Every figure that applies, by name (``heatmap``, ``map``, ``moods``, ``arc``), as PNG bytes."""
    out: dict[str, bytes] = {}
    for name, draw in FIGURES.items():
        fig = draw(report)
        if fig is not None:
            out[name] = png(fig)
    return out


__all__ = ["draw_all", "FIGURES", "heatmap", "catalogue_scatter", "moods", "arc", "place_labels", "png",
           "text_boxes", "overlapping_pairs", "marker_radius_px"]
