"""The deployments of ``prefect.yaml``, served locally with their schedules (``audiosim serve``).

One definition: ``prefect.yaml`` at the project root describes the four
deployments (names, entrypoints, default parameters, schedules, concurrency
limits, tags, descriptions). Two users:

- ``prefect deploy --all`` registers them with a Prefect server, for workers
  of the ``audiosim`` process pool (it also needs the file's build and pull
  steps and work pool, which is why the file, not Python, is the definition);
- this module reads the same file with ``yaml.safe_load`` and turns each
  entry into ``flow.to_deployment(...)``, passing only public arguments
  (``name``, ``parameters``, ``schedules`` as :class:`prefect.schedules.Cron` /
  :class:`prefect.schedules.Interval`, ``concurrency_limit``, ``description``,
  ``tags``, ``entrypoint_type``), and :func:`serve_deployments` runs them with
  :func:`prefect.serve` in one process, with no server, pool or worker to
  set up.

``{{ $VAR }}`` placeholders of the file are filled from the environment as
``prefect deploy`` fills them (left as they are when VAR is unset). Serving
refuses unresolved placeholders; listing shows them
(:func:`unresolved_parameters`), so ``audiosim serve --list`` works before
anything is set.

Example
-------
>>> from flows.deploy import read_deployments, serve_deployments
>>> [d.name for d in read_deployments()]  # doctest: +SKIP
['ingest-and-index', 'nightly-compaction', 'weekly-retrain', 'on-demand']
>>> serve_deployments(watch=["~/Music"], home="data")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import yaml
from prefect import serve
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
)
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Interval, Schedule
from prefect.types.entrypoint import EntrypointType

from audiosim.runners import shared_prefect_api

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
WATCH_DEPLOYMENT = "ingest-and-index"
"""The deployment whose ``paths`` parameter is the watched folder."""
INGEST_DEPLOYMENTS = ("ingest-and-index",)
"""Deployments whose ``workers`` / ``dask_address`` parameters pick the task runner."""
WATCH_HINT = "pass --watch DIR or set AUDIOSIM_WATCH"

_ENV_PLACEHOLDER = re.compile(r"\{\{\s*\$(\w+)\s*\}\}")


@dataclass(frozen=True)
class DeploymentSpec:
    """One entry of ``prefect.yaml``'s ``deployments`` list (what serving needs)."""

    name: str
    entrypoint: str
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: int | dict[str, Any] | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)

    @property
    def module_and_function(self) -> tuple[str, str]:
        """``flows/pipeline.py:pipeline_flow`` -> ``("flows.pipeline", "pipeline_flow")``."""
        path, _, func = self.entrypoint.partition(":")
        if not path.endswith(".py") or not func:
            raise ValueError(f"deployment {self.name}: entrypoint must be path/to/file.py:function, not {self.entrypoint!r}")
        return path[:-3].replace("/", ".").replace(os.sep, "."), func

    def load_flow(self) -> Any:
        """Import the entrypoint's flow object (``flows`` is an installed package)."""
        module, func = self.module_and_function
        return getattr(importlib.import_module(module), func)

    def to_deployment(self) -> RunnerDeployment:
        """The :class:`~prefect.deployments.runner.RunnerDeployment` to serve.

        Flow runs import the flow by module name (``flows.pipeline``), so
        ``audiosim serve`` works from any folder.
        """
        return self.load_flow().to_deployment(
            name=self.name,
            schedules=[schedule_from_config(c) for c in self.schedules] or None,
            parameters=self.parameters,
            concurrency_limit=concurrency_from_config(self.concurrency_limit),
            description=self.description,
            tags=self.tags or None,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )


def fill_env(value: Any, env: dict[str, str] | None = None) -> Any:
    """``value`` with ``{{ $VAR }}`` placeholders replaced from the environment, at any depth.

    As ``prefect deploy`` does: a placeholder of an unset variable is left
    as it is; a string that is only a placeholder becomes the variable's value.

    Examples
    --------
    >>> fill_env({"paths": ["{{ $W }}"], "n": 1}, {"W": "/music"})
    {'paths': ['/music'], 'n': 1}
    >>> fill_env("{{ $NOT_SET }}", {})
    '{{ $NOT_SET }}'
    """
    env = os.environ if env is None else env
    if isinstance(value, str):
        return _ENV_PLACEHOLDER.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [fill_env(v, env) for v in value]
    if isinstance(value, dict):
        return {k: fill_env(v, env) for k, v in value.items()}
    return value


