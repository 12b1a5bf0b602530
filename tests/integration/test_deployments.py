"""The deployments of prefect.yaml, against a REAL Prefect server.

``test_deploy_and_run_on_a_real_server`` starts ``prefect server start`` on a
free port of 127.0.0.1 (its own ``PREFECT_HOME`` in a temporary folder),
creates the ``audiosim`` process work pool, runs ``prefect --no-prompt deploy
--all`` from the project root, triggers the ``ingest-and-index`` deployment
on three synthetic songs into a temporary data home, runs a worker until the
flow run finishes, then checks the catalogue, the index and the artifacts
through the API. Everything started is stopped at the end, also on failure.

It is skipped only when the server cannot start for an environmental reason
(no free port, nothing can listen), with the reason. Startup waits up to
``$AUDIOSIM_TEST_SERVER_TIMEOUT`` seconds (default 600, generous because the
server's database migrations are slow on a busy machine).

The other tests check ``prefect.yaml`` and what ``audiosim serve`` builds from
it, without a server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = ROOT / "prefect.yaml"
BIN = Path(sys.executable).parent
POOL = "audiosim"
EXPECTED = {
    "ingest-and-index": ("flows/pipeline.py:pipeline_flow", "pipeline"),
    "nightly-compaction": ("flows/index.py:index_flow", "index"),
    "weekly-retrain": ("flows/pipeline.py:retrain_flow", "retrain"),
    "on-demand": ("flows/report.py:report_flow", "playlist-report"),
}
SERVER_TIMEOUT = float(os.environ.get("AUDIOSIM_TEST_SERVER_TIMEOUT", "600"))
ENVIRONMENTAL = ("address already in use", "cannot assign requested address", "permission denied",
                 "no space left", "read-only file system", "operation not permitted")


# --------------------------------------------------------------------------
# prefect.yaml and serve, no server
# --------------------------------------------------------------------------


def _yaml() -> dict:
    return yaml.safe_load(PREFECT_YAML.read_text())


def test_prefect_yaml_declares_the_deployments() -> None:
    doc = _yaml()
    deps = {d["name"]: d for d in doc["deployments"]}
    assert set(deps) == set(EXPECTED)
    for name, (entrypoint, _) in EXPECTED.items():
        d = deps[name]
        assert d["entrypoint"] == entrypoint
        assert d["work_pool"]["name"] == POOL
        path, func = entrypoint.split(":")
        assert (ROOT / path).is_file()
    assert doc["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ project.stdout }}"}}]
    assert deps["ingest-and-index"]["schedules"][0]["interval"] == 900
    assert deps["ingest-and-index"]["concurrency_limit"]["collision_strategy"] == "CANCEL_NEW"
    assert deps["nightly-compaction"]["parameters"]["compact"] is True
    assert "cron" in deps["nightly-compaction"]["schedules"][0]
    assert "cron" in deps["weekly-retrain"]["schedules"][0]
    assert not deps["on-demand"].get("schedules")


def test_prefect_yaml_parameters_match_the_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from flows.deploy import read_deployments

    monkeypatch.setenv("AUDIOSIM_WATCH", "/music")
    for spec in read_deployments(PREFECT_YAML):
        flow = spec.load_flow()
        assert flow.name == EXPECTED[spec.name][1]
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(spec.parameters) <= accepted, (spec.name, set(spec.parameters) - accepted)
    paths = {s.name: s for s in read_deployments(PREFECT_YAML)}["ingest-and-index"].parameters["paths"]
    assert paths == ["/music"]


def test_serve_builds_the_yaml_deployments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    from flows.deploy import build_deployments

    monkeypatch.delenv("AUDIOSIM_WATCH", raising=False)
    with pytest.raises(ValueError, match="--watch"):
        build_deployments()
    built = build_deployments(watch=[tmp_path / "music"], home=tmp_path / "home", workers=2)
    by_name = {d.name: d for d in built}
    assert set(by_name) == set(EXPECTED)
    ingest = by_name["ingest-and-index"]
    assert ingest.parameters["paths"] == [str((tmp_path / "music").resolve())]
    assert ingest.parameters["home"] == str((tmp_path / "home").resolve())
    assert ingest.parameters["workers"] == 2
    assert ingest.entrypoint == "flows.pipeline.pipeline_flow"
    assert ingest.schedules[0].schedule.interval.total_seconds() == 900
    assert ingest.concurrency_limit == 1
    assert ingest.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
    assert by_name["nightly-compaction"].schedules[0].schedule.cron == _yaml()["deployments"][1]["schedules"][0]["cron"]
    assert by_name["on-demand"].parameters == {"home": str((tmp_path / "home").resolve())}
    only = build_deployments(watch=[tmp_path], only=["nightly-compaction"])
    assert [d.name for d in only] == ["nightly-compaction"]
    with pytest.raises(ValueError, match="unknown"):
        build_deployments(watch=[tmp_path], only=["nope"])


def test_placeholders_fill_from_the_environment_as_prefect_deploy_does() -> None:
    from flows.deploy import fill_env

    env = {"W": "/music"}
    assert fill_env({"paths": ["{{ $W }}"], "x": "a{{$W}}b", "n": 1}, env) == {"paths": ["/music"], "x": "a/musicb", "n": 1}
    assert fill_env(["{{ $UNSET }}"], env) == ["{{ $UNSET }}"]  # left as is, as prefect deploy leaves it


def test_schedules_and_limits_from_the_yaml_use_public_prefect_classes() -> None:
    import datetime as dt

    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.schedules import Schedule

    from flows.deploy import concurrency_from_config, schedule_from_config

    every = schedule_from_config({"interval": 900, "slug": "s", "anchor_date": "2024-01-01T00:30:00+00:00"})
    assert isinstance(every, Schedule) and every.interval == dt.timedelta(seconds=900)
    assert every.anchor_date == dt.datetime(2024, 1, 1, 0, 30, tzinfo=dt.timezone.utc)
    assert schedule_from_config({"cron": "0 4 * * 0", "timezone": "UTC"}).cron == "0 4 * * 0"
    with pytest.raises(ValueError, match="cron or interval"):
        schedule_from_config({"slug": "nothing"})
    assert concurrency_from_config(1) == 1
    assert isinstance(concurrency_from_config({"limit": 1, "collision_strategy": "CANCEL_NEW"}), ConcurrencyLimitConfig)


def test_deploy_module_uses_no_private_prefect_module() -> None:
    import re

    source = (ROOT / "flows" / "deploy.py").read_text()
    modules = re.findall(r"^\s*(?:from|import) (prefect[\w.]*)", source, flags=re.M)
    assert modules and not [m for m in modules if any(part.startswith("_") for part in m.split("."))], modules
    assert "sys.path" not in source


# --------------------------------------------------------------------------
# A real server
# --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _open(req: urllib.request.Request | str, timeout: float) -> bytes:
    """urlopen, retrying "503 Service Unavailable" (SQLite busy) as Prefect's own client does."""
    for attempt in range(6):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (local test server)
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code != 503 or attempt == 5:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _get(url: str, timeout: float = 5.0) -> bytes:
    return _open(url, timeout)


