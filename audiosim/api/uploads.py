"""What a client sends, turned into samples at the model's rate, or refused with a reason.

A clip arrives as a multipart upload: an audio file in any format
:mod:`audiosim.signal.audio` decodes, or raw little-endian PCM (float32 or
int16, interleaved channels) with its sample rate. Raw PCM is written as a
WAV file first, so both kinds go through the one decoder and are refused
for the same reasons, in the same words, as ``audiosim identify`` refuses
a file: ``empty``, ``not-audio``, ``silence``, ``corrupt``,
``unsupported``... (The matcher refuses a clip too short to give one
segment, ``too-short``, or without an audible one, ``silence``.)

Uploads are bounded twice: :class:`UploadLimit` refuses a request body over
the limit before it is parsed (by its ``Content-Length``, or as it arrives),
and :func:`save_upload` counts the file's own bytes.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import numpy as np
import soundfile as sf
from fastapi import UploadFile
from starlette.exceptions import HTTPException

from audiosim.api.errors import BadInput, from_audio_error
from audiosim.match.clips import ANY_LENGTH
from audiosim.signal import audio
from audiosim.signal.audio import (
    AUDIO_EXTENSIONS,
    MAX_CHANNELS,
    MAX_RATE,
    MIN_RATE,
    AudioError,
)

__all__ = ["FORM_ALLOWANCE", "PCM_ENCODINGS", "BodyTooLarge", "PcmFormat", "UploadLimit", "decode_clip", "save_upload",
           "too_large"]

PCM_ENCODINGS: dict[str, np.dtype] = {"float32": np.dtype("<f4"), "int16": np.dtype("<i2")}
"""Raw PCM sample encodings accepted (little-endian), by the name a request gives."""

FORM_ALLOWANCE = 1 << 20
"""Bytes a request body may hold beyond the upload limit: the multipart envelope and form fields."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PcmFormat:
    """How to read a raw PCM upload.

    Attributes
    ----------
    encoding : str
        A key of :data:`PCM_ENCODINGS`.
    sample_rate : int
        Samples per second per channel.
    channels : int
        Interleaved channels.
    """

    encoding: str
    sample_rate: int
    channels: int = 1

    @classmethod
    def from_form(cls, encoding: str | None, sample_rate: int | None, channels: int | None) -> "PcmFormat | None":
        """The PCM format a request's form fields give, None for an audio file.

        Raises
        ------
        BadInput
            400 when only some of the fields are given or they make no sense.
        """
        if encoding is None and sample_rate is None:
            if channels not in (None, 1):
                raise BadInput(400, "bad-request", "channels is for raw PCM: give encoding and sample_rate too")
            return None
        if encoding is None or sample_rate is None:
            raise BadInput(400, "bad-request", "raw PCM needs both encoding and sample_rate")
        if encoding not in PCM_ENCODINGS:
            raise BadInput(400, "bad-request", f"encoding must be one of {sorted(PCM_ENCODINGS)}, not {encoding!r}")
        return cls(encoding, int(sample_rate), 1 if channels is None else int(channels))

    def samples(self, data: bytes, name: str) -> np.ndarray:
        """The PCM bytes as float32 ``(frames, channels)`` in [-1, 1].

        Raises
        ------
        BadInput
            422 ``unsupported`` for a rate or channel count no audio file
            could have, ``empty`` for no samples, ``not-audio`` for a byte
            count that is not a whole number of frames.
        """
        if not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise BadInput(422, "unsupported", f"{name}: unsupported (sample rate {self.sample_rate} Hz)", name)
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise BadInput(422, "unsupported", f"{name}: unsupported ({self.channels} channels)", name)
        dtype = PCM_ENCODINGS[self.encoding]
        frame = dtype.itemsize * self.channels
        if not data:
            raise BadInput(422, "empty", f"{name}: empty (no audio samples)", name)
        if len(data) % frame:
            raise BadInput(422, "not-audio", f"{name}: not-audio ({len(data)} bytes is not a whole number of "
                           f"{self.channels}-channel {self.encoding} frames)", name)
        x = np.frombuffer(data, dtype=dtype).reshape(-1, self.channels)
        if dtype.kind == "i":
            return x.astype(np.float32) / np.float32(-np.iinfo(dtype).min)
        return x.astype(np.float32)


