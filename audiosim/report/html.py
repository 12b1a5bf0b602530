"""Render a :class:`~audiosim.report.playlist.PlaylistReport` as one self-contained HTML page.

Tables are pandas ``Styler`` output, figures are embedded PNG (base64), and
the page needs nothing from the network.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Callable

import pandas as pd

from audiosim.similarity.mood import AROUSAL_WEIGHTS, PROTOTYPES, VALENCE_WEIGHTS

if TYPE_CHECKING:
    from audiosim.report.playlist import PlaylistReport

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; color: #1d1d1f;
       margin: 0; background: #f6f6f4; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 21px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #e4e4e0; }
h3 { font-size: 16px; margin: 16px 0 6px; }
p { margin: 6px 0 10px; max-width: 920px; }
.meta { color: #666; font-size: 13px; }
.meta code { font-size: 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; margin: 18px 0 8px; }
.card { border: 1px solid #e4e4e0; border-radius: 8px; padding: 12px 14px; background: #fbfbfa; }
.card .big { font-size: 26px; font-weight: 600; }
.card .label { font-size: 13px; color: #555; text-transform: uppercase; letter-spacing: .04em; }
.card p { font-size: 13px; color: #444; margin: 6px 0 0; }
.note { color: #555; font-size: 14px; }
.warn { background: #fff4e5; border-left: 4px solid #f0a030; padding: 8px 12px; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
figure { margin: 8px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; margin-top: 4px; }
table.data { border-collapse: collapse; font-size: 13px; margin: 6px 0 14px; }
table.data th { background: #f0f0ec; text-align: left; padding: 5px 8px; border-bottom: 1px solid #ccc;
                white-space: nowrap; }
table.data td { padding: 4px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
table.data td.num, table.data th.num { text-align: right; font-variant-numeric: tabular-nums; }
.wide { overflow-x: auto; }
ul.methods li { margin-bottom: 6px; }
"""


def _e(x: object) -> str:
    return html.escape("" if x is None or (isinstance(x, float) and x != x) else str(x))


def _img(png: bytes | None, alt: str, caption: str = "") -> str:
    if not png:
        return f'<p class="note">({_e(alt)}: not enough data to draw)</p>'
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">{cap}</figure>'


def _mmss(v: object) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    s = int(round(float(v)))  # type: ignore[arg-type]
    return f"{s // 60}:{s % 60:02d}"


def _num(fmt: str) -> Callable[[object], str]:
    def f(v: object) -> str:
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            return ""
        return fmt.format(v)

    return f


def table(df: pd.DataFrame, formats: dict[str, Callable | str] | None = None,
          row_style: Callable[[pd.Series], str] | None = None, bars: dict[str, tuple[float, float]] | None = None) -> str:
    """A DataFrame as an HTML table via ``Styler`` (no index, numbers right-aligned)."""
    if df.empty:
        return '<p class="note">(none)</p>'
    st = df.style.hide(axis="index").set_table_attributes('class="data"').format(na_rep="", escape="html")
    if formats:
        st = st.format({k: (_num(v) if isinstance(v, str) else v) for k, v in formats.items() if k in df},
                       na_rep="", escape="html")
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if numeric:
        st = st.set_properties(subset=numeric, **{"text-align": "right", "font-variant-numeric": "tabular-nums"})
    if bars:
        for col, (lo, hi) in bars.items():
            if col in df:
                st = st.bar(subset=[col], vmin=lo, vmax=hi, color="#b9d7ee", height=70)
    if row_style is not None:
        st = st.apply(lambda r: [row_style(r)] * len(r), axis=1)
    return st.to_html()


def _cards(r: "PlaylistReport") -> str:
    c = r.cohesion
    s = r.order_stats
    n_out = int(r.tracks["outlier"].sum())
    total = float(r.tracks["duration"].sum())
    pct = f"more cohesive than {c['percentile']:.0f}% of random playlists of this size" if c["n_random"] else "catalogue too small to compare"
    cards = [
        ("cohesion", f"{c['cohesion']:.2f}", pct),
        ("songs analysed", f"{len(r.tracks)} / {len(r.entries)}",
         f"{len(r.missing)} not analysed (listed below)" if len(r.missing) else "every entry found"),
        ("outliers", str(n_out), "songs far from the rest" if n_out else "none"),
        ("consecutive similarity", f"{s['current']['mean_similarity']:.2f} → {s['suggested']['mean_similarity']:.2f}",
         "mean between neighbours: current → suggested order"),
        ("duration", _mmss(total) if total < 3600 else f"{total / 3600:.1f} h", f"{len(r.tracks)} songs"),
    ]
    body = "".join(f'<div class="card"><div class="label">{_e(a)}</div><div class="big">{_e(b)}</div><p>{_e(p)}</p></div>'
                   for a, b, p in cards)
    return f'<section class="cards">{body}</section>'