def _post(url: str, body: dict, timeout: float = 30.0) -> object:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.loads(_open(req, timeout) or b"null")


def _stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop a process started with ``start_new_session=True`` and all its children."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``prefect server start`` on a free port; yields (api_url, env for clients)."""
    base = tmp_path_factory.mktemp("prefect-server")
    try:
        port = _free_port()
    except OSError as e:
        pytest.skip(f"cannot bind a local port for the Prefect server: {e}")
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(base / "prefect-home"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_UI_ENABLED="false",
        # Nothing is scheduled by the server: the test triggers the one run it waits for.
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    log = base / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=base, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if proc.poll() is not None:
                text = _tail(log, 60)
                reason = next((r for r in ENVIRONMENTAL if r in text.lower()), None)
                if reason:
                    pytest.skip(f"prefect server could not start ({reason}):\n{text}")
                pytest.fail(f"prefect server exited with code {proc.returncode}:\n{text}")
            try:
                if _get(f"{api}/health", timeout=3) == b"true":
                    break
            except (urllib.error.URLError, OSError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {SERVER_TIMEOUT:.0f} s:\n{_tail(log)}")
            time.sleep(1.0)
        yield api, env, log
    finally:
        _stop(proc)


def _prefect(args: list[str], env: dict, timeout: float, cwd: Path = ROOT, log: Path | None = None) -> str:
    r = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    out = r.stdout + r.stderr
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ prefect {' '.join(args)}\n{out}\n")
    assert r.returncode == 0, f"prefect {' '.join(args)} failed ({r.returncode}):\n{out[-4000:]}"
    return out


def _random_model(path: Path) -> Path:
    """An untrained encoder checkpoint: indexing needs one, matching quality does not matter here."""
    import torch

    from audiosim.fingerprint.model import Encoder, save_encoder

    torch.manual_seed(0)
    save_encoder(Encoder(), path, {"note": "untrained, for tests"})
    return path


@pytest.mark.timeout(int(SERVER_TIMEOUT) + 1500)
def test_deploy_and_run_on_a_real_server(prefect_server, tmp_path: Path) -> None:
    from audiosim.demo.songbook import write_songbook
    from audiosim.index.manifest import Manifest
    from audiosim.store.catalog import Catalog
    from audiosim.store.content import FeatureStore
    from audiosim.store.home import DataHome

    api, env, server_log = prefect_server
    t0 = time.monotonic()
    music = tmp_path / "music"
    write_songbook(music, n=3, seconds=8)
    home = DataHome(tmp_path / "home")
    model = _random_model(tmp_path / "model.pt")
    cli_log = tmp_path / "prefect-cli.log"
    env = dict(env, AUDIOSIM_WATCH=str(music))
    env.pop("AUDIOSIM_HOME", None)

    _prefect(["work-pool", "create", POOL, "--type", "process"], env, 600, log=cli_log)
    _prefect(["--no-prompt", "deploy", "--all"], env, 900, log=cli_log)
    timings = {"deployed": time.monotonic() - t0}

    deployments = {d["name"]: d for d in _post(f"{api}/deployments/filter", {})}
    assert set(deployments) == set(EXPECTED)
    for name, (entrypoint, _) in EXPECTED.items():
        d = deployments[name]
        assert d["entrypoint"] == entrypoint
        assert d["work_pool_name"] == POOL
        assert d["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    ingest_dep = deployments["ingest-and-index"]
    assert ingest_dep["parameters"]["paths"] == [str(music)]
    assert [s["schedule"].get("interval") for s in ingest_dep["schedules"]] == [900.0]
    assert deployments["nightly-compaction"]["schedules"][0]["schedule"]["cron"]
    assert deployments["weekly-retrain"]["schedules"][0]["schedule"]["cron"]
    assert deployments["on-demand"]["schedules"] == []

    run = _post(f"{api}/deployments/{ingest_dep['id']}/create_flow_run",
                {"parameters": {"home": str(home.root), "model": str(model), "paths": [str(music)],
                                "calibrate": False}})  # thresholds: minutes of CPU, not what is tested here
    run_id = run["id"]

    worker_log = tmp_path / "worker.log"
    with open(worker_log, "wb") as out:
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--run-once", "--type", "process"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 1200
        state = None
        while time.monotonic() < deadline:
            state = json.loads(_get(f"{api}/flow_runs/{run_id}"))["state"]
            if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            if worker.poll() is not None and state["type"] in ("SCHEDULED", "PENDING"):
                break
            time.sleep(2.0)
        timings["run"] = time.monotonic() - t0
        assert state is not None and state["type"] == "COMPLETED", (
            f"flow run ended {state}:\n--- worker\n{_tail(worker_log, 80)}\n--- server\n{_tail(server_log)}"
        )
        worker.wait(timeout=120)
    finally:
        _stop(worker)

    # The catalogue and the index of the data home the deployment wrote to.
    with Catalog(home.catalog_path, create=False) as cat:
        tracks = list(cat.iter_tracks())
    assert sorted(Path(t.path).name for t in tracks) == sorted(p.name for p in music.glob("*.wav"))
    assert all(t.ok for t in tracks)
    store = FeatureStore(home.features_dir)
    assert all(store.has(t.content_hash) for t in tracks)
    manifest = Manifest.load(home.index_dir)
    assert sorted(manifest.live_tracks()) == sorted(t.id for t in tracks)

    # The artifacts, through the API: the pipeline's and its sub-flows'.
    runs = _post(f"{api}/flow_runs/filter", {})
    family = {r["id"] for r in runs if r["id"] == run_id or r.get("parent_task_run_id")}
    artifacts = _post(f"{api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": sorted(family)}}})
    by_key = {a["key"]: a for a in artifacts if a.get("key")}
    assert {"ingest-summary", "ingest-results", "index-summary", "pipeline-summary"} <= set(by_key), sorted(by_key)
    assert "| 3 | 3 | 0 | 0 | 0 |" in by_key["ingest-summary"]["data"]
    results = by_key["ingest-results"]["data"]
    results = json.loads(results) if isinstance(results, str) else results
    assert sorted(r["status"] for r in results) == ["added"] * 3
    assert "+3 tracks" in by_key["pipeline-summary"]["data"]
    print(f"real-server test timings (s since start): {timings}")


