"""One line per deployment run in the terminal that runs it (``audiosim serve``, a worker).

Prefect's own log is turned down to warnings for audiosim (see
:data:`audiosim.cli.main.PREFECT_ENV_DEFAULTS`), so without these hooks the
terminal of ``audiosim serve`` showed nothing about the runs it executed.
The deployments' flows declare :data:`RUN_LINE_HOOKS` (Prefect's flow-run
state hooks); when a run of a deployment ends, its hook prints::

    flow run pipeline 'clever-fox': Completed, 2026-05-01 13:20:01 to 13:21:03 (1:02)

Flows called directly (``audiosim ingest --flow``) and sub-flows print
nothing: they are not deployment runs, and their command reports itself.
The hooks run in the flow run's process, whose output the serving process
or worker passes on to its terminal.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from audiosim.format import duration

_started: dict[Any, dt.datetime] = {}
"""Flow run id -> when this process saw it start running (when the run itself does not say)."""


def run_line(flow_name: str, run_name: str, state_name: str,
             start: dt.datetime | None, end: dt.datetime | None) -> str:
    """``flow run pipeline 'clever-fox': Completed, 2026-05-01 13:20:01 to 13:21:03 (1:02)``.

    Times are local; the end's date is written only when it differs from
    the start's. A missing start or end is left out, with the duration.

    Examples
    --------
    >>> t = dt.datetime(2026, 5, 1, 13, 20, 1)
    >>> run_line("index", "calm-owl", "Failed", t, t + dt.timedelta(seconds=62))
    "flow run index 'calm-owl': Failed, 2026-05-01 13:20:01 to 13:21:03 (1:02)"
    """
    line = f"flow run {flow_name} '{run_name}': {state_name}"
    start, end = _local(start), _local(end)
    if start is not None and end is not None:
        end_text = end.strftime("%H:%M:%S" if end.date() == start.date() else "%Y-%m-%d %H:%M:%S")
        line += f", {start:%Y-%m-%d %H:%M:%S} to {end_text} ({duration((end - start).total_seconds())})"
    elif end is not None:
        line += f", ended {end:%Y-%m-%d %H:%M:%S}"
    return line


def is_deployment_run(flow_run: Any) -> bool:
    """A run of a deployment (not a flow called directly, not a sub-flow)."""
    return getattr(flow_run, "deployment_id", None) is not None and getattr(flow_run, "parent_task_run_id", None) is None


def note_start(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_running`` hook: remember when a run started (its own ``start_time`` may not be set yet)."""
    _started[getattr(flow_run, "id", None)] = _state_time(state) or dt.datetime.now(dt.timezone.utc)


def print_run_line(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_completion`` / ``on_failure`` / ``on_crashed`` hook: print the run's line (:func:`run_line`)."""
    started = _started.pop(getattr(flow_run, "id", None), None)
    if not is_deployment_run(flow_run):
        return
    start = getattr(flow_run, "start_time", None) or started
    end = _state_time(state) or dt.datetime.now(dt.timezone.utc)
    print(run_line(flow.name, flow_run.name, state.name, start, end), file=sys.stdout, flush=True)


RUN_LINE_HOOKS: dict[str, list] = {
    "on_running": [note_start],
    "on_completion": [print_run_line],
    "on_failure": [print_run_line],
    "on_crashed": [print_run_line],
}
"""The hooks the deployments' flows declare: ``@flow(..., **RUN_LINE_HOOKS)``."""


def _state_time(state: Any) -> dt.datetime | None:
    t = getattr(state, "timestamp", None)
    return t if isinstance(t, dt.datetime) else None


def _local(t: dt.datetime | None) -> dt.datetime | None:
    """``t`` in local time (a naive ``t`` is taken as local already)."""
    if t is None:
        return None
    return t.astimezone() if t.tzinfo is not None else t
