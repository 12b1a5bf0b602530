"""Reading a playlist and finding its songs in the catalogue.

A playlist is an M3U, text or CSV list of paths or catalogue ids, or a
folder (:func:`read_playlist`). :func:`resolve_playlist` finds every entry
in the catalogue and lists the others as missing, failed, repeated, not in
the catalogue or outside the allowed folders; :mod:`audiosim.report.analysis`
analyses the tracks found.

A playlist is input from whoever wrote it (a deployment parameter, a file
from someone else), so its entries are trusted only as far as the catalogue
and the user's folders go: an entry is a catalogue track (by id or by
path), or a file under one of the *allowed folders*
(:func:`allowed_folders`: the ones the user named, else the playlist's own
folder), symlinks and ``..`` resolved. Only such files are looked at and,
when asked for (``ingest``), ingested; any other path (``/etc/passwd``,
``../../etc/shadow``) is reported and never opened, not even checked for
existence.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from audiosim.ingest.discover import LIST_EXTENSIONS, discover, read_path_list
from audiosim.ingest.ingest import IngestResult, ingest_many
from audiosim.store.catalog import Catalog, normalise_path
from audiosim.store.home import DataHome

STATUSES = ("ok", "ingested", "missing", "failed", "duplicate", "uncatalogued", "outside")
"""An entry's ``status``: ``ok`` and ``ingested`` entries are analysed, the others are listed
(``uncatalogued``: a file under the allowed folders that is not in the catalogue and was not
ingested; ``outside``: a file that is not in the catalogue and not under the allowed folders)."""

NOT_CATALOGUED = "not in the catalogue"
"""How a report says that an entry is no catalogue track (the start of its ``detail``)."""

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


def allowed_folders(playlist: str | Path, allow: Iterable[str | Path] | None = None) -> tuple[Path, ...]:
    """The folders whose files a playlist's entries may name beyond the catalogue, resolved.

    Parameters
    ----------
    playlist : str or Path
        The playlist file or folder.
    allow : iterable of str or Path, optional
        The folders the user allowed (``--allow``). Default (None or empty):
        the playlist's own folder (a folder playlist: that folder).

    Raises
    ------
    ValueError
        If an allowed folder is not an existing folder.
    """
    folders = [Path(a).expanduser() for a in (allow or ())]
    for f in folders:
        if not f.is_dir():
            raise ValueError(f"{f}: not a folder (an allowed folder must exist)")
    if not folders:
        src = Path(playlist).expanduser()
        folders = [src if src.is_dir() else src.parent]
    return tuple(Path(os.path.realpath(f)) for f in folders)


def is_inside(path: str | Path, folders: Sequence[Path]) -> bool:
    """True if ``path``, symlinks and ``..`` resolved, is under one of ``folders``
    (as :func:`allowed_folders` gives them). Nothing is opened."""
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, str(f)]) == str(f) for f in folders)


def uncatalogued(
    items: Sequence[PlaylistItem], home: "str | Path | DataHome | None" = None, allow: Sequence[Path] = (),
) -> list[Path]:
    """Playlist files under the ``allow`` folders that have no ``ok`` catalogue row (what to ingest first).

    The files are given by their resolved path. Files outside the folders are left out unlooked at.
    """
    dh = DataHome.resolve(home)
    out = []
    with Catalog(dh.catalog_path) as cat:
        for it in items:
            if it.path is None:
                continue
            t = _catalogued(cat, it.path)
            if (t is None or not t.ok) and is_inside(it.path, allow) and Path(os.path.realpath(it.path)).is_file():
                out.append(Path(os.path.realpath(it.path)))
    return out


def _catalogued(cat: Catalog, path: str | Path):
    """The catalogue row of ``path`` as written, else of the file it resolves to, else None."""
    t = cat.get_by_path(path)
    if t is None:
        real = os.path.realpath(path)
        if real != normalise_path(path):
            t = cat.get_by_path(real)
    return t


def _failed_detail(t) -> str:
    return f"{t.reason}: {t.detail or ''}".strip()


def resolve_playlist(
    items: Sequence[PlaylistItem],
    home: "str | Path | DataHome | None" = None,
    ingest: bool = True,
    ingest_fn: Callable[[list[Path]], Sequence[IngestResult]] | None = None,
    allow: Sequence[Path] = (),
) -> pd.DataFrame:
    """Find every playlist entry in the catalogue.

    An entry that is no catalogue track is looked at only if it is under
    one of the ``allow`` folders (see the module docstring): then a
    file that is not catalogued yet (or catalogued as failed) is ingested
    when ``ingest`` is true, with ``ingest_fn`` (default
    :func:`audiosim.ingest.ingest.ingest_many`), and listed as
    ``uncatalogued`` otherwise. Other entries are listed as ``outside`` and
    never opened.

    Parameters
    ----------
    allow : sequence of Path
        Resolved folders (:func:`allowed_folders`); default none, so only
        catalogue tracks are used.

    Returns
    -------
    DataFrame
        One row per entry: ``position`` (1-based, playlist order), ``entry``,
        ``id`` (nullable), ``path``, ``status`` (one of :data:`STATUSES`) and
        ``detail``.
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
                               detail="" if t.ok else _failed_detail(t))
            else:
                row["path"] = normalise_path(it.path)  # type: ignore[arg-type]
                t = _catalogued(cat, it.path)  # type: ignore[arg-type]
                inside = is_inside(row["path"], allow)
                if t is not None and t.ok:
                    row.update(id=t.id, path=t.path, status="ok")
                elif t is not None and not (ingest and inside):
                    row.update(id=t.id, path=t.path, status="failed", detail=_failed_detail(t))
                elif not inside:
                    row.update(status="outside", detail=f"{NOT_CATALOGUED}, and outside the allowed folders "
                               f"({', '.join(map(str, allow)) or 'none'}): not opened")
                elif not Path(os.path.realpath(row["path"])).is_file():
                    row["detail"] = "no such file"
                elif ingest:
                    row["path"] = os.path.realpath(row["path"])  # the file that was checked, not a symlink to it
                    to_ingest.append(len(rows))
                else:
                    row.update(status="uncatalogued",
                               detail=f"{NOT_CATALOGUED} (ingest it with `audiosim ingest`, or report with --ingest)")
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


