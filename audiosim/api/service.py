"""The matchers behind the lookup service: loaded once, each on a thread of its own, following new generations.

A :class:`LookupService` holds ``workers`` :class:`~audiosim.match.matcher.Matcher`
objects, each opened and always called in one thread of its own (a matcher
is not shared between threads: its catalogue connection belongs to the
thread that opened it). A request waits for a free matcher, runs on its
thread and names the index generation it was answered from.

New generations: before each call the matcher's manifest file is
``stat``-ed (inode, size, modification time), which costs far less than
reading it; when it changed, :meth:`Matcher.refresh` opens the index the
manifest now describes. A writer (``audiosim index``, the scheduled flow)
publishes by renaming the new manifest over the old one after every shard
it lists is on disk, so a manifest that can be opened is a whole
generation: a call is answered from the old generation or the new one,
never from a mix. A generation that cannot be opened (another model, a
damaged shard) leaves the previous one in service, and ``/health`` says why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from audiosim.api.answers import as_dict
from audiosim.api.errors import BadInput, from_audio_error
from audiosim.index.manifest import MANIFEST_NAME
from audiosim.match.matcher import Matcher
from audiosim.match.monitor import timeline
from audiosim.store.home import DataHome

__all__ = ["LookupService", "ServiceSettings"]

log = logging.getLogger("audiosim.api")

T = TypeVar("T")


@dataclass(frozen=True)
class ServiceSettings:
    """What ``audiosim api`` serves, and how.

    Attributes
    ----------
    home : Path, optional
        The data home (default ``$AUDIOSIM_HOME`` or ``./data``).
    model : Path, optional
        The encoder checkpoint (default: the one the index was built with).
    threshold : float, optional
        A fixed score threshold instead of the calibrated ones.
    max_false_match : float, optional
        Default share of absent-music clips allowed to match (a request may
        ask for another); default: the index's.
    workers : int
        Lookups answered at the same time, each by a matcher of its own.
    torch_threads : int
        Torch threads (for the whole process; one clip is a small batch, so
        one thread per lookup wastes least).
    max_upload_bytes : int
        The largest clip accepted.
    """

    home: Path | None = None
    model: Path | None = None
    threshold: float | None = None
    max_false_match: float | None = None
    workers: int = 1
    torch_threads: int = 1
    max_upload_bytes: int = 50 * 2**20


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when a manifest is published over ``path``: (inode, size, mtime ns); None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class _Lookup:
    """One matcher and the thread every call on it runs in."""

    def __init__(self, settings: ServiceSettings, number: int):
        self.settings = settings
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"audiosim-lookup-{number}")
        self.matcher: Matcher | None = None
        self.manifest_path = DataHome.resolve(settings.home).index_dir / MANIFEST_NAME
        self.seen: tuple[int, int, int] | None = None
        self.refresh_error: str | None = None

    def open(self) -> None:
        """Open the matcher (in this lookup's thread)."""
        s = self.settings
        self.seen = _signature(self.manifest_path)  # before opening: a publish meanwhile is seen at the next call
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.matcher = Matcher(DataHome.resolve(s.home), s.model, threshold=s.threshold,
                                   max_false_match=s.max_false_match, threads=s.torch_threads)
        for w in caught:
            log.warning("%s", w.message)

    def current(self) -> Matcher:
        """The matcher, on the newest generation published that can be opened (in this lookup's thread)."""
        assert self.matcher is not None, "the lookup service was not opened"
        sig = _signature(self.manifest_path)
        if sig is not None and sig != self.seen:
            try:
                with warnings.catch_warnings(record=True):
                    warnings.simplefilter("always")  # said once at start-up
                    self.matcher.refresh()
            except Exception as e:  # keep answering from the generation in service
                message = f"a newly published index could not be opened, still answering from generation " \
                          f"{self.matcher.index.manifest.generation}: {e}"
                if message != self.refresh_error:
                    log.warning("%s", message)
                self.refresh_error = message
            else:
                self.seen = sig
                self.refresh_error = None
        return self.matcher

    def close(self) -> None:
        if self.matcher is not None:
            self.executor.submit(self.matcher.close).result()
            self.matcher = None
        self.executor.shutdown()


class LookupService:
    """Identify clips and monitor recordings with matchers loaded once.

    :meth:`open` before use (it raises what :class:`~audiosim.match.matcher.Matcher`
    raises: no index, the wrong model), :meth:`close` after. The ``async``
    methods run the work on a matcher's thread and return JSON-safe dicts.

    Parameters
    ----------
    settings : ServiceSettings
    """

    def __init__(self, settings: ServiceSettings = ServiceSettings()):
        if settings.workers < 1:
            raise ValueError(f"workers must be at least 1, not {settings.workers}")
        self.settings = settings
        self._lookups = [_Lookup(settings, i) for i in range(settings.workers)]
        self._free: asyncio.Queue[_Lookup] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifetime ------------------------------------------------------------

    def open(self) -> "LookupService":
        """Set the torch threads and open every matcher (blocking); returns self."""
        torch.set_num_threads(self.settings.torch_threads)
        try:
            for lk in self._lookups:
                lk.executor.submit(lk.open).result()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Release the matchers and their threads."""
        for lk in self._lookups:
            lk.close()

    # -- facts the request side needs ------------------------------------------

    @property
    def _matcher(self) -> Matcher:
        m = self._lookups[0].matcher
        assert m is not None, "the lookup service was not opened"
        return m

    @property
    def sample_rate(self) -> int:
        """The model's sample rate: clips are decoded to it."""
        return self._matcher.model.features.sample_rate

    # -- answers -------------------------------------------------------------

    async def identify(self, wave: np.ndarray, name: str, max_false_match: float | None = None) -> dict[str, Any]:
        """The :class:`~audiosim.match.matcher.Match` fields of a clip, and ``generation``.

        Raises
        ------
        BadInput
            422 when the matcher refuses the clip with a reason (``too-short``,
            ``silence``: the clip gave no segment to look up).
        """
        def work(m: Matcher) -> dict[str, Any]:
            try:
                match = m.match(wave, m.model.features.sample_rate, name, max_false_match=max_false_match)
            except Exception as e:  # the matcher's refusals carry a reason; anything else is a bug
                if isinstance(getattr(e, "reason", None), str):
                    raise from_audio_error(e, name) from None
                raise
            d = as_dict(match)
            if d.get("status") == "error":  # a matcher may answer a refusal instead of raising it
                reason, detail = d.get("reason") or "not-audio", d.get("detail")
                raise BadInput(422, reason, f"{name}: {reason}" + (f" ({detail})" if detail else ""), name)
            return {**d, "generation": m.index.manifest.generation}

        return await self._run(work)

    async def monitor(self, wave: np.ndarray, name: str, window: float, hop: float,
                      max_false_match: float | None = None) -> dict[str, Any]:
        """The timeline of a recording: ``rows`` of :class:`~audiosim.match.monitor.TimelineRow` fields."""
        def work(m: Matcher) -> dict[str, Any]:
            policy = m.policy.overridden(max_false_match=max_false_match)
            rate = m.model.features.sample_rate
            rows = timeline(m, wave, rate, window=window, hop=hop, policy=policy)
            return {"recording": name, "recording_seconds": round(len(wave) / rate, 3),
                    "window": window, "hop": hop, "rows": [as_dict(r) for r in rows],
                    "generation": m.index.manifest.generation}

        return await self._run(work)

    async def track(self, track_id: int) -> dict[str, Any] | None:
        """What the catalogue says of a track and whether the index holds it; None when neither knows it."""
        def work(m: Matcher) -> dict[str, Any] | None:
            indexed = track_id in m.tracks.live
            info = m.tracks.info(track_id)
            if not indexed and info.path is None:
                return None
            return {**as_dict(info), "indexed": indexed, "generation": m.index.manifest.generation}

        return await self._run(work)

    async def health(self) -> dict[str, Any]:
        """The index generation in service, its model, its size and thresholds."""
        def work(m: Matcher) -> dict[str, Any]:
            man = m.index.manifest
            stale = [lk.refresh_error for lk in self._lookups if lk.refresh_error]
            return {
                "status": "ok" if not stale else "stale",
                "generation": man.generation,
                "published": man.updated,
                "model_digest": man.model_digest,
                "model_step": man.model_step,
                "tracks": len(m.tracks.live),
                "segments": m.index.n_items,
                "audio_seconds": round(m.index.audio_seconds, 1),
                "calibrated": m.calibration is not None,
                "threshold": m.policy.fixed,
                "max_false_match": m.policy.max_false_match,
                "workers": len(self._lookups),
                "max_upload_bytes": self.settings.max_upload_bytes,
                "problem": stale[0] if stale else None,
            }

        return await self._run(work)

    async def _run(self, work: Callable[[Matcher], T]) -> T:
        """``work(matcher)`` on a free matcher's thread, the matcher brought up to date first."""
        free = self._free_lookups()
        lk = await free.get()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(lk.executor, lambda: work(lk.current()))
        finally:
            free.put_nowait(lk)

    def _free_lookups(self) -> asyncio.Queue[_Lookup]:
        loop = asyncio.get_running_loop()
        if self._free is None or self._loop is not loop:  # a queue belongs to one event loop
            self._free, self._loop = asyncio.Queue(), loop
            for lk in self._lookups:
                self._free.put_nowait(lk)
        return self._free
