"""Where a flow's tasks run: threads here, a local Dask cluster, or a Dask scheduler.

The flows fan tracks out as Prefect tasks (``flows/ingest.py``: one task per
file). Which :class:`~prefect.task_runners.TaskRunner` executes them is
chosen here, from the two command-line options every fanning-out command
takes:

=====================  ==========================================================
``--workers 1``        a thread in this process (the default)
``--workers N``        a :class:`distributed.LocalCluster` of N worker
                       *processes* (one thread each) on this machine, started for
                       the run and stopped after it
``--dask ADDRESS``     an existing Dask scheduler (``tcp://host:8786``), whose
                       workers may be on other machines
=====================  ==========================================================

Without Prefect, :func:`thread_map` is the one thread pool of the library
(ingest, descriptors): ordered results, bounded in-flight work, one torch
thread per worker.

On threads a work unit is one file; on Dask it is a batch of files or
tracks (:meth:`RunnerSpec.batch_size`: about four tasks per worker, so
Prefect's per-task cost stays small), and each task runs torch on one
thread (:func:`one_torch_thread`). Workers write what they compute
(features, embeddings) to the shared data home themselves; only small
result records go back through the scheduler, so the data home must be on storage every worker
can reach at the same path (a shared file system for several machines).
Workers must be able to import ``audiosim`` and ``flows`` (start them from
the project folder, or put it on ``PYTHONPATH``).

Child processes (Prefect's temporary API server, local Dask workers, flow
runs) die with the process that started them, however it ends, SIGKILL
included: :func:`reap_children_at_exit` (which the ``audiosim`` command
calls first) starts a small watchdog that ends them when this process is
gone.

Examples
--------
>>> from audiosim.runners import RunnerSpec
>>> RunnerSpec(workers=1).describe()
'1 thread'
>>> RunnerSpec(workers=4).describe()
'local Dask cluster of 4 worker processes'
>>> RunnerSpec(dask="tcp://10.0.0.5:8786").describe()
'Dask scheduler tcp://10.0.0.5:8786'
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import math
import os
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MEMORY_LIMIT = "4GiB"
"""Memory each local Dask worker may use before Dask restarts it."""

TASKS_PER_WORKER = 4
"""On Dask, a fan-out is cut into about this many tasks per worker thread:
few enough that Prefect's per-task cost (a task run recorded through the API
from the worker) is small next to the work, enough to balance uneven files."""

MAX_BATCH = 32
"""Most work items (files, tracks) in one Dask task."""


@dataclass(frozen=True)
class RunnerSpec:
    """How to run a flow's tasks; see the module docstring.

    Parameters
    ----------
    workers : int
        1: threads in this process; N > 1: a local Dask cluster of N worker
        processes. With ``dask``, the number of tracks kept in flight
        (default: the scheduler's total worker threads).
    dask : str, optional
        Address of an existing Dask scheduler (``tcp://host:port``).
    memory_limit : str
        Per-worker memory limit of a local cluster.
    """

    workers: int = 1
    dask: str | None = None
    memory_limit: str = DEFAULT_MEMORY_LIMIT

    def __post_init__(self) -> None:
        if int(self.workers) < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        object.__setattr__(self, "workers", int(self.workers))
        if self.dask is not None:
            address = self.dask.strip()
            if not address:
                raise ValueError("the Dask scheduler address is empty")
            if "://" not in address:
                address = f"tcp://{address}"
            object.__setattr__(self, "dask", address)

    @property
    def uses_dask(self) -> bool:
        """True for a local cluster or a scheduler address."""
        return self.dask is not None or self.workers > 1

    def describe(self) -> str:
        """A short human description (for logs and artifacts)."""
        if self.dask is not None:
            return f"Dask scheduler {self.dask}"
        if self.workers > 1:
            return f"local Dask cluster of {self.workers} worker processes"
        return "1 thread"

    def task_runner(self) -> Any:
        """A new, not yet started Prefect task runner for this spec.

        Returns
        -------
        prefect.task_runners.TaskRunner
            :class:`~prefect.task_runners.ThreadPoolTaskRunner` or
            :class:`prefect_dask.DaskTaskRunner`.
        """
        if not self.uses_dask:
            from prefect.task_runners import ThreadPoolTaskRunner

            return ThreadPoolTaskRunner(max_workers=self.workers)
        from prefect_dask import DaskTaskRunner

        quiet_dask()
        if self.dask is not None:
            return DaskTaskRunner(address=self.dask)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs=local_cluster_kwargs(self.workers, self.memory_limit),
        )

    def batch_size(self, n_items: int) -> int:
        """Work items (files, tracks) per task for a fan-out of ``n_items``.

        Threads: 1 (a task run in this process costs little, and per-file
        tasks give per-file retries). Dask: about :data:`TASKS_PER_WORKER`
        tasks per worker thread, at most :data:`MAX_BATCH` items each.
        """
        if not self.uses_dask:
            return 1
        return batch_size(n_items, self.in_flight())

    def in_flight(self) -> int:
        """How many tracks to keep submitted at once.

        Local runners: ``workers``. A scheduler address: ``workers`` when it
        was set above 1, else the scheduler's total worker threads (at least 1).
        """
        if self.dask is None or self.workers > 1:
            return self.workers
        return max(1, scheduler_threads(self.dask))


def batch_size(n_items: int, slots: int, tasks_per_slot: int = TASKS_PER_WORKER, most: int = MAX_BATCH) -> int:
    """Items per task so that ``n_items`` make about ``tasks_per_slot`` tasks per slot.

    Examples
    --------
    >>> batch_size(40, 2)
    5
    >>> batch_size(3, 2), batch_size(10_000, 2)
    (1, 32)
    """
    per = math.ceil(max(0, int(n_items)) / max(1, int(slots) * int(tasks_per_slot)))
    return int(min(max(1, per), most))


def batches(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` cut into consecutive lists of ``size`` (the last may be shorter).

    Examples
    --------
    >>> batches([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    size = max(1, int(size))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def bounded(items: Sequence[T], limit: int, submit: Callable[[T], Any]) -> Iterator[tuple[T, Any]]:
    """Submit ``items`` as Prefect tasks keeping at most ``limit`` running; yield each as it finishes.

    Parameters
    ----------
    items : sequence
        Work units (files, batches of tracks, ...).
    limit : int
        Futures in flight at once, so a million items never become a
        million pending futures.
    submit : callable
        ``submit(item)`` returns a :class:`prefect.futures.PrefectFuture`.

    Yields
    ------
    (item, PrefectFuture)
        In completion order; the future is done (its ``result()`` may raise).
    """
    from prefect.futures import as_completed

    todo = iter(items)
    end = object()
    running: dict[Any, T] = {}
    while True:
        while len(running) < max(1, int(limit)):
            item = next(todo, end)
            if item is end:
                break
            running[submit(item)] = item
        if not running:
            return
        done = next(as_completed(list(running)))
        yield running.pop(done), done


@dataclass(frozen=True)
class FanOut:
    """How a flow cuts a fan-out into tasks (see :func:`fan_out`).

    Attributes
    ----------
    batch_size : int
        Work items per task.
    in_flight : int
        Tasks submitted at once.
    one_thread : bool
        Whether tasks limit torch to one thread (False only for a lone
        task on threads, which may use every core).
    """

    batch_size: int
    in_flight: int
    one_thread: bool


def fan_out(n_items: int, workers: int, items_per_task: int | None = None) -> FanOut:
    """The :class:`FanOut` of ``n_items`` over ``workers`` in the running flow.

    On threads (:func:`flow_uses_threads`): one item per task, ``workers``
    tasks at once, torch on one thread unless ``workers`` is 1. On another
    task runner (Dask): about :data:`TASKS_PER_WORKER` tasks per worker
    (:func:`batch_size`), twice ``workers`` tasks in flight so that no
    worker waits, torch on one thread. ``items_per_task`` overrides the
    batch size.
    """
    workers = max(1, int(workers))
    if flow_uses_threads():
        return FanOut(int(items_per_task) if items_per_task else 1, workers, workers > 1)
    size = int(items_per_task) if items_per_task else batch_size(n_items, workers)
    return FanOut(size, 2 * workers, True)


def flow_uses_threads() -> bool:
    """True unless the running flow's task runner is something other than
    threads of this process (e.g. Dask); True outside a flow."""
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None) if ctx is not None else None
    return runner is None or isinstance(runner, ThreadPoolTaskRunner)


_torch_lock = threading.Lock()
_torch_users = 0
_torch_before = 1


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, then restore the previous count.

    Concurrent tasks (threads of one process, or one task per Dask worker
    process) each use a core of their own; letting torch spread every
    log-mel or embedding over all cores as well makes them fight for the
    cores. Safe to nest and to use from several threads at once: the
    count is restored when the last block using it ends.
    """
    global _torch_users, _torch_before
    import torch

    with _torch_lock:
        if _torch_users == 0:
            _torch_before = torch.get_num_threads()
        _torch_users += 1
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _torch_lock:
            _torch_users -= 1
            if _torch_users == 0:
                torch.set_num_threads(_torch_before)


def thread_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, yielding the results in the order of ``items``.

    The one thread pool of the library for work without Prefect (ingest of
    many files, descriptors of many songs). At most twice ``workers`` items
    are submitted at once, so a long iterable is never all pending futures,
    and meanwhile torch runs on one thread (:func:`one_torch_thread`), so
    ``workers`` threads use about ``workers`` cores. With ``workers`` 1 the
    items run one after the other in the calling thread and torch is left
    alone (it may use every core).

    Parameters
    ----------
    fn : callable
        Applied to each item; an exception it raises is raised here when
        its item's turn comes (items not started yet are then cancelled).
    items : iterable
        Consumed lazily.
    workers : int
        Threads (at least 1).

    Yields
    ------
    The results, in order. Consume the iterator to the end (or close it):
    the torch thread count is restored when it finishes.

    Examples
    --------
    >>> list(thread_map(lambda x: x * x, range(5), workers=2))
    [0, 1, 4, 9, 16]
    """
    workers = max(1, int(workers))
    if workers == 1:
        for item in items:
            yield fn(item)
        return
    with one_torch_thread():
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        try:
            pending: collections.deque[concurrent.futures.Future[R]] = collections.deque()
            for item in items:
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
                pending.append(pool.submit(fn, item))
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def quiet_dask(level: str = "warning") -> None:
    """Keep Dask's INFO chatter (workers starting and stopping) out of the output.

    Applies to this process and, through the environment, to the local
    workers it spawns; ``DASK_LOGGING__DISTRIBUTED`` set by the user wins.
    """
    import logging

    level = os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", level)
    logging.getLogger("distributed").setLevel(level.upper())


def local_cluster_kwargs(workers: int, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> dict[str, Any]:
    """Keyword arguments of the :class:`distributed.LocalCluster` for ``workers`` processes.

    One thread per process (decoding and log-mel are CPU-bound; torch is
    limited to one thread per worker so N workers use N cores), no dashboard
    (it needs bokeh and a free port), workers killed and restarted by their
    nanny if they exceed ``memory_limit``.
    """
    return {
        "n_workers": int(workers),
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
        "memory_limit": memory_limit,
        "env": worker_env(),
    }


def worker_env() -> dict[str, str]:
    """Environment for local Dask workers: one math-library thread each."""
    return {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def scheduler_threads(address: str, timeout: float = 10.0) -> int:
    """Total worker threads known to the Dask scheduler at ``address``.

    Raises
    ------
    OSError
        If the scheduler cannot be reached within ``timeout`` seconds.
    """
    import distributed

    try:
        with distributed.Client(address, timeout=timeout, set_as_default=False) as client:
            return int(sum(client.nthreads().values()))
    except (OSError, TimeoutError) as e:
        raise OSError(f"cannot reach the Dask scheduler at {address}: {e}") from e


REAPER_ENV = "AUDIOSIM_REAPER"
"""Environment variable that marks the descendants of a process whose watchdog ends them."""

_REAPER_CODE = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
fd, mark = int(sys.argv[1]), sys.argv[2].encode()
while os.read(fd, 4096):  # returns b"" once the watched process is gone, however it ended
    pass

def marked():
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if mark in env and state != b"Z":
            found.append(int(name))
    return found

for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
    pids = marked()
    if not pids:
        break
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    end = time.monotonic() + grace
    while time.monotonic() < end and marked():
        time.sleep(0.1)
"""

_reaper: tuple[subprocess.Popen[bytes], int] | None = None
_reaper_lock = threading.Lock()


def reap_children_at_exit() -> bool:
    """Make every process this one starts from now on end when this one ends, however it ends.

    Prefect starts a temporary API server as a child process (when no
    ``PREFECT_API_URL`` is set) and stops it from an ``atexit`` hook, which
    never runs when the process is killed (SIGKILL, the out-of-memory
    killer) or crashes in C: the server, and local Dask workers, would run
    on for ever. So this starts a watchdog process (a few lines of Python,
    in a session of its own so that Ctrl-C in the terminal leaves it alone)
    that holds the read end of a pipe whose write end only this process
    has. When this process is gone, for whatever reason, the kernel closes
    that pipe; the watchdog then sends SIGTERM to every process that
    carries this process's mark (:data:`REAPER_ENV` in the environment it
    was started with, which all descendants inherit), and SIGKILL to those
    still running 5 s later. A normal exit (also after SIGTERM or SIGINT,
    which the command line turns into a normal exit) stops the server
    through Prefect's own hook first, and the watchdog finds nothing left.

    Idempotent; Linux only (it reads ``/proc``), elsewhere it does nothing.

    Returns
    -------
    bool
        Whether a watchdog is watching this process.
    """
    global _reaper
    with _reaper_lock:
        if _reaper is not None and _reaper[0].poll() is None:
            return True
        if not sys.platform.startswith("linux") or not os.path.isdir("/proc/self"):
            return False
        mark = f"{REAPER_ENV}={os.getpid()}-{secrets.token_hex(8)}"
        read_end, write_end = os.pipe()  # not inheritable: only the watchdog gets the read end
        env = {k: v for k, v in os.environ.items() if k != REAPER_ENV}
        try:
            watchdog = subprocess.Popen(
                [sys.executable, "-I", "-c", _REAPER_CODE, str(read_end), mark],
                pass_fds=(read_end,), start_new_session=True, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        except OSError:
            os.close(write_end)
            return False
        finally:
            os.close(read_end)
        _reaper = (watchdog, write_end)  # the write end stays open until this process ends
        os.environ[REAPER_ENV] = mark.partition("=")[2]
        return True


@contextlib.contextmanager
def shared_prefect_api() -> Iterator[str]:
    """Make the Prefect API this process uses reachable by processes it starts.

    With ``PREFECT_API_URL`` set there is nothing to do. Without it Prefect
    uses a temporary local server that only this process knows of, and every
    other process (a local Dask worker, a flow run started by ``serve``)
    would start a temporary server of its own. So for the duration of the
    block the running flow's server (else a temporary server started now)
    is put into this process's settings, which travel with every task to
    Dask workers, and into ``PREFECT_API_URL`` of the environment, which
    child processes inherit.

    Yields
    ------
    str
        The API URL.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    if url:
        yield url
        return
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    client = getattr(ctx, "client", None) if ctx is not None else None
    url = str(client.api_url).rstrip("/") if client is not None else None
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        reap_children_at_exit()  # the server must not outlive this process
        server = SubprocessASGIServer()
        server.start()
        url = server.api_url
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


@contextlib.contextmanager
def prefect_api_for_workers(spec: RunnerSpec) -> Iterator[str | None]:
    """:func:`shared_prefect_api` when ``spec`` runs tasks on Dask, else nothing.

    (Workers on other machines cannot reach a temporary server on
    127.0.0.1: with ``--dask``, point ``PREFECT_API_URL`` at a real Prefect
    server.)

    Yields
    ------
    str or None
        The API URL the workers get (None for threads).
    """
    if not spec.uses_dask:
        yield None
        return
    with shared_prefect_api() as url:
        yield url


@contextlib.contextmanager
def shared_cluster(spec: RunnerSpec) -> Iterator[RunnerSpec]:
    """Start ``spec``'s local Dask cluster once for several flows.

    Yields a spec whose task runners all connect to that cluster's scheduler,
    so consecutive stages (ingest, then index) share one set of worker
    processes instead of starting a cluster each. Specs without a local
    cluster (threads, an existing scheduler) are yielded unchanged. Enter it
    inside :func:`prefect_api_for_workers`, so the workers start with the
    shared Prefect API in their environment.
    """
    if spec.dask is not None or spec.workers <= 1:
        yield spec
        return
    from distributed import LocalCluster

    quiet_dask()
    with LocalCluster(**local_cluster_kwargs(spec.workers, spec.memory_limit)) as cluster:
        yield RunnerSpec(workers=spec.workers, dask=cluster.scheduler_address, memory_limit=spec.memory_limit)


def resolve(workers: int | None = None, dask: str | None = None) -> RunnerSpec:
    """A :class:`RunnerSpec` from command-line style values (None: defaults).

    ``AUDIOSIM_DASK_ADDRESS`` supplies ``dask`` when it is not given.
    """
    address = dask if dask is not None else (os.environ.get("AUDIOSIM_DASK_ADDRESS") or None)
    return RunnerSpec(workers=1 if workers is None else workers, dask=address)
