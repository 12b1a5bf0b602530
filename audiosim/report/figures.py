"""The figures of a playlist report, drawn with matplotlib as PNG bytes.

Each function takes a :class:`~audiosim.report.analysis.PlaylistReport` and returns
a PNG; :func:`draw_all` draws them all. Figures are built with
``matplotlib.figure.Figure`` directly (no pyplot state), so drawing is safe
in worker threads. matplotlib is imported when a figure is drawn, not with
this module: it is slow to import and table-only users never need it.
"""

from __future__ import annotations

import io

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


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    return buf.getvalue()


def _mood_colour(m: object) -> str:
    return MOOD_COLOURS.get(str(m), "#7f7f7f")


def heatmap(report: PlaylistReport) -> bytes:
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
    return _png(fig)


def catalogue_scatter(report: PlaylistReport) -> bytes | None:
    """2-D PCA map of the catalogue, playlist numbered in order, additions starred."""
    m = report.catalogue_map
    if m.empty:
        return None
    fig = _figure(10, 7.5)
    ax = fig.add_subplot()
    cat = m[m["role"] == "catalogue"]
    ax.scatter(cat["x"], cat["y"], s=14, c="#b0b0b0", alpha=0.6, linewidths=0, label=f"catalogue ({len(m)} songs)")
    add = m[m["role"] == "suggested"]
    if len(add):
        ax.scatter(add["x"], add["y"], s=150, marker="*", c="#f2a900", edgecolors="#7a5600", linewidths=0.6,
                   label="suggested additions", zorder=3)
    pl = m[m["role"] == "playlist"].sort_values("position")
    ax.plot(pl["x"], pl["y"], color="#444444", lw=0.8, alpha=0.5, zorder=2, label="playlist order")
    sc = ax.scatter(pl["x"], pl["y"], s=120, c=pl["position"], cmap="plasma", edgecolors="black", linewidths=0.6,
                    zorder=4, label="playlist songs")
    for _, r in pl.iterrows():
        ax.annotate(f"{int(r['position'])}", (r["x"], r["y"]), xytext=(5, 5), textcoords="offset points",
                    fontsize=9, fontweight="bold", zorder=5)
    fig.colorbar(sc, ax=ax, shrink=0.7, label="playlist position")
    var = m.attrs.get("explained_variance")
    if var:
        ax.set_xlabel(f"first principal component ({100 * var[0]:.0f}% of variance)")
        ax.set_ylabel(f"second principal component ({100 * var[1]:.0f}% of variance)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=4, fontsize=9, frameon=False)
    ax.set_title("The playlist on a map of the catalogue (PCA of song vectors)")
    return _png(fig)


def moods(report: PlaylistReport) -> bytes | None:
    """Valence-arousal plane (songs numbered) and the mood mix."""
    t = report.tracks
    if "valence" not in t or t["valence"].isna().all():
        return None
    fig = _figure(12, 5.5)
    ax, bx = fig.subplots(1, 2, width_ratios=[1.35, 1])
    ax.axhline(0, color="#cccccc", lw=0.8)
    ax.axvline(0, color="#cccccc", lw=0.8)
    for mood, (v, a) in PROTOTYPES.items():
        ax.text(v, a, mood, ha="center", va="center", fontsize=13, color=_mood_colour(mood), alpha=0.35,
                fontweight="bold")
    ax.scatter(t["valence"], t["arousal"], s=90, c=[_mood_colour(m) for m in t["mood"]], edgecolors="black",
               linewidths=0.5, zorder=3)
    for _, r in t.iterrows():
        ax.annotate(str(int(r["position"])), (r["valence"], r["arousal"]), xytext=(5, 4), textcoords="offset points",
                    fontsize=9, zorder=4)
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
    bx.set_title("Mood mix")
    return _png(fig)


def arc(report: PlaylistReport) -> bytes | None:
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
    return _png(fig)


def draw_all(report: PlaylistReport) -> dict[str, bytes]:
    """Every figure that applies, by name (``heatmap``, ``map``, ``moods``, ``arc``)."""
    import matplotlib

    out: dict[str, bytes] = {}
    with matplotlib.rc_context({"text.parse_math": False}):  # song titles may contain "$"
        for name, fn in (("heatmap", heatmap), ("map", catalogue_scatter), ("moods", moods), ("arc", arc)):
            png = fn(report)
            if png is not None:
                out[name] = png
    return out
