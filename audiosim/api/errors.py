"""A request the service refuses: an HTTP 4xx with a reason, never a 500 or a traceback."""

from __future__ import annotations

from typing import Any

from audiosim.signal.audio import AudioError

__all__ = ["BadInput", "from_audio_error"]


class BadInput(Exception):
    """A request refused because of what it sent.

    Attributes
    ----------
    status : int
        The HTTP status: 400 for a malformed request, 413 for an upload over
        the size limit, 422 for a clip that is not usable audio.
    reason : str
        Short and machine-friendly; for audio the reasons of
        :class:`~audiosim.signal.audio.AudioError` (``empty``, ``not-audio``,
        ``too-short``, ``silence``, ...), which the CLI reports too.
    detail : str
        For people: names the clip and says what is wrong.
    clip : str or None
        The clip's name (its upload file name).
    """

    def __init__(self, status: int, reason: str, detail: str, clip: str | None = None):
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.clip = clip

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``{"reason", "detail", "clip"}``."""
        return {"reason": self.reason, "detail": self.detail, "clip": self.clip}


def from_audio_error(e: Exception, name: str, temp_path: str | None = None) -> BadInput:
    """A 422 for audio that could not be used, named after the upload rather than its temporary file.

    Parameters
    ----------
    e : AudioError or an error with a ``reason``
        What decoding or the matcher raised.
    name : str
        The clip's name for the answer.
    temp_path : str, optional
        The temporary file the upload was saved to, replaced by ``name`` in the detail.
    """
    reason = getattr(e, "reason", None) or "not-audio"
    detail = getattr(e, "detail", None) if isinstance(e, AudioError) or hasattr(e, "detail") else str(e)
    if temp_path and detail:
        detail = detail.replace(temp_path, name)
    return BadInput(422, str(reason), f"{name}: {reason}" + (f" ({detail})" if detail else ""), name)
