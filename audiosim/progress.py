"""Progress of long steps for people: a bar in a terminal, a timed stage line otherwise.

Library functions with a long loop take ``progress=`` and call it as
``progress(stage, info)`` (the :data:`Callback` protocol): a *counted*
stage reports ``info["done"]`` and ``info["total"]`` as it goes (and may add
``info["postfix"]``, a mapping of running counts such as ``{"failed": 2}``,
shown beside the bar and at the end of the stage line), any other call is an
event (``plan``, ``published``, ...). The command line builds one
:class:`Progress` and passes it down; it draws a tqdm bar per counted stage
when its stream is a terminal, and otherwise writes one line when a stage
ends, with its count and time::

    embedding: 20 tracks in 0:41

so that a log or CI run shows what took the time. Library code that only
has a ``bool`` (``progress=True`` for "show a bar") turns it into a
callback with :func:`as_callback`.

This module imports nothing from audiosim but :mod:`audiosim.format`: every
stage may use it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

from tqdm import tqdm

from audiosim.format import duration

Callback = Callable[[str, dict], None]
"""``progress(stage, info)``; counted stages give ``info["done"]`` and ``info["total"]``
(and optionally ``info["postfix"]``)."""

STAGES: dict[str, tuple[str, str]] = {
    "embed": ("embedding", "tracks"),
    "calibrate-clips": ("calibration", "clips"),
    "background-clips": ("background bank", "excerpts"),
    "song-vectors": ("song vectors", "songs"),
    "descriptors": ("descriptors", "songs"),
    "ingest": ("ingest", "files"),
}
"""Stage -> (what the line calls it, unit); other stages are named as given, counting items."""


def quiet(stage: str, info: dict) -> None:
    """A callback that shows nothing."""


class Progress:
    """The ``progress(stage, info)`` callback of the command line.

    Parameters
    ----------
    stream : text stream, optional
        Where to write (default: ``sys.stderr`` at construction).
    bars : bool, optional
        Draw tqdm bars (default: when ``stream`` is a terminal); else write a
        stage line when each counted stage ends.
    enabled : bool
        False shows nothing (``--quiet``).
    clock : callable
        Seconds, for the stage lines' times (tests pass a fake clock).

    Notes
    -----
    A counted stage starts at the report before its first one (its first
    item was already done when it reported), or when the helper was made;
    it ends when ``done`` reaches ``total``, when another stage is reported,
    or at :meth:`close` (a loop that stopped early, or one that reports
    every few items). Use it as a context manager so the last stage is
    closed even on errors.
    """

    def __init__(self, stream: TextIO | None = None, *, bars: bool | None = None, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = sys.stderr if stream is None else stream
        self.bars = _is_terminal(self.stream) if bars is None else bars
        self.enabled = enabled
        self.clock = clock
        self._stage: str | None = None
        self._bar: Any = None
        self._started = 0.0
        self._done = 0
        self._postfix: dict[str, Any] = {}
        self._last = clock()

    def __call__(self, stage: str, info: dict) -> None:
        if not self.enabled:
            return
        since, self._last = self._last, self.clock()
        done, total = info.get("done"), info.get("total")
        if done is None or total is None:
            self._finish()
            return
        if stage != self._stage:
            self._finish()
            self._start(stage, int(total), since)
        self._done = int(done)
        if info.get("postfix"):
            self._postfix = dict(info["postfix"])
        if self._bar is not None:
            self._bar.total = int(total)
            if self._postfix:
                self._bar.set_postfix(self._postfix, refresh=False)
            self._bar.update(self._done - self._bar.n)
        if self._done >= int(total):
            self._finish()

    def close(self) -> None:
        """End the stage under way (writing its line)."""
        self._finish()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, stage: str, total: int, since: float) -> None:
        self._stage, self._started, self._done, self._postfix = stage, since, 0, {}
        if self.bars:
            name, unit = describe(stage)
            self._bar = tqdm(total=total, desc=name, unit=unit.rstrip("s") or unit, file=self.stream,
                             leave=True, dynamic_ncols=True)

    def _finish(self) -> None:
        if self._stage is None:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            line = stage_line(self._stage, self._done, self.clock() - self._started, self._postfix)
            self.stream.write(line + "\n")
            self.stream.flush()
        self._stage = None


def describe(stage: str) -> tuple[str, str]:
    """(name, unit) of a stage for people (:data:`STAGES`)."""
    return STAGES.get(stage, (stage, "items"))


def stage_line(stage: str, done: int, seconds: float, postfix: "dict[str, Any] | None" = None) -> str:
    """``"embedding: 20 tracks in 0:41"``: what a stage did and how long it took.

    ``postfix`` (running counts of the stage) follows in parentheses:
    ``"ingest: 20 files in 0:12 (failed 2)"``.
    """
    name, unit = describe(stage)
    if done == 1 and unit.endswith("s"):
        unit = unit[:-1]
    line = f"{name}: {done} {unit} in {duration(seconds)}"
    if postfix:
        line += " (" + ", ".join(f"{k} {v}" for k, v in postfix.items()) + ")"
    return line


def as_callback(progress: "bool | Callback | None") -> Callback:
    """The callback for a ``progress`` argument that may still be a bool.

    ``True`` is a :class:`Progress` on stderr (a bar in a terminal, a stage
    line otherwise), ``False``/``None`` shows nothing, a callable is kept.
    """
    if callable(progress):
        return progress
    return Progress() if progress else quiet


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
