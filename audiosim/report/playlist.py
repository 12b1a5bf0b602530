"""Reading a playlist and finding its songs in the catalogue.

A playlist is an M3U, text or CSV list of paths or catalogue ids, or a
folder (:func:`read_playlist`). :func:`resolve_playlist` finds every entry
in the catalogue, ingesting files that are not there yet or listing them as
missing, failed or repeated; :mod:`audiosim.report.analysis` analyses the
tracks found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from audiosim.ingest.discover import LIST_EXTENSIONS, discover, read_path_list
from audiosim.ingest.ingest import IngestResult, ingest_many
from audiosim.store.catalog import Catalog, normalise_path
from audiosim.store.home import DataHome

CSV_ID_COLUMNS = ("id", "track_id", "track")
CSV_PATH_COLUMNS = ("path", "file", "filename", "location")


@dataclass(frozen=True)
class PlaylistItem:
    """One line of a playlist: a path or a catalogue id."""

    entry: str
    """As written in the playlist."""
    path: Path | None = None
    track_id: int | None = None


def read_playlist(source: str | Path) -> list[PlaylistItem]:
    """Read the entries of a playlist, in order.

    Parameters
    ----------
    source : str or Path
        - a folder: its audio files (recursively), sorted by path;
        - ``.m3u``/``.m3u8``/``.txt``/``.lst``/``.list``: one entry per line
          (``#`` lines skipped, relative paths from the list's folder); a
          line that is a number and not an existing file is a catalogue id;
        - ``.csv``: the column named ``path``/``file``/``filename``/
          ``location`` or ``id``/``track_id``/``track`` (else the first),
          numbers read as catalogue ids.

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    ValueError
        If the file is not a readable playlist.
    """
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such playlist file or folder")
    if src.is_dir():
        return [PlaylistItem(str(p), path=p) for p in discover([src])]
    if src.suffix.lower() == ".csv":
        return _read_csv(src)
    if src.suffix.lower() in LIST_EXTENSIONS:
        items = []
        for p in read_path_list(src):
            if p.parent == src.parent and p.name.isdigit() and not p.exists():
                items.append(PlaylistItem(p.name, track_id=int(p.name)))
            else:
                items.append(PlaylistItem(str(p), path=p))
        return items
    raise ValueError(f"{src}: not a playlist (expected a folder, .m3u, .m3u8, .txt, .lst, .list or .csv)")


def _read_csv(src: Path) -> list[PlaylistItem]:
    try:
        df = pd.read_csv(src, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"{src}: unreadable CSV playlist ({e})") from e
    if df.columns.empty:
        raise ValueError(f"{src}: empty CSV playlist")
    lower = {c.lower().strip(): c for c in df.columns}
    col = next((lower[c] for c in (*CSV_PATH_COLUMNS, *CSV_ID_COLUMNS) if c in lower), df.columns[0])
    items = []
    for value in df[col].astype(str).str.strip():
        if not value:
            continue
        p = Path(value).expanduser()
        p = p if p.is_absolute() else src.parent / p
        if value.isdigit() and not p.exists():
            items.append(PlaylistItem(value, track_id=int(value)))
        else:
            items.append(PlaylistItem(value, path=p))
    return items


def uncatalogued(items: Sequence[PlaylistItem], home: "str | Path | DataHome | None" = None) -> list[Path]:
    """Existing playlist files that have no ``ok`` catalogue row (what to ingest first)."""
    dh = DataHome.resolve(home)
    out = []
    with Catalog(dh.catalog_path) as cat:
        for it in items:
            if it.path is not None and Path(it.path).is_file():
                t = cat.get_by_path(it.path)
                if t is None or not t.ok:
                    out.append(Path(normalise_path(it.path)))
    return out


def resolve_playlist(
    items: Sequence[PlaylistItem],
    home: "str | Path | DataHome | None" = None,
    ingest: bool = True,
    ingest_fn: Callable[[list[Path]], Sequence[IngestResult]] | None = None,
) -> pd.DataFrame:
    """Find every playlist entry in the catalogue.

    Files not catalogued yet (or catalogued as failed) are ingested first
    when ``ingest`` is true, with ``ingest_fn`` (default
    :func:`audiosim.ingest.ingest.ingest_many`).

    Returns
    -------
    DataFrame
        One row per entry: ``position`` (1-based, playlist order), ``entry``,
        ``id`` (nullable), ``path``, ``status`` (``ok``, ``ingested``,
        ``missing``, ``failed`` or ``duplicate``) and ``detail``.
    """
    dh = DataHome.resolve(home)
    rows: list[dict] = []
    to_ingest: list[int] = []
    with Catalog(dh.catalog_path) as cat:
        for pos, it in enumerate(items, start=1):
            row = dict(position=pos, entry=it.entry, id=None, path=None, status="missing", detail="")
            if it.track_id is not None:
                t = cat.get(it.track_id)
                if t is None:
                    row["detail"] = f"no track with id {it.track_id} in the catalogue"
                else:
                    row.update(id=t.id, path=t.path, status="ok" if t.ok else "failed",
                               detail="" if t.ok else f"{t.reason}: {t.detail or ''}".strip())
            else:
                path = normalise_path(it.path)  # type: ignore[arg-type]
                row["path"] = path
                t = cat.get_by_path(path)
                if t is not None and t.ok:
                    row.update(id=t.id, status="ok")
                elif not Path(path).is_file():
                    row["detail"] = "no such file"
                elif ingest:
                    to_ingest.append(len(rows))
                else:
                    row["detail"] = "not in the catalogue (run `audiosim ingest` or allow ingesting)"
                    if t is not None:
                        row.update(id=t.id, status="failed", detail=f"{t.reason}: {t.detail or ''}".strip())
            rows.append(row)
    if to_ingest:
        paths = [Path(rows[i]["path"]) for i in to_ingest]
        results = ingest_many(paths, dh) if ingest_fn is None else ingest_fn(paths)
        by_path = {r.path: r for r in results}
        for i in to_ingest:
            r = by_path.get(rows[i]["path"])
            if r is None:
                rows[i]["detail"] = "ingest gave no result"
            elif r.status == "failed":
                rows[i].update(id=r.track_id, status="failed", detail=f"{r.reason}: {r.detail or ''}".strip())
            else:
                rows[i].update(id=r.track_id, status="ingested", detail=f"ingested now ({r.status})")
    seen: dict[int, int] = {}
    for row in rows:
        if row["status"] in ("ok", "ingested") and row["id"] is not None:
            if row["id"] in seen:
                row.update(status="duplicate", detail=f"same track as position {seen[row['id']]}")
            else:
                seen[row["id"]] = row["position"]
    df = pd.DataFrame(rows, columns=["position", "entry", "id", "path", "status", "detail"])
    df["id"] = df["id"].astype("Int64")
    return df


def playlist_name(source: str | Path) -> str:
    """A file-system-safe report name from the playlist's file or folder name."""
    stem = Path(source).stem if Path(source).is_file() else Path(source).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "playlist"


__all__ = ["PlaylistItem", "read_playlist", "resolve_playlist", "uncatalogued", "playlist_name"]