def too_few_message(playlist: str | Path, entries: pd.DataFrame, analysable: pd.DataFrame, most: int = 5) -> str:
    """Why a playlist cannot have a report: fewer than two songs can be analysed.

    Parameters
    ----------
    entries : DataFrame
        Every entry (:func:`resolve_playlist`).
    analysable : DataFrame
        The entries that can be analysed (a subset of ``entries``).
    most : int
        Entries named with their reason; the rest are counted.
    """
    left = entries[~entries["position"].isin(set(analysable["position"]))]
    n, k = len(entries), len(analysable)
    head = f"{playlist}: a report compares songs, so it needs at least two that can be analysed"
    if left.empty:
        return f"{head}; the playlist has {_count(n, 'entry', 'entries')}"
    why = [f"{r.entry} ({_why_not(r)})" for r in left.itertuples()]
    more = [f"and {len(why) - most} more"] if len(why) > most else []
    return (f"{head}, and {k} of its {_count(n, 'entry', 'entries')} can; not analysed: "
            + "; ".join(why[:most] + more))


def _why_not(r) -> str:
    if r.status in ("ok", "ingested"):
        return "no song vector"
    return r.detail or r.status


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def playlist_name(source: str | Path) -> str:
    """A file-system-safe report name from the playlist's file or folder name."""
    stem = Path(source).stem if Path(source).is_file() else Path(source).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "playlist"


__all__ = ["NOT_CATALOGUED", "STATUSES", "PlaylistItem", "allowed_folders", "is_inside", "playlist_name",
           "read_playlist", "resolve_playlist", "too_few_message", "uncatalogued"]
