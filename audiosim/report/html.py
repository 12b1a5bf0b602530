"""Render a :class:`~audiosim.report.analysis.PlaylistReport` as one self-contained HTML page.

The page is the Jinja2 template ``templates/report.html.j2``, rendered with
autoescape on: every value from the report (titles, paths, tags, playlist
entries) is escaped by the template engine, never by hand. Tables are pandas
``Styler`` output (cells and headers escaped by pandas, then passed to the
template as markup), figures are embedded PNG (base64), and the page needs
nothing from the network.
"""

from __future__ import annotations

import base64
from typing import Callable, Mapping

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from audiosim.format import duration
from audiosim.report.analysis import PlaylistReport, cohesion_sentence
from audiosim.similarity.mood import AROUSAL_WEIGHTS, PROTOTYPES, VALENCE_WEIGHTS

TEMPLATE = "report.html.j2"

_ENV = Environment(
    loader=PackageLoader("audiosim.report", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters["num"] = format


def _missing_value(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _num(fmt: str) -> Callable[[object], str]:
    def f(v: object) -> str:
        return "" if _missing_value(v) else fmt.format(v)

    return f


def _length(v: object) -> str:
    return "" if _missing_value(v) else duration(float(v))  # type: ignore[arg-type]


BAR_COLOUR = "#b9d7ee"
BAR_SHARE = 60
"""Per cent of a bar cell's width the longest bar takes; the number sits right of it, in the rest."""


def bar_style(v: object, lo: float, hi: float) -> str:
    """CSS for a table cell drawn as a bar from ``lo`` to ``hi`` beside its right-aligned number.

    The bar is the cell's background, limited to the left :data:`BAR_SHARE`
    per cent of the cell, and the cell is wide enough that the number never
    runs into it.
    """
    if _missing_value(v) or hi <= lo:
        return ""
    pct = 100 * min(1.0, max(0.0, (float(v) - lo) / (hi - lo)))  # type: ignore[arg-type]
    return (f"background: linear-gradient(90deg, {BAR_COLOUR} {pct:.1f}%, transparent {pct:.1f}%) "
            f"no-repeat left center / {BAR_SHARE}% 70%; min-width: 11em")


def table(df: pd.DataFrame, formats: dict[str, Callable | str] | None = None,
          row_style: Callable[[pd.Series], str] | None = None,
          bars: dict[str, tuple[float, float]] | None = None) -> Markup:
    """A DataFrame as an HTML table via ``Styler`` (no index, numbers right-aligned).

    Cells and column headers are HTML-escaped by pandas; the result is
    marked safe so that the template does not escape it a second time.
    ``formats`` maps a column to a format string or function, ``row_style``
    gives a row's CSS, and ``bars`` maps a column to the ``(low, high)`` of
    the bars drawn beside its numbers (:func:`bar_style`).
    """
    if df.empty:
        return Markup('<p class="note">(none)</p>')
    st = (df.style.hide(axis="index").set_table_attributes('class="data"')
          .format(na_rep="", escape="html").format_index(escape="html", axis=1))
    if formats:
        st = st.format({k: (_num(v) if isinstance(v, str) else v) for k, v in formats.items() if k in df},
                       na_rep="", escape="html")
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if numeric:
        st = st.set_properties(subset=numeric, **{"text-align": "right", "font-variant-numeric": "tabular-nums"})
    if bars:
        for col, (lo, hi) in bars.items():
            if col in df:
                st = st.map(lambda v, lo=lo, hi=hi: bar_style(v, lo, hi), subset=[col])
    if row_style is not None:
        st = st.apply(lambda r: [row_style(r)] * len(r), axis=1)
    return Markup(st.to_html())


def _cards(r: PlaylistReport) -> list[dict[str, str]]:
    c = r.cohesion
    s = r.order_stats
    n_out = int(r.tracks["outlier"].sum())
    total = float(r.tracks["duration"].sum())
    pct = (f"more cohesive than {c['percentile']:.0f}% of random playlists of this size" if c["n_random"]
           else "catalogue too small to compare")
    cards = [
        ("cohesion", f"{c['cohesion']:.2f}", pct),
        ("songs analysed", f"{len(r.tracks)} / {len(r.entries)}",
         f"{len(r.missing)} not analysed (listed below)" if len(r.missing) else "every entry found"),
        ("outliers", str(n_out), "songs far from the rest" if n_out else "none"),
        ("consecutive similarity", f"{s['current']['mean_similarity']:.2f} → {s['suggested']['mean_similarity']:.2f}",
         "mean between neighbours: current → suggested order"),
        ("duration", duration(total) if total < 3600 else f"{total / 3600:.1f} h", f"{len(r.tracks)} songs"),
    ]
    return [dict(label=a, value=b, note=p) for a, b, p in cards]


def _songs_table(r: PlaylistReport) -> Markup:
    t = r.tracks.copy()
    cols = {"position": "#", "title": "title", "duration": "length", "tempo_bpm": "tempo (BPM)", "key": "key",
            "loudness_db": "loudness (dBFS)", "centroid_hz": "brightness (Hz)", "mood": "mood", "valence": "valence",
            "arousal": "energy", "mean_similarity": "mean sim.", "closest": "closest song", "closest_similarity": "sim."}
    if "key" in t:
        t["key"] = t["key"].astype(str) + " " + t["mode"].astype(str)
    view = t[[c for c in cols if c in t]].rename(columns=cols)
    outlier = t["outlier"]
    return table(view, {"length": _length, "tempo (BPM)": "{:.0f}", "loudness (dBFS)": "{:.1f}",
                        "brightness (Hz)": "{:.0f}", "valence": "{:+.2f}", "energy": "{:+.2f}", "mean sim.": "{:.2f}",
                        "sim.": "{:.2f}"},
                 row_style=lambda row: "background-color: #fdecea" if outlier[row.name] else "")


def _pairs(r: PlaylistReport, n: int = 6) -> dict[str, Markup]:
    p = r.pairs.rename(columns={"other": "and"})
    k = min(n, max(1, len(p) // 2))
    return dict(most=table(p.head(k), {"similarity": "{:.3f}"}),
                least=table(p.tail(k).iloc[::-1], {"similarity": "{:.3f}"}))


def _outliers(r: PlaylistReport) -> Markup | None:
    out = r.tracks[r.tracks["outlier"]]
    if out.empty:
        return None
    view = out[["position", "title", "mean_similarity", "outlier_why"]].rename(
        columns={"position": "#", "mean_similarity": "mean sim.", "outlier_why": "why"})
    return table(view, {"mean sim.": "{:.2f}"})


def _moods_table(r: PlaylistReport) -> Markup | None:
    t = r.tracks
    if "mood" not in t:
        return None
    view = t[["position", "title", "mood", "valence", "arousal", "why"]].rename(
        columns={"position": "#", "arousal": "energy", "why": "because"})
    return table(view, {"valence": "{:+.2f}", "energy": "{:+.2f}"})


def _order_table(r: PlaylistReport) -> Markup:
    view = r.order.rename(columns={"was": "was #", "similarity_to_previous": "similarity to previous",
                                   "tempo_bpm": "tempo (BPM)", "arousal": "energy", "position": "#"})
    return table(view, {"similarity to previous": "{:.2f}", "tempo (BPM)": "{:.0f}", "energy": "{:+.2f}"},
                 bars={"similarity to previous": (0.0, 1.0)})


def _additions(r: PlaylistReport) -> Markup | None:
    a = r.additions
    if a.empty:
        return None
    view = a.rename(columns={"similarity": "mean sim.", "closest": "closest playlist song",
                             "closest_similarity": "sim.", "tempo_bpm": "tempo (BPM)"})
    return table(view, {"mean sim.": "{:.2f}", "sim.": "{:.2f}", "tempo (BPM)": "{:.0f}"})


def _missing(r: PlaylistReport) -> Markup | None:
    m = r.missing
    if m.empty:
        return None
    return table(m[["position", "entry", "status", "detail"]].rename(columns={"position": "#"}))


def _map_caption(r: PlaylistReport) -> str:
    """The map's caption, naming only the kinds of points it shows."""
    roles = set(r.catalogue_map["role"]) if "role" in r.catalogue_map else set()
    parts = ["numbered: the playlist in order"]
    if "catalogue" in roles:
        parts.insert(0, "grey: the catalogue's other songs")
    if "suggested" in roles:
        parts.append("stars: suggested additions")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def _methods() -> dict[str, str]:
    """The mood model's weights and prototypes, worded for the "how this was computed" list."""
    return dict(
        arousal=" + ".join(f"{w:.2f}·{k}" for k, w in AROUSAL_WEIGHTS.items()),
        valence=" + ".join(f"{w:.2f}·{k}" for k, w in VALENCE_WEIGHTS.items()),
        prototypes=", ".join(f"{m} ({v:+.2f}, {a:+.2f})" for m, (v, a) in PROTOTYPES.items()),
    )


def page_context(r: PlaylistReport, figures: Mapping[str, bytes] | None = None) -> dict:
    """The values the template shows: report fields as they are, tables as escaped markup.

    ``figures`` maps a figure name (``heatmap``, ``map``, ``moods``, ``arc``)
    to its PNG; a figure that is missing is shown as "not enough data to draw".
    """
    pngs = figures or {}
    return dict(
        r=r,
        cards=_cards(r),
        cohesion_sentence=cohesion_sentence(r.cohesion),
        missing=_missing(r),
        songs=_songs_table(r),
        pairs=_pairs(r),
        outliers=_outliers(r),
        outlier_rule=r.tracks.attrs.get("outlier_rule", ""),
        moods=_moods_table(r),
        order=_order_table(r),
        additions=_additions(r),
        methods=_methods(),
        map_caption=_map_caption(r),
        images={name: base64.b64encode(png).decode("ascii") for name, png in pngs.items() if png},
    )


def render_html(r: PlaylistReport, figures: Mapping[str, bytes] | None = None) -> str:
    """The whole report as one HTML document, ``figures`` (name -> PNG) embedded.

    See :func:`page_context` for the figure names; :func:`audiosim.report.figures.draw_all`
    draws them.
    """
    return _ENV.get_template(TEMPLATE).render(page_context(r, figures))


__all__ = ["render_html", "page_context", "table"]
