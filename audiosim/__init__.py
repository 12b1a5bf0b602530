"""audiosim: audio fingerprinting and music similarity.

``audiosim.identify(clip, sr=None, index=None, model=None)`` names the
catalogue track a clip comes from (see :func:`audiosim.match.matcher.identify`),
and ``audiosim.monitor(recording, ...)`` gives the timeline of the tracks
heard in a long recording (see :func:`audiosim.match.monitor.monitor`).
Both raise :class:`audiosim.AudioError` (with a ``reason``) for audio that
cannot be heard. They are imported on first use, so ``import audiosim``
stays light.
"""

from typing import Any

__all__ = ["AudioError", "identify", "monitor"]


def __getattr__(name: str) -> Any:
    if name == "identify":
        from audiosim.match.matcher import identify

        return identify
    if name == "monitor":
        from audiosim.match.monitor import monitor

        return monitor
    if name == "AudioError":
        from audiosim.signal.audio import AudioError

        return AudioError
    raise AttributeError(f"module 'audiosim' has no attribute {name!r}")
