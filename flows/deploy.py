"""Serve the deployments of ``prefect.yaml`` locally, with their schedules.

``prefect.yaml`` (at the project root) is the one description of the
deployments: names, entrypoints, default parameters, schedules and
concurrency limits. ``prefect deploy --all`` registers them with a Prefect
server for workers of the ``audiosim`` process pool; this module reads the
same file and runs them with :func:`prefect.serve` in one process, with no
server, pool or worker to set up (``audiosim serve``).

Example
-------
>>> from flows.deploy import read_deployments, serve_deployments
>>> [d.name for d in read_deployments()]  # doctest: +SKIP
['ingest-and-index', 'nightly-compaction', 'weekly-retrain', 'on-demand']
>>> serve_deployments(watch=["~/Music"], home="data")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
WATCH_DEPLOYMENT = "ingest-and-index"
"""The deployment whose ``paths`` parameter is the watched folder."""
INGEST_DEPLOYMENTS = ("ingest-and-index",)
"""Deployments whose ``workers`` / ``dask_address`` parameters pick the task runner."""


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
        """Import the entrypoint's flow object (the project root must be importable)."""
        module, func = self.module_and_function
        return getattr(importlib.import_module(module), func)


def read_deployments(path: str | Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """Read the deployments of a ``prefect.yaml``, with ``{{ $VAR }}`` filled from the environment.

    Placeholders of unset variables are left as they are (as ``prefect
    deploy`` does); :func:`build_deployments` refuses to serve them.
    """
    import yaml
    from prefect.utilities.templating import apply_values

    doc = yaml.safe_load(Path(path).read_text()) or {}
    out = []
    for d in doc.get("deployments") or []:
        d = apply_values(d, {}, remove_notset=False)  # only {{ $VAR }} placeholders resolve
        out.append(DeploymentSpec(
            name=d["name"], entrypoint=d["entrypoint"], parameters=dict(d.get("parameters") or {}),
            schedules=list(d.get("schedules") or ([d["schedule"]] if d.get("schedule") else [])),
            concurrency_limit=d.get("concurrency_limit"), description=d.get("description"),
            tags=list(d.get("tags") or []),
        ))
    return out


def schedule_from_config(cfg: dict[str, Any]) -> Any:
    """A :class:`prefect.schedules.Schedule` from a ``prefect.yaml`` schedule entry
    (``cron`` or ``interval`` in seconds, with optional ``timezone``, ``active``,
    ``slug``, ``parameters``, ``anchor_date``)."""
    from prefect.schedules import Cron, Interval

    common = {k: cfg[k] for k in ("timezone", "slug", "parameters") if cfg.get(k) is not None}
    if "active" in cfg:
        common["active"] = bool(cfg["active"])
    if cfg.get("cron"):
        return Cron(cfg["cron"], day_or=cfg.get("day_or", True), **common)
    if cfg.get("interval"):
        anchor = cfg.get("anchor_date")
        if anchor is not None:
            from prefect.types._datetime import parse_datetime

            common["anchor_date"] = parse_datetime(anchor)
        return Interval(float(cfg["interval"]), **common)
    raise ValueError(f"schedule needs cron or interval: {cfg}")


def concurrency_from_config(cfg: int | dict[str, Any] | None) -> Any:
    """A deployment concurrency limit (int or :class:`ConcurrencyLimitConfig`) from ``prefect.yaml``."""
    if cfg is None or isinstance(cfg, int):
        return cfg
    from prefect.client.schemas.objects import (
        ConcurrencyLimitConfig,
        ConcurrencyLimitStrategy,
    )

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


def build_deployments(
    specs: Sequence[DeploymentSpec] | None = None,
    *,
    watch: Sequence[str | Path] | None = None,
    home: str | Path | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    only: Sequence[str] | None = None,
) -> list[Any]:
    """Turn ``prefect.yaml`` entries into :class:`~prefect.deployments.runner.RunnerDeployment` s to serve.

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
        Serve only these deployment names.

    Raises
    ------
    ValueError
        If a parameter still holds an unresolved ``{{ $VAR }}`` placeholder
        (e.g. no watched folder), or ``only`` names an unknown deployment.
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
        bad = sorted(k for k, v in params.items() if _unresolved(v))
        if bad:
            hint = " (pass --watch DIR or set AUDIOSIM_WATCH)" if "paths" in bad else ""
            raise ValueError(f"deployment {s.name}: parameter(s) {bad} are unresolved placeholders{hint}: "
                             f"{ {k: params[k] for k in bad} }")
        flow = s.load_flow()
        out.append(flow.to_deployment(
            name=s.name,
            schedules=[schedule_from_config(c) for c in s.schedules] or None,
            parameters=params,
            concurrency_limit=concurrency_from_config(s.concurrency_limit),
            description=s.description,
            tags=s.tags or None,
            entrypoint_type=_module_entrypoint(),
        ))
    return out


def _module_entrypoint() -> Any:
    from prefect.deployments.runner import EntrypointType

    return EntrypointType.MODULE_PATH


def serve_deployments(limit: int | None = None, **kwargs: Any) -> None:
    """Build the deployments (see :func:`build_deployments`) and serve them until interrupted.

    Flow runs are started as subprocesses that import the flows by module
    name, so the project root is put on their ``PYTHONPATH``; without
    ``PREFECT_API_URL``, they are pointed at the temporary local server
    this process starts (see :func:`audiosim.runners.shared_prefect_api`).
    """
    from prefect import serve

    from audiosim.runners import shared_prefect_api

    _ensure_importable()
    deployments = build_deployments(**kwargs)
    with shared_prefect_api():  # flow runs (subprocesses) must use the server serve registered with
        serve(*deployments, limit=limit, print_starting_message=True)


def _ensure_importable() -> None:
    import sys

    root = str(PROJECT_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *parts])


if __name__ == "__main__":  # python flows/deploy.py [WATCH_DIR ...]
    import sys

    serve_deployments(watch=sys.argv[1:] or None)