async def save_upload(upload: UploadFile, folder: Path, max_bytes: int, name: str) -> Path:
    """Copy an upload into a new file of ``folder``, refusing it past ``max_bytes``.

    The file keeps the upload's extension when it is an audio one (some
    formats are recognised by it). The caller removes the file.

    Raises
    ------
    BadInput
        413 ``too-large`` past ``max_bytes`` (nothing is left behind).
    """
    suffix = Path(upload.filename or "").suffix.lower()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="clip-", suffix=suffix if suffix in AUDIO_EXTENSIONS else ".upload")
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            while chunk := await upload.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise too_large(max_bytes, name)
                f.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def too_large(max_bytes: int, name: str | None = None) -> BadInput:
    """The 413 answer for an upload over ``max_bytes``."""
    prefix = f"{name}: " if name else ""
    return BadInput(413, "too-large", f"{prefix}too-large (the limit is {max_bytes / 2**20:g} MB; "
                    "see `audiosim api --max-upload-mb`)", name)


def decode_clip(path: Path, name: str, sample_rate: int, pcm: PcmFormat | None = None) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` of a saved upload.

    Blocking (decoding and resampling): run it off the event loop.

    Parameters
    ----------
    path : Path
        The saved upload; raw PCM is rewritten as ``<path>.wav`` (removed here).
    name : str
        The clip's name in messages.
    sample_rate : int
        The model's rate.
    pcm : PcmFormat, optional
        How to read a raw PCM upload (None: an audio file).

    Raises
    ------
    BadInput
        422 with the decoder's reason (see :class:`~audiosim.signal.audio.AudioError`).
    """
    source = path
    if pcm is not None:
        source = path.with_name(path.name + ".wav")
        sf.write(source, pcm.samples(path.read_bytes(), name), pcm.sample_rate, subtype="FLOAT", format="WAV")
    try:
        wave = audio.load(source, sample_rate, ANY_LENGTH)
    except AudioError as e:
        raise from_audio_error(e, name, str(source)) from None
    finally:
        if source != path:
            source.unlink(missing_ok=True)
    return wave


ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class UploadLimit:
    """ASGI middleware refusing request bodies over a size with a 413, before they are parsed.

    A declared ``Content-Length`` over the limit is refused before the body
    is parsed; a body that grows past it while it arrives (chunked) is
    refused there. Either way nothing past the limit is kept.

    Parameters
    ----------
    app : ASGI application
    max_bytes : int
        The largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._discard(receive, True)
            await _send_json(send, too_large(self.max_bytes - FORM_ALLOWANCE))
            return
        received = 0
        started = False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    await self._discard(receive, message.get("more_body", False))
                    raise BodyTooLarge(too_large(self.max_bytes - FORM_ALLOWANCE))
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as e:
            if not started:
                await _send_json(send, e.error)

    async def _discard(self, receive: Callable[[], Awaitable[dict]], more: bool) -> None:
        """Read and drop the rest of a refused body, up to ``max_bytes`` more.

        A client still sending when the server answers and closes may see
        the connection reset instead of the 413; reading a bounded amount
        more lets the answer reach it (a longer body is cut off anyway).
        """
        budget = self.max_bytes
        while more and budget > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            budget -= len(message.get("body", b""))
            more = message.get("more_body", False)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body passes the limit.

    An HTTP exception, so that FastAPI's body parsing passes it on as it is
    (any other error there becomes a 400) to the application's handler.
    """

    def __init__(self, error: BadInput):
        super().__init__(error.status, error.detail)
        self.error = error


async def _send_json(send: Callable[[dict], Awaitable[None]], error: BadInput) -> None:
    body = json.dumps(error.body()).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
