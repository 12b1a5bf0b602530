"""What a file's container says about its length, read from its own bytes.

A file cut short (an interrupted copy or download) often still decodes: the
decoder simply stops early. To notice, the decoded length is compared with
what the container promised. libsndfile's own frame count cannot serve for
WAV (it shrinks the count to the bytes present), nor for Ogg (it takes the
count from the last page there is), so those two are read here:

- WAV: the ``data`` chunk's size in the RIFF header (:func:`wav_declared_frames`),
  and whether the RIFF header promises more bytes than the file has
  (:func:`wav_is_cut`);
- Ogg (Vorbis, Opus): no total length is stored, but a complete stream ends
  with a page flagged end-of-stream (:func:`ogg_is_cut`);
- MP3: only a Xing, Info or VBRI header states the length
  (:func:`mp3_states_length`); without one libsndfile's count is an estimate
  from the bit rate, which proves nothing;
- FLAC, AIFF and the rest: libsndfile's count is the header's.
"""

from __future__ import annotations

import struct
from pathlib import Path

_OGG_MAX_PAGE = 27 + 255 + 255 * 255  # header, segment table, body
_OGG_END_OF_STREAM = 0x04


def declared_frames(path: str | Path, format: str, header_frames: int) -> int | None:
    """Frames the container says ``path`` holds, or None when it does not say.

    Parameters
    ----------
    path : str or Path
    format : str
        libsndfile's major format (``WAV``, ``OGG``, ``MP3``, ``FLAC`` ...).
    header_frames : int
        libsndfile's frame count for the file.
    """
    if format == "WAV":
        return wav_declared_frames(path)
    if format == "OGG":
        return None
    if format == "MPEG" or format == "MP3":
        return header_frames if header_frames > 0 and mp3_states_length(path) else None
    return header_frames if header_frames > 0 else None


def _riff_chunks(head: bytes):
    """(id, size, offset of the chunk's data) of each chunk header within ``head``."""
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        yield cid, size, pos + 8
        pos += 8 + size + (size & 1)


def wav_declared_frames(path: str | Path, head_bytes: int = 1 << 16) -> int | None:
    """Frames the ``data`` chunk of a RIFF WAV says it holds, or None (not RIFF, or a streaming size)."""
    with open(path, "rb") as f:
        head = f.read(head_bytes)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    block_align = None
    for cid, size, start in _riff_chunks(head):
        if cid == b"fmt " and start + 14 <= len(head):
            block_align = struct.unpack("<H", head[start + 12 : start + 14])[0]
        elif cid == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):  # writers that never came back to fill it in
                return None
            return size // block_align
    return None


def wav_is_cut(path: str | Path) -> bool:
    """True when a RIFF WAV's header promises more bytes than the file has."""
    with open(path, "rb") as f:
        head = f.read(12)
        f.seek(0, 2)
        size = f.tell()
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    riff_size = struct.unpack("<I", head[4:8])[0]
    return riff_size not in (0, 0xFFFFFFFF) and 8 + riff_size > size


def ogg_is_cut(path: str | Path) -> bool:
    """True when an Ogg file does not end with a complete end-of-stream page.

    Looks at the file's last page only (within its last 64 KiB): a complete
    page must end exactly at the end of the file and carry the
    end-of-stream flag.
    """
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - _OGG_MAX_PAGE))
        tail = f.read()
    pos = tail.rfind(b"OggS")
    while pos >= 0:
        if pos + 27 <= len(tail) and tail[pos + 4] == 0:
            n_segments = tail[pos + 26]
            table = tail[pos + 27 : pos + 27 + n_segments]
            end = pos + 27 + n_segments + sum(table)
            if len(table) == n_segments and end == len(tail):
                return not tail[pos + 5] & _OGG_END_OF_STREAM
        pos = tail.rfind(b"OggS", 0, pos)
    return True


def mp3_states_length(path: str | Path) -> bool:
    """True when an MP3's first frame carries a Xing, Info or VBRI header (a stated frame count)."""
    with open(path, "rb") as f:
        head = f.read(10)
        offset = 0
        if head[:3] == b"ID3" and len(head) == 10:  # skip an ID3v2 tag (size is syncsafe)
            s = head[6:10]
            offset = 10 + (s[0] << 21 | s[1] << 14 | s[2] << 7 | s[3]) + (10 if head[5] & 0x10 else 0)
        f.seek(offset)
        frame = f.read(4096)
    return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))
