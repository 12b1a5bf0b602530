"""audiosim: audio fingerprinting and music similarity.

``audiosim.identify(clip, sr=None, index=None, model=None)`` names the
catalogue track a clip comes from (see :func:`audiosim.match.matcher.identify`);
it is imported on first use, so ``import audiosim`` stays light.
"""

from typing import Any

__all__ = ["identify", "monitor"]


def __getattr__(name: str) -> Any:
    if name in ("identify", "monitor"):
        from audiosim.match import matcher as match

        return getattr(match, name)
    raise AttributeError(f"module 'audiosim' has no attribute {name!r}")
