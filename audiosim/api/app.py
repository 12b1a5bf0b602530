"""The lookup service's HTTP application (FastAPI): routes, error answers and the OpenAPI page.

Routes (the OpenAPI page at ``/docs`` describes each, and lets one try it):

- ``POST /identify``: a clip as a multipart upload (field ``clip``), an
  audio file or raw PCM (fields ``encoding``, ``sample_rate``, ``channels``);
  optional ``max_false_match``. Answers the fields of
  :class:`~audiosim.match.matcher.Match` and the ``generation`` of the index
  that answered; a clip that matches nothing is an answer too (``matched``
  false, status 200).
- ``POST /monitor``: a longer recording, the same way, with ``window`` and
  ``hop``; answers its timeline (:class:`~audiosim.match.monitor.TimelineRow` fields).
- ``GET /tracks/{id}``: what the catalogue says of a track, and whether the index holds it.
- ``GET /health``: the generation in service, the model's digest, the number of tracks.

Every refusal is JSON ``{"reason", "detail", "clip"}`` with a 4xx status:
400 a malformed request, 413 an upload over the size limit, 422 a clip that
is not usable audio (with the reason ``audiosim identify`` gives). A failure
of the service itself is a 500 with no traceback in the answer (the server
log has it).
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, AsyncIterator

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from audiosim.api.errors import BadInput
from audiosim.api.service import LookupService
from audiosim.api.uploads import (
    FORM_ALLOWANCE,
    PCM_ENCODINGS,
    BodyTooLarge,
    PcmFormat,
    UploadLimit,
    decode_clip,
    save_upload,
)

__all__ = ["create_app"]

log = logging.getLogger("audiosim.api")

_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request: `{reason: bad-request, detail}`"},
    413: {"description": "Upload over the size limit: `{reason: too-large, detail}`"},
    422: {"description": "Not usable audio: `{reason, detail, clip}` with the reason `audiosim identify` gives "
                         "(`empty`, `not-audio`, `too-short`, `silence`, `corrupt`, `unsupported`, ...)"},
}

ClipField = Annotated[UploadFile, File(description="The clip: an audio file (WAV, FLAC, Ogg, Opus, MP3, AIFF), "
                                                   "or raw PCM when `encoding` and `sample_rate` are given")]
EncodingField = Annotated[str | None, Form(description=f"Raw PCM sample encoding, little-endian: "
                                                       f"{', '.join(PCM_ENCODINGS)}")]
RateField = Annotated[int | None, Form(description="Raw PCM sample rate (Hz)")]
ChannelsField = Annotated[int | None, Form(description="Raw PCM interleaved channels (default 1)")]
RateOfFalseMatches = Annotated[float | None, Form(description="Share of absent-music clips allowed to match, "
                                                              "in [0, 1) (default: the service's)")]


def create_app(service: LookupService) -> FastAPI:
    """The application answering from an opened :class:`LookupService` (which the caller closes)."""
    uploads = tempfile.TemporaryDirectory(prefix="audiosim-api-")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        uploads.cleanup()

    app = FastAPI(
        title="audiosim lookup service",
        summary="Identify clips against the audiosim index, kept loaded.",
        description="Upload a clip to `/identify` (an audio file, or raw PCM with its rate) and get the "
        "catalogue track it comes from, where in the track it starts, its score and the threshold it had to "
        "beat. `/monitor` gives the timeline of a longer recording. Answers name the index generation they "
        "come from; a newly published index is taken up without a restart.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(UploadLimit, max_bytes=service.settings.max_upload_bytes + FORM_ALLOWANCE)
    _add_error_answers(app)

    async def received(clip: UploadFile, pcm: PcmFormat | None, name: str) -> np.ndarray:
        path = await save_upload(clip, Path(uploads.name), service.settings.max_upload_bytes, name)
        try:
            return await run_in_threadpool(decode_clip, path, name, service.sample_rate, pcm)
        finally:
            path.unlink(missing_ok=True)

    @app.post("/identify", summary="Name the catalogue track a clip comes from", responses=_REFUSALS)
    async def identify(clip: ClipField, encoding: EncodingField = None, sample_rate: RateField = None,
                       channels: ChannelsField = None, max_false_match: RateOfFalseMatches = None) -> dict[str, Any]:
        """The fields of `audiosim.match.matcher.Match` (clip, track_id, path, title, offset, score, votes,
        n_segments, matched, threshold, seconds, clip_seconds, speed, ...) and `generation`."""
        name = clip.filename or "<upload>"
        pcm = PcmFormat.from_form(encoding, sample_rate, channels)
        _check_rate(max_false_match)
        wave = await received(clip, pcm, name)
        return await service.identify(wave, name, max_false_match)

    @app.post("/monitor", summary="The timeline of the catalogue tracks heard in a recording", responses=_REFUSALS)
    async def monitor(clip: ClipField, encoding: EncodingField = None, sample_rate: RateField = None,
                      channels: ChannelsField = None, max_false_match: RateOfFalseMatches = None,
                      window: Annotated[float, Form(description="Window length (s)")] = 5.0,
                      hop: Annotated[float, Form(description="Window hop (s)")] = 2.5) -> dict[str, Any]:
        """`rows`: the fields of `audiosim.match.monitor.TimelineRow` (start, end, track_id, title, offset,
        score, windows, path), in recording order; and `generation`."""
        name = clip.filename or "<upload>"
        pcm = PcmFormat.from_form(encoding, sample_rate, channels)
        _check_rate(max_false_match)
        if not 0 < hop <= window:
            raise BadInput(400, "bad-request", f"need 0 < hop <= window, not hop {hop:g} and window {window:g}")
        wave = await received(clip, pcm, name)
        return await service.monitor(wave, name, window, hop, max_false_match)

    @app.get("/tracks/{track_id}", summary="A catalogue track, and whether the index holds it",
             responses={404: {"description": "Neither the catalogue nor the index knows the track"}})
    async def track(track_id: int) -> dict[str, Any]:
        """id, path, title, artist, content_hash, status (the catalogue's), `indexed` and `generation`."""
        answer = await service.track(track_id)
        if answer is None:
            raise BadInput(404, "unknown-track", f"track {track_id} is neither in the catalogue nor in the index")
        return answer

    @app.get("/health", summary="The index generation in service, its model and its size")
    async def health() -> dict[str, Any]:
        """`generation`, `model_digest`, `tracks` (and segments, audio_seconds, calibration, limits)."""
        return await service.health()

    return app


def _check_rate(max_false_match: float | None) -> None:
    if max_false_match is not None and not 0.0 <= max_false_match < 1.0:
        raise BadInput(400, "bad-request", f"max_false_match must be in [0, 1), not {max_false_match:g}")


def _add_error_answers(app: FastAPI) -> None:
    """Every refusal as ``{"reason", "detail", "clip"}``; a failure as a 500 without a traceback."""

    @app.exception_handler(BadInput)
    async def bad_input(_: Request, e: BadInput) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        if isinstance(e, BodyTooLarge):
            return JSONResponse(e.error.body(), status_code=e.error.status)
        reason = {404: "not-found", 405: "method-not-allowed"}.get(e.status_code, "bad-request")
        return JSONResponse({"reason": reason, "detail": str(e.detail), "clip": None}, status_code=e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
                             for err in e.errors())
        return JSONResponse({"reason": "bad-request", "detail": problems, "clip": None}, status_code=400)

    @app.exception_handler(Exception)
    async def failure(request: Request, e: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=e)
        return JSONResponse({"reason": "internal-error", "detail": "the service failed on this request "
                             "(its log says why)", "clip": None}, status_code=500)
