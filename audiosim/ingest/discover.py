"""Find the audio files to ingest: files, folders and lists of paths.

:func:`discover` expands what a user names (files, folders searched
recursively, ``.txt``/``.m3u`` lists of paths) into the sorted, unique
audio files that :mod:`audiosim.ingest.ingest` then ingests one by one.
:func:`read_path_list` reads one list (playlists use it too), and
:func:`walk_audio` is the one folder walk (pruning uses it to tell an
unmounted disk from a folder whose files were deleted).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import unquote, urlparse

from audiosim.signal.audio import is_audio_path
from audiosim.store.catalog import normalise_path

LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list", ".m3u", ".m3u8"})
"""Files with these extensions are read as lists of paths, one per line."""


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files, folders and path lists into sorted, unique audio files.

    Parameters
    ----------
    paths : iterable of str or Path
        Each one is

        - a folder: searched recursively for files with an audio extension
          (:func:`~audiosim.signal.audio.is_audio_path`), skipping hidden files and
          folders;
        - a list file (``.txt``, ``.lst``, ``.list``, ``.m3u``, ``.m3u8``):
          one path per line, blank lines and lines starting with ``#``
          ignored, relative paths taken from the list's folder; entries are
          expanded in turn (folders are searched), and entries that do not
          exist are kept so that ingest records them as failed;
        - any other file: taken as audio whatever its extension.

    Returns
    -------
    list of Path
        Absolute paths, sorted, without duplicates.

    Raises
    ------
    FileNotFoundError
        If a path given directly (not inside a list) does not exist.
    """
    found: set[str] = set()
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(p))
        _expand(p, found, seen_lists=set())
    return [Path(p) for p in sorted(found)]


def _expand(p: Path, found: set[str], seen_lists: set[str]) -> None:
    if p.is_dir():
        found.update(walk_audio(p))
    elif p.suffix.lower() in LIST_EXTENSIONS and p.is_file():
        key = normalise_path(p)
        if key in seen_lists:
            return
        seen_lists.add(key)
        for entry in read_path_list(p):
            _expand(entry, found, seen_lists)
    else:
        found.add(normalise_path(p))


def walk_audio(folder: str | Path) -> Iterator[str]:
    """The audio files under ``folder`` (normalised paths), skipping hidden files and folders.

    Lazy, in ``os.walk`` order: ``next(walk_audio(folder), None)`` asks
    whether a folder holds any audio at all without walking all of it.
    """
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and is_audio_path(name):
                yield normalise_path(os.path.join(root, name))


def read_path_list(list_file: str | Path) -> list[Path]:
    """Read the paths listed in a text or ``.m3u`` file.

    Parameters
    ----------
    list_file : str or Path
        UTF-8 text (a BOM is tolerated), one path per line; blank lines and
        lines starting with ``#`` (comments, ``#EXTM3U``, ``#EXTINF``) are
        skipped; ``file://`` URLs are accepted; relative paths are relative
        to the list's folder.

    Returns
    -------
    list of Path
        In file order.

    Raises
    ------
    ValueError
        If the file is not UTF-8 text (the message names the file).
    """
    list_file = Path(list_file)
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{list_file}: not a UTF-8 list of paths ({e.reason} at byte {e.start})") from e
    base = list_file.parent
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("file://"):
            line = unquote(urlparse(line).path)
        entry = Path(line).expanduser()
        out.append(entry if entry.is_absolute() else base / entry)
    return out