def read_deployments(path: str | Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """Read the deployments of a ``prefect.yaml``, with ``{{ $VAR }}`` filled from the environment."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    out = []
    for d in doc.get("deployments") or []:
        d = fill_env(d)
        out.append(DeploymentSpec(
            name=d["name"], entrypoint=d["entrypoint"], parameters=dict(d.get("parameters") or {}),
            schedules=list(d.get("schedules") or ([d["schedule"]] if d.get("schedule") else [])),
            concurrency_limit=d.get("concurrency_limit"), description=d.get("description"),
            tags=list(d.get("tags") or []),
        ))
    return out


def schedule_from_config(cfg: dict[str, Any]) -> Schedule:
    """A :class:`prefect.schedules.Schedule` from a ``prefect.yaml`` schedule entry
    (``cron`` or ``interval`` in seconds, with optional ``timezone``, ``active``,
    ``slug``, ``parameters``, ``anchor_date`` as ISO 8601)."""
    common = {k: cfg[k] for k in ("timezone", "slug", "parameters") if cfg.get(k) is not None}
    if "active" in cfg:
        common["active"] = bool(cfg["active"])
    if cfg.get("cron"):
        return Cron(cfg["cron"], day_or=cfg.get("day_or", True), **common)
    if cfg.get("interval"):
        anchor = cfg.get("anchor_date")
        if anchor is not None:
            common["anchor_date"] = anchor if isinstance(anchor, dt.datetime) else dt.datetime.fromisoformat(str(anchor))
        return Interval(float(cfg["interval"]), **common)
    raise ValueError(f"schedule needs cron or interval: {cfg}")


def concurrency_from_config(cfg: int | dict[str, Any] | None) -> int | ConcurrencyLimitConfig | None:
    """A deployment concurrency limit (int or :class:`ConcurrencyLimitConfig`) from ``prefect.yaml``."""
    if cfg is None or isinstance(cfg, int):
        return cfg
    strategy = ConcurrencyLimitStrategy(cfg.get("collision_strategy", "ENQUEUE"))
    return ConcurrencyLimitConfig(limit=int(cfg["limit"]), collision_strategy=strategy)


def _unresolved(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, (list, tuple)):
        return any(_unresolved(v) for v in value)
    if isinstance(value, dict):
        return any(_unresolved(v) for v in value.values())
    return False


def unresolved_parameters(spec: DeploymentSpec) -> list[str]:
    """Names of ``spec``'s parameters that still hold a ``{{ $VAR }}`` placeholder."""
    return sorted(k for k, v in spec.parameters.items() if _unresolved(v))


def configure(
    specs: Sequence[DeploymentSpec] | None = None,
    *,
    watch: Sequence[str | Path] | None = None,
    home: str | Path | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    only: Sequence[str] | None = None,
) -> list[DeploymentSpec]:
    """The deployments to serve, with the command line's overrides applied.

    Parameters
    ----------
    specs : list of DeploymentSpec, optional
        Default: :func:`read_deployments` of the project's ``prefect.yaml``.
    watch : list of str, optional
        Folders for the ``paths`` parameter of ``ingest-and-index``
        (default: the file's, i.e. ``$AUDIOSIM_WATCH``).
    home : str, optional
        Data home for every deployment (made absolute).
    workers, dask_address : optional
        Task runner of the ingest deployments (see :mod:`audiosim.runners`).
    only : list of str, optional
        Only these deployment names.

    Raises
    ------
    ValueError
        If ``only`` names an unknown deployment.
    """
    specs = list(specs if specs is not None else read_deployments())
    if only:
        unknown = set(only) - {s.name for s in specs}
        if unknown:
            raise ValueError(f"unknown deployment(s) {sorted(unknown)}; prefect.yaml has {[s.name for s in specs]}")
        specs = [s for s in specs if s.name in set(only)]
    out = []
    for s in specs:
        params = dict(s.parameters)
        if home is not None and "home" in params:
            params["home"] = str(Path(home).expanduser().resolve())
        if s.name == WATCH_DEPLOYMENT and watch:
            params["paths"] = [str(Path(w).expanduser().resolve()) for w in watch]
        if s.name in INGEST_DEPLOYMENTS:
            if workers is not None:
                params["workers"] = int(workers)
            if dask_address is not None:
                params["dask_address"] = dask_address
        out.append(replace(s, parameters=params))
    return out


def build_deployments(
    specs: Sequence[DeploymentSpec] | None = None, *, allow_unresolved: bool = False, **overrides: Any
) -> list[RunnerDeployment]:
    """The :class:`~prefect.deployments.runner.RunnerDeployment` s to serve (see :func:`configure`).

    Parameters
    ----------
    allow_unresolved : bool
        Build deployments whose parameters hold unresolved placeholders
        too (to list them, never to serve them).
    **overrides
        ``watch``, ``home``, ``workers``, ``dask_address``, ``only``: see :func:`configure`.

    Raises
    ------
    ValueError
        If a parameter still holds an unresolved ``{{ $VAR }}`` placeholder
        (e.g. no watched folder) and ``allow_unresolved`` is false, or
        ``only`` names an unknown deployment.
    """
    configured = configure(specs, **overrides)
    if not allow_unresolved:
        for s in configured:
            bad = unresolved_parameters(s)
            if bad:
                hint = f" ({WATCH_HINT})" if "paths" in bad else ""
                raise ValueError(f"deployment {s.name}: parameter(s) {bad} are unresolved placeholders{hint}: "
                                 f"{ {k: s.parameters[k] for k in bad} }")
    return [s.to_deployment() for s in configured]


def serve_deployments(limit: int | None = None, **overrides: Any) -> None:
    """Build the deployments (see :func:`build_deployments`) and serve them until interrupted.

    Prints what is served, where the runs can be seen (:func:`start_message`)
    and, as each run of a deployment ends, one line with its times and state
    (the flows' hooks, :mod:`flows.run_lines`). Prefect's own starting
    message is not printed: it names a UI address even when the API is
    Prefect's temporary server, which serves no UI.

    Flow runs are started as subprocesses; without ``PREFECT_API_URL``, they
    are pointed at the temporary local server this process starts (see
    :func:`audiosim.runners.shared_prefect_api`).
    """
    from prefect.settings import PREFECT_API_URL

    temporary = not PREFECT_API_URL.value()
    deployments = build_deployments(**overrides)
    with shared_prefect_api() as api_url:  # flow runs (subprocesses) must use the server serve registered with
        ui = None if temporary else served_ui(api_url)
        print(start_message(deployments, api_url, ui, temporary=temporary), flush=True)
        serve(*deployments, limit=limit, print_starting_message=False)


def describe_schedule(schedule: object) -> str:
    """``cron '30 3 * * *'`` or ``every 15 min``: a deployment schedule for people."""
    cron = getattr(schedule, "cron", None)
    if cron:
        return f"cron '{cron}'"
    interval = getattr(schedule, "interval", None)
    return f"every {interval.total_seconds() / 60:g} min" if interval is not None else str(schedule)


def describe_deployment(deployment: RunnerDeployment) -> str:
    """``pipeline/ingest-and-index: every 15 min``: a deployment and when it runs."""
    when = ", ".join(describe_schedule(s.schedule) for s in deployment.schedules or []) or "on demand"
    return f"{deployment.flow_name}/{deployment.name}: {when}"


def ui_url(api_url: str) -> str:
    """The UI address Prefect derives from an API address (``PREFECT_UI_URL`` if set)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return (PREFECT_UI_URL.value() or api_url.removesuffix("/api")).rstrip("/")


def served_ui(api_url: str, timeout: float = 3.0) -> str | None:
    """The UI address of the Prefect server at ``api_url`` if it answers there, else None.

    A ``prefect server start`` serves its UI beside the API unless started
    with ``PREFECT_UI_ENABLED=false``; Prefect's temporary server never does
    (its UI address answers 404), so the address is checked, not assumed.
    """
    import urllib.error
    import urllib.request

    url = ui_url(api_url)
    try:
        with urllib.request.urlopen(url + "/", timeout=timeout) as r:  # noqa: S310 (the user's Prefect server)
            return url if r.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def start_message(deployments: Sequence[RunnerDeployment], api_url: str, ui: str | None, *,
                  temporary: bool) -> str:
    """What ``audiosim serve`` prints when it starts: the deployments, where runs show, how to trigger one.

    Parameters
    ----------
    deployments : list of RunnerDeployment
    api_url : str
        The Prefect API the deployments are registered with.
    ui : str or None
        A UI address known to answer (:func:`served_ui`), else None.
    temporary : bool
        ``api_url`` is the temporary server of this process (it serves no UI
        and ends with the process).
    """
    lines = [f"serving {len(deployments)} deployment(s), until Ctrl-C:"]
    lines += [f"  {describe_deployment(d)}" for d in deployments]
    if temporary:
        lines.append(f"Prefect API: {api_url} (Prefect's temporary server, for this process only; it has no UI)")
    else:
        lines.append(f"Prefect API: {api_url}")
    if ui is not None:
        lines.append(f"runs: in the Prefect UI at {ui}/runs, and one line each here when it ends")
    else:
        lines.append("runs: one line each here when it ends (for a UI, run `prefect server start` and "
                     "set PREFECT_API_URL to its API)")
    env = f"PREFECT_API_URL={api_url} " if temporary else ""
    if deployments:
        d = deployments[0]
        lines.append(f"trigger a run from another terminal: {env}prefect deployment run '{d.flow_name}/{d.name}'")
    return "\n".join(lines)


if __name__ == "__main__":  # python flows/deploy.py [WATCH_DIR ...]
    import sys

    serve_deployments(watch=sys.argv[1:] or None)