def _songs_table(r: "PlaylistReport") -> str:
    t = r.tracks.copy()
    cols = {"position": "#", "title": "title", "duration": "length", "tempo_bpm": "tempo (BPM)", "key": "key",
            "loudness_db": "loudness (dBFS)", "centroid_hz": "brightness (Hz)", "mood": "mood", "valence": "valence",
            "arousal": "energy", "mean_similarity": "mean sim.", "closest": "closest song", "closest_similarity": "sim."}
    if "key" in t:
        t["key"] = t["key"].astype(str) + " " + t["mode"].astype(str)
    view = t[[c for c in cols if c in t]].rename(columns=cols)
    outlier = t["outlier"]
    return table(view, {"length": _mmss, "tempo (BPM)": "{:.0f}", "loudness (dBFS)": "{:.1f}",
                        "brightness (Hz)": "{:.0f}", "valence": "{:+.2f}", "energy": "{:+.2f}", "mean sim.": "{:.2f}",
                        "sim.": "{:.2f}"},
                 row_style=lambda row: "background-color: #fdecea" if outlier[row.name] else "")


def _pairs(r: "PlaylistReport", n: int = 6) -> str:
    p = r.pairs.rename(columns={"song": "song", "other": "and", "similarity": "similarity"})
    k = min(n, max(1, len(p) // 2))
    return ('<div class="two"><div><h3>Most similar pairs</h3>' + table(p.head(k), {"similarity": "{:.3f}"}) +
            '</div><div><h3>Least similar pairs</h3>' +
            table(p.tail(k).iloc[::-1], {"similarity": "{:.3f}"}) + "</div></div>")


def _outliers(r: "PlaylistReport") -> str:
    t = r.tracks
    out = t[t["outlier"]]
    if len(t) < 4:
        return '<p class="note">Outliers are looked for in playlists of four songs or more.</p>'
    if out.empty:
        return ("<p>No outliers: every song is more similar to the rest of the playlist than most catalogue "
                "songs are (a song is an outlier when its mean similarity to the others is "
                f"{_e(t.attrs.get('outlier_rule', ''))}).</p>")
    view = out[["position", "title", "mean_similarity", "outlier_why"]].rename(
        columns={"position": "#", "mean_similarity": "mean sim.", "outlier_why": "why"})
    return table(view, {"mean sim.": "{:.2f}"})


def _moods_table(r: "PlaylistReport") -> str:
    t = r.tracks
    if "mood" not in t:
        return ""
    view = t[["position", "title", "mood", "valence", "arousal", "why"]].rename(
        columns={"position": "#", "arousal": "energy", "why": "because"})
    return table(view, {"valence": "{:+.2f}", "energy": "{:+.2f}"})


def _order(r: "PlaylistReport") -> str:
    s = r.order_stats
    if not s.get("changed"):
        intro = "<p>The current order is already the smoothest this method finds.</p>"
    else:
        intro = (f"<p>Keeping the opener, this order raises the mean similarity between consecutive songs from "
                 f"<b>{s['current']['mean_similarity']:.2f}</b> to <b>{s['suggested']['mean_similarity']:.2f}</b> "
                 f"and the weakest transition from {s['current']['lowest_similarity']:.2f} to "
                 f"{s['suggested']['lowest_similarity']:.2f}. The bars show each song's similarity to the one before.</p>")
    view = r.order.rename(columns={"was": "was #", "similarity_to_previous": "similarity to previous",
                                   "tempo_bpm": "tempo (BPM)", "arousal": "energy", "position": "#"})
    return intro + table(view, {"similarity to previous": "{:.2f}", "tempo (BPM)": "{:.0f}", "energy": "{:+.2f}"},
                         bars={"similarity to previous": (0.0, 1.0)})


def _additions(r: "PlaylistReport") -> str:
    a = r.additions
    if a.empty:
        return '<p class="note">No catalogue songs outside the playlist to suggest.</p>'
    view = a.rename(columns={"similarity": "mean sim.", "closest": "closest playlist song",
                             "closest_similarity": "sim.", "tempo_bpm": "tempo (BPM)"})
    return table(view, {"mean sim.": "{:.2f}", "sim.": "{:.2f}", "tempo (BPM)": "{:.0f}"})


def _missing(r: "PlaylistReport") -> str:
    m = r.missing
    if m.empty:
        return ""
    view = m[["position", "entry", "status", "detail"]].rename(columns={"position": "#"})
    return (f'<h2>Not analysed ({len(m)})</h2><p class="warn">These playlist entries are not in the report: '
            f'files that do not exist, could not be decoded, catalogue ids that are unknown, or repeats.</p>'
            + table(view))


def _methods(r: "PlaylistReport") -> str:
    aw = " + ".join(f"{w:.2f}·{k}" for k, w in AROUSAL_WEIGHTS.items())
    vw = " + ".join(f"{w:.2f}·{k}" for k, w in VALENCE_WEIGHTS.items())
    protos = ", ".join(f"{m} ({v:+.2f}, {a:+.2f})" for m, (v, a) in PROTOTYPES.items())
    c = r.cohesion
    base = (f" Two random songs of this catalogue have a mean similarity of {c['pair_baseline']:.2f}."
            if c["n_random"] else "")
    return f"""<ul class="methods">
<li><b>Similarity</b> is the cosine of two song vectors. A song vector is the normalised mean of the embeddings
of its 3-second clips, from an encoder trained so that clips of the same song land close together (model
<code>{_e(r.model_digest)}</code>). 1 means the same sound; values near the catalogue's typical pair are
unrelated songs.{base}</li>
<li><b>Cohesion</b> is the mean similarity over all pairs of playlist songs, compared with
{c['n_random']} random playlists of the same size drawn from the catalogue.</li>
<li><b>Outliers</b> fit the playlist worse than 90% of the catalogue's other songs do: their mean similarity to
the other playlist songs is below the 10th percentile of the same mean for every catalogue song outside the
playlist (with fewer than 20 such songs: more than 2.5 robust standard deviations, and at least 0.15, below the
playlist median). The descriptors on which they differ most from the rest are named.</li>
<li><b>Moods</b>: tempo, loudness, onset rate, brightness and key come from librosa; each is scored against a fixed
reference and combined as energy (arousal) = tanh({aw}) and valence = tanh({vw}). A song's mood is the nearest of
{protos} on the valence-arousal plane.</li>
<li><b>Suggested order</b>: starting from the current opener, a greedy nearest-neighbour chain improved by 2-opt,
minimising (1 − similarity) + 0.5 × |energy jump| between neighbours.</li>
<li><b>Suggested additions</b>: catalogue songs (not already in the playlist) with the highest mean similarity to
the playlist's songs (the same ranking as the cosine to the playlist's mean vector).</li>
<li><b>Map</b>: principal component analysis of all catalogue song vectors, reduced to two dimensions; nearby points
sound alike, but two dimensions keep only part of the structure.</li>
</ul>"""


def render_html(r: "PlaylistReport") -> str:
    """The whole report as one HTML document (figures embedded)."""
    from audiosim.report.playlist import cohesion_sentence

    f = r.figures
    errors = ""
    if r.descriptor_errors:
        errors = ('<p class="warn">Descriptors could not be computed for: ' +
                  "; ".join(f"id {k}: {_e(v)}" for k, v in r.descriptor_errors.items()) + "</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Playlist report: {_e(r.name)}</title>
<style>{CSS}</style></head>
<body><main>
<h1>Playlist report: {_e(r.name)}</h1>
<p class="meta">Playlist <code>{_e(r.source)}</code> · generated {_e(r.created)} · data home <code>{_e(r.home)}</code> ·
similarity model <code>{_e(r.model_digest)}</code></p>
{_cards(r)}
<p>{_e(cohesion_sentence(r.cohesion))}</p>
{errors}
{_missing(r)}
<h2>Songs</h2>
<p class="note">In playlist order. <i>Mean sim.</i> is a song's mean similarity to the other songs; outliers are
shaded. Energy and valence range from −1 to +1.</p>
<div class="wide">{_songs_table(r)}</div>
<h2>Similarity</h2>
{_img(f.get("heatmap"), "similarity heatmap", "Cosine similarity of song vectors; rows and columns in playlist order.")}
{_pairs(r)}
<h2>Outliers</h2>
{_outliers(r)}
<h2>Map of the catalogue</h2>
{_img(f.get("map"), "catalogue map", "Grey: every catalogue song; numbered: the playlist in order; stars: suggested additions.")}
<h2>Moods</h2>
{_img(f.get("moods"), "mood chart", "Faint labels mark each mood's prototype; a song takes the nearest.")}
<div class="wide">{_moods_table(r)}</div>
<h2>Tempo and energy arc</h2>
{_img(f.get("arc"), "tempo and energy arc", "Dashed: the energy curve if the playlist were played in the suggested order.")}
<h2>Suggested order</h2>
{_order(r)}
<h2>Suggested additions</h2>
<p class="note">Catalogue songs with the highest mean similarity to the playlist's songs (<i>mean sim.</i>,
comparable with the same column in the songs table), and the playlist song each is closest to.</p>
<div class="wide">{_additions(r)}</div>
<h2>How this was computed</h2>
{_methods(r)}
</main></body></html>
"""


__all__ = ["render_html", "table"]