@pytest.mark.timeout(900)
def test_audiosim_serve_runs_the_deployments(prefect_server, tmp_path: Path) -> None:
    """``audiosim serve`` registers the yaml's deployments and runs a triggered one in-process."""
    from audiosim.demo.songbook import write_songbook
    from audiosim.store.catalog import Catalog
    from audiosim.store.home import DataHome

    api, env, server_log = prefect_server
    music = tmp_path / "music"
    write_songbook(music, n=2, seconds=6)
    home = DataHome(tmp_path / "home")
    model = _random_model(tmp_path / "model.pt")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen(
            [str(BIN / "audiosim"), "serve", "--watch", str(music), "--home", str(home.root)],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        ours = str(home.root.resolve())
        while time.monotonic() < deadline:  # serve (re)registers every deployment with this home
            assert serve.poll() is None, f"audiosim serve exited:\n{_tail(log)}"
            deps = {d["name"]: d for d in _post(f"{api}/deployments/filter", {})}
            if all(deps.get(n, {}).get("parameters", {}).get("home") == ours for n in EXPECTED):
                break
            time.sleep(2.0)
        else:
            pytest.fail(f"serve did not register its deployments:\n{_tail(log)}")
        dep = deps["ingest-and-index"]
        assert dep["parameters"]["paths"] == [str(music.resolve())]
        assert [s["schedule"].get("interval") for s in dep["schedules"]] == [900.0]
        run_id = _post(f"{api}/deployments/{dep['id']}/create_flow_run",
                       {"parameters": {"model": str(model), "calibrate": False}})["id"]
        state = None
        while time.monotonic() < deadline:
            state = json.loads(_get(f"{api}/flow_runs/{run_id}"))["state"]
            if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(2.0)
        assert state is not None and state["type"] == "COMPLETED", f"{state}\n{_tail(log, 80)}"
        run_name = json.loads(_get(f"{api}/flow_runs/{run_id}"))["name"]
        line = f"flow run pipeline '{run_name}': Completed, "
        while line not in log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(1.0)
        assert line in log.read_text(errors="replace"), _tail(log, 80)
    finally:
        _stop(serve, grace=60.0)
    with Catalog(home.catalog_path, create=False) as cat:
        assert sorted(Path(t.path).name for t in cat.iter_tracks(status="ok")) == sorted(
            p.name for p in music.glob("*.wav"))
    assert (home.index_dir / "manifest.json").is_file()


def test_cli_serve_list_works_before_a_folder_is_watched(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from audiosim.cli.main import main

    monkeypatch.delenv("AUDIOSIM_WATCH", raising=False)
    assert main(["serve", "--list"]) == 0
    out, err = capsys.readouterr()
    assert "pipeline/ingest-and-index: every 15 min" in out and "{{ $AUDIOSIM_WATCH }}" in out
    assert "ingest-and-index: parameter(s) paths not set yet (pass --watch DIR or set AUDIOSIM_WATCH)" in err
    assert main(["serve", "--list", "--only", "nightly-compaction"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("index/nightly-compaction: cron '30 3 * * *'") and out.count("\n") == 1 and not err
    assert main(["serve", "--list", "--only", "nope"]) == 2
    assert "unknown deployment" in capsys.readouterr().err


def test_cli_serve_list_and_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from audiosim.cli.main import main

    monkeypatch.delenv("AUDIOSIM_WATCH", raising=False)
    assert main(["serve", "--list", "--watch", str(tmp_path), "--home", str(tmp_path / "h"), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "pipeline/ingest-and-index: every 15 min" in out
    assert '"workers": 2' in out and str((tmp_path / "h").resolve()) in out
    assert "index/nightly-compaction: cron '30 3 * * *'" in out
    assert "playlist-report/on-demand: on demand" in out
    assert main(["serve"]) == 2  # serving needs a watched folder
    assert "--watch" in capsys.readouterr().err
    assert main(["serve", "--list", "--watch", str(tmp_path / "nope")]) == 2
    assert main(["serve", "--list", "--watch", str(tmp_path), "--workers", "0"]) == 2
    assert main(["ingest", str(tmp_path), "--dask", " "]) == 2


# --------------------------------------------------------------------------
# What `audiosim serve` prints: where runs show, one line per run
# --------------------------------------------------------------------------


def test_each_deployment_flow_declares_the_run_line_hooks() -> None:
    from flows.deploy import read_deployments
    from flows.run_lines import note_start, print_run_line

    for spec in read_deployments(PREFECT_YAML):
        f = spec.load_flow()
        assert print_run_line in f.on_completion_hooks and print_run_line in f.on_failure_hooks, spec.name
        assert print_run_line in f.on_crashed_hooks and note_start in f.on_running_hooks, spec.name


def test_a_run_line_names_the_flow_run_state_times_and_duration() -> None:
    import datetime as dt

    from flows.run_lines import run_line

    start = dt.datetime(2026, 5, 1, 23, 59, 30)
    assert run_line("pipeline", "clever-fox", "Completed", start, start + dt.timedelta(seconds=75)) == (
        "flow run pipeline 'clever-fox': Completed, 2026-05-01 23:59:30 to 2026-05-02 00:00:45 (1:15)")
    assert run_line("index", "x", "Crashed", None, start) == "flow run index 'x': Crashed, ended 2026-05-01 23:59:30"


def test_the_hook_prints_one_line_for_a_deployment_run_and_nothing_for_direct_calls_or_sub_flows(capsys) -> None:
    import datetime as dt
    from types import SimpleNamespace

    from flows.run_lines import note_start, print_run_line

    t0 = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    flow = SimpleNamespace(name="index")

    def run(**kw):
        return SimpleNamespace(id=kw.pop("id"), name="calm-owl", start_time=None, **kw)

    served = run(id=1, deployment_id="d", parent_task_run_id=None)
    note_start(flow, served, SimpleNamespace(name="Running", timestamp=t0))
    print_run_line(flow, served, SimpleNamespace(name="Completed", timestamp=t0 + dt.timedelta(seconds=62)))
    out = capsys.readouterr().out
    local = t0.astimezone()
    assert out == f"flow run index 'calm-owl': Completed, {local:%Y-%m-%d %H:%M:%S} to " \
                  f"{local + dt.timedelta(seconds=62):%H:%M:%S} (1:02)\n"
    for other in (run(id=2, deployment_id=None, parent_task_run_id=None),
                  run(id=3, deployment_id="d", parent_task_run_id="t")):
        print_run_line(flow, other, SimpleNamespace(name="Failed", timestamp=t0))
    assert capsys.readouterr().out == ""


def test_serve_names_no_dead_ui_address_for_the_temporary_server() -> None:
    from flows.deploy import build_deployments, start_message

    deps = build_deployments(only=["nightly-compaction"])
    text = start_message(deps, "http://127.0.0.1:9/api", None, temporary=True)
    assert "index/nightly-compaction: cron '30 3 * * *'" in text
    assert "it has no UI" in text and "/deployments" not in text and "one line each here" in text
    assert "PREFECT_API_URL=http://127.0.0.1:9/api prefect deployment run 'index/nightly-compaction'" in text
    shown = start_message(deps, "http://127.0.0.1:4200/api", "http://127.0.0.1:4200", temporary=False)
    assert "Prefect UI at http://127.0.0.1:4200/runs" in shown and "PREFECT_API_URL=" not in shown


def test_a_ui_address_is_printed_only_when_it_answers() -> None:
    import http.server
    import threading

    from flows.deploy import served_ui

    class Handler(http.server.BaseHTTPRequestHandler):
        status = 404

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(self.status)
            self.end_headers()
            self.wfile.write(b"<html></html>")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = f"http://127.0.0.1:{server.server_port}/api"
        assert served_ui(api) is None  # a temporary server: UI disabled, 404
        Handler.status = 200
        assert served_ui(api) == f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
    assert served_ui(f"http://127.0.0.1:{_free_port()}/api", timeout=1.0) is None  # nothing listens


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_audiosim_serve_prints_a_line_for_each_run_it_executes(tmp_path: Path) -> None:
    """``audiosim serve --only`` on Prefect's temporary server: the API it prints takes a run; its line appears."""
    import re

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONUNBUFFERED="1")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen(
            [str(BIN / "audiosim"), "serve", "--only", "nightly-compaction", "--home", str(tmp_path / "home")],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        api = None
        while api is None and time.monotonic() < deadline:
            assert serve.poll() is None, f"audiosim serve exited:\n{_tail(log)}"
            m = re.search(r"Prefect API: (\S+) \(Prefect's temporary server", log.read_text(errors="replace"))
            api = m.group(1) if m else None
            time.sleep(1.0)
        assert api, f"serve printed no API address:\n{_tail(log)}"
        text = log.read_text(errors="replace")
        assert "no UI" in text and "/deployments" not in text, text
        dep = None
        while dep is None and time.monotonic() < deadline:
            deps = [d for d in _post(f"{api}/deployments/filter", {}) if d["name"] == "nightly-compaction"]
            dep = deps[0] if deps else None
            time.sleep(1.0)
        assert dep is not None, f"serve did not register nightly-compaction:\n{_tail(log)}"
        run = _post(f"{api}/deployments/{dep['id']}/create_flow_run", {})
        line = None
        while line is None and time.monotonic() < deadline:
            assert serve.poll() is None, f"audiosim serve exited:\n{_tail(log)}"
            m = re.search(rf"flow run index '{re.escape(run['name'])}': (\w+), \S+ \S+ to \S+ \(\d+:\d\d\)",
                          log.read_text(errors="replace"))
            line = m
            time.sleep(1.0)
        assert line is not None, f"no line for run {run['name']}:\n{_tail(log, 80)}"
        state = json.loads(_get(f"{api}/flow_runs/{run['id']}"))["state"]
        assert line.group(1) == state["name"], (line.group(0), state)
    finally:
        _stop(serve, grace=60.0)
