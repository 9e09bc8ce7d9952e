"""The cluster profile on this machine: create what it needs, start it, stop it.

    python deploy/cluster/cluster.py up      # databases, role, vhost; then every process
    python deploy/cluster/cluster.py status
    python deploy/cluster/cluster.py down [--drop]   # stop; --drop also removes databases, vhost

Settings come from ``deploy/cluster/cluster.env``; a variable already in the environment
wins, so tests and benchmarks run their own cluster beside the default one (own databases,
vhost, data folder and ports). Every address is a variable: moving a piece to its own host
changes only the URL the others use to reach it.

Processes (each in its own session; pid files and logs under ``<data>/cluster/``):

- ``mlflow``: ``mlflow server`` on PostgreSQL, artifacts proxied (``--serve-artifacts``),
  MLflow's basic-auth app (admin credentials: MLFLOW_TRACKING_USERNAME / _PASSWORD);
- ``daemon``: ``dagster-daemon`` (sensors, the run queue, run monitoring);
- ``webserver``: the Dagster UI;
- ``worker-N``: Celery workers (``LEADSCORE_CELERY_WORKERS``, one run at a time each), the
  code location imported at start;
- ``api``: ``leadscore serve --workers LEADSCORE_API_WORKERS``.

Creating the databases, the role and the RabbitMQ vhost is idempotent: ``up`` twice is fine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ENV_FILE = HERE / "cluster.env"
START_TIMEOUT = 420.0
WORKER_HEALTHCHECK_SECONDS = 120
HTTP_TIMEOUT = 60.0
AUTH_CACHE_SECONDS = 60
# the webserver's and the daemon's code servers import the code location at start: minutes
# on a busy host (dagster.yaml's code_servers.local_startup_timeout says as much)
LOCATION_TIMEOUT = 900.0
# What a Celery worker imports at start (``-i``), before its pool process forks
PRELOAD = "leadscore_assets.definitions"


def cluster_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """cluster.env under the current environment (the environment wins), paths resolved."""
    base = dict(os.environ if base is None else base)
    values = {k: v for k, v in dotenv_values(ENV_FILE, interpolate=False).items()
              if v is not None}
    env = dict(base)
    for key, value in values.items():  # in file order: ${VAR} names an earlier one
        if key not in base:
            env[key] = _expand(value, env)
    data = Path(env["LEADSCORE_DATA_DIR"])
    if not data.is_absolute():
        data = (ROOT / data).resolve()
    env["LEADSCORE_DATA_DIR"] = str(data)
    home = data / "cluster" / "dagster_home"
    env["DAGSTER_HOME"] = str(home)
    env.setdefault("LEADSCORE_DAGSTER_STORAGE", str(data / "cluster" / "dagster"))
    env.setdefault("LEADSCORE_DAGSTER_COMPUTE_LOGS",
                   str(data / "cluster" / "dagster" / "compute_logs"))
    env.setdefault("MLFLOW_AUTH_CONFIG_PATH", str(data / "cluster" / "basic_auth.ini"))
    return env


def _expand(value: str, env: dict[str, str]) -> str:
    for key, v in env.items():
        value = value.replace("${" + key + "}", v)
    return value


def isolated_env(tag: str, data: Path, extra: dict[str, str],
                 base: dict[str, str] | None = None) -> dict[str, str]:
    """A cluster of its own beside any other on the same services: databases, vhost and
    worker names prefixed by ``tag``, its own data folder and admin password, and ``extra``
    (its ports, at least) on top (tests and benchmarks). The LEADSCORE_/DAGSTER_/MLFLOW_
    variables of ``base`` are ignored."""
    base = {k: v for k, v in (os.environ if base is None else base).items()
            if not k.startswith(("LEADSCORE_", "DAGSTER_", "MLFLOW_"))}
    pg = "postgresql+psycopg2://leadscore@127.0.0.1:5432"
    overrides = {
        "LEADSCORE_DATA_DIR": str(data),
        "LEADSCORE_DAGSTER_PG_URL": f"{pg}/{tag}_dagster",
        "LEADSCORE_MLFLOW_BACKEND_URL": f"{pg}/{tag}_mlflow",
        "LEADSCORE_MLFLOW_AUTH_URL": f"{pg}/{tag}_auth",
        "LEADSCORE_CELERY_BROKER": f"pyamqp://guest:guest@127.0.0.1:5672/{tag}",
        "LEADSCORE_CELERY_WORKER_PREFIX": f"{tag}-worker-",
        "MLFLOW_TRACKING_PASSWORD": secrets.token_hex(16),
        **extra,
    }
    return cluster_env({**base, **overrides})


@contextlib.contextmanager
def isolated_cluster(tag: str, data: Path, ports: tuple[str, ...], span: str | None = None,
                     extra: dict[str, str] | None = None):
    """A cluster of its own (``isolated_env``; the variables named in ``ports`` set to free
    ports, from ``span`` when given) up while the block runs, its settings exported to this
    process; then stopped, its databases and vhost dropped and the environment put back,
    SIGTERM included."""
    chosen = dict(zip(ports, free_ports(len(ports), span), strict=True))
    env = isolated_env(tag, data, {**chosen, **(extra or {})})
    saved = dict(os.environ)
    os.environ.update(env)  # the caller reads the cluster's instance and registry
    with interrupted_by_sigterm():
        try:
            up(env)
            yield env
        finally:
            try:
                down(env, drop=True)
            finally:
                os.environ.clear()
                os.environ.update(saved)


def free_ports(count: int, span: str | None = None) -> list[str]:
    """``count`` ports nothing listens on: from ``span`` ("first-last") when given, so runs
    on a shared host stay in their own range, else ones the system hands out."""
    import socket

    candidates = (range(int(span.split("-")[0]), int(span.split("-")[1]) + 1) if span
                  else [0] * count)
    held: list[socket.socket] = []  # kept open until all are found: no port twice
    try:
        for port in candidates:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
            if len(held) == count:
                return [str(h.getsockname()[1]) for h in held]
    finally:
        for h in held:
            h.close()
    raise RuntimeError(f"fewer than {count} free ports in {span}")


def stop_group(process: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop a process started in a session of its own, and its children (a server's
    workers): SIGTERM to the group, SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


# -- what the services need -------------------------------------------------------------


def _pg_admin(env: dict[str, str]):
    import psycopg2

    conn = psycopg2.connect(env["LEADSCORE_PG_ADMIN_URL"])
    conn.autocommit = True
    return conn


def _databases(env: dict[str, str]) -> dict[str, str]:
    """database name -> owner, from every PostgreSQL URL the cluster uses."""
    out = {}
    for var in ("LEADSCORE_DAGSTER_PG_URL", "LEADSCORE_MLFLOW_BACKEND_URL",
                "LEADSCORE_MLFLOW_AUTH_URL"):
        url = urlsplit(env[var])
        out[url.path.lstrip("/")] = url.username or "postgres"
    return out


def create_databases(env: dict[str, str]) -> None:
    conn = _pg_admin(env)
    with conn.cursor() as cur:
        for db, owner in _databases(env).items():
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE ROLE "{owner}" LOGIN')
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{db}" OWNER "{owner}"')
    conn.close()


def drop_databases(env: dict[str, str]) -> None:
    conn = _pg_admin(env)
    with conn.cursor() as cur:
        for db in _databases(env):
            cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    conn.close()


def _vhost(env: dict[str, str]) -> tuple[str, str, str]:
    url = urlsplit(env["LEADSCORE_CELERY_BROKER"])
    return url.path.lstrip("/") or "/", url.username or "guest", url.password or "guest"


def _rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          check=check)


def create_vhost(env: dict[str, str]) -> None:
    """The broker's virtual host and user (RabbitMQ's own CLI; idempotent)."""
    vhost, user, password = _vhost(env)
    if vhost != "/":
        _rabbitmqctl("add_vhost", vhost, check=False)  # exists already: fine
    if user != "guest":
        _rabbitmqctl("add_user", user, password, check=False)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def drop_vhost(env: dict[str, str]) -> None:
    vhost, _, _ = _vhost(env)
    if vhost != "/":
        _rabbitmqctl("delete_vhost", vhost, check=False)


def write_instance(env: dict[str, str]) -> None:
    """DAGSTER_HOME under the data folder, holding this profile's dagster.yaml."""
    home = Path(env["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "dagster.yaml", home / "dagster.yaml")
    Path(env["LEADSCORE_DAGSTER_STORAGE"]).mkdir(parents=True, exist_ok=True)


def write_auth_config(env: dict[str, str]) -> None:
    """MLflow's basic-auth settings: users in PostgreSQL, the admin from the environment."""
    path = Path(env["MLFLOW_AUTH_CONFIG_PATH"])
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {env['LEADSCORE_MLFLOW_AUTH_URL']}\n"
        f"admin_username = {env['MLFLOW_TRACKING_USERNAME']}\n"
        f"admin_password = {env['MLFLOW_TRACKING_PASSWORD']}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # a verified credential is remembered for a minute (per server worker): without it
        # every request pays a scrypt hash, seconds each on a busy host, and a training run
        # makes hundreds of requests; a changed password reaches every worker within it
        f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def flask_secret(env: dict[str, str]) -> None:
    """The tracking server's CSRF key: from the environment, else one kept per data folder
    (every server of one deployment must share it)."""
    if env.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
        return
    path = Path(env["LEADSCORE_DATA_DIR"]) / "cluster" / "mlflow_flask_secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = path.read_text().strip()


def prepare(env: dict[str, str]) -> None:
    create_databases(env)
    create_vhost(env)
    write_instance(env)
    write_auth_config(env)
    flask_secret(env)


# -- processes --------------------------------------------------------------------------


def _run_dir(env: dict[str, str]) -> Path:
    path = Path(env["LEADSCORE_DATA_DIR"]) / "cluster"
    (path / "logs").mkdir(parents=True, exist_ok=True)
    (path / "pids").mkdir(parents=True, exist_ok=True)
    return path


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def commands(env: dict[str, str]) -> dict[str, list[str]]:
    host = env["LEADSCORE_BIND_HOST"]
    artifacts = Path(env["LEADSCORE_DATA_DIR"]) / "cluster" / "mlflow-artifacts"
    cmds = {
        "mlflow": [
            _bin("mlflow"), "server",
            "--backend-store-uri", env["LEADSCORE_MLFLOW_BACKEND_URL"],
            "--serve-artifacts", "--artifacts-destination", str(artifacts),
            "--app-name", "basic-auth",
            "--host", host, "--port", env["LEADSCORE_MLFLOW_PORT"],
            "--workers", env["LEADSCORE_MLFLOW_WORKERS"],
            # a worker still importing on a busy host is not taken for dead
            "--uvicorn-opts", f"--timeout-worker-healthcheck {WORKER_HEALTHCHECK_SECONDS}",
        ],
        "daemon": [_bin("dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
        "webserver": [_bin("dagster-webserver"), "-w", str(ROOT / "workspace.yaml"),
                      "-h", host, "-p", env["LEADSCORE_DAGSTER_UI_PORT"]],
    }
    for i in range(1, int(env["LEADSCORE_CELERY_WORKERS"]) + 1):
        cmds[f"worker-{i}"] = [
            _bin("dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
            "-y", str(HERE / "celery.yaml"), "-n", f"{env['LEADSCORE_CELERY_WORKER_PREFIX']}{i}",
            # the code location is imported once, before the pool process forks: every run
            # (and the process that replaces a dead one) starts with it loaded
            "-i", PRELOAD,
            "--", "--concurrency=1", "--without-gossip", "--without-mingle",
        ]
    cmds["api"] = [_bin("leadscore"), "serve", "--host", host,
                   "--port", env["LEADSCORE_API_PORT"],
                   "--workers", env["LEADSCORE_API_WORKERS"]]
    return cmds


_started: dict[int, subprocess.Popen] = {}  # processes this script started, by pid


def pid_of(env: dict[str, str], name: str) -> int | None:
    """The pid of ``name`` while it runs (a child of this script that exited is reaped)."""
    path = _run_dir(env) / "pids" / f"{name}.pid"
    if not path.exists():
        return None
    pid = int(path.read_text())
    if pid in _started:
        return None if _started[pid].poll() is not None else pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def start(env: dict[str, str], name: str, cmd: list[str]) -> int:
    if (pid := pid_of(env, name)) is not None:
        return pid
    run = _run_dir(env)
    log = open(run / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    (run / "pids" / f"{name}.pid").write_text(str(proc.pid))
    _started[proc.pid] = proc
    return proc.pid


def _http_ok(url: str, auth: tuple[str, str] | None = None) -> bool:
    request = urllib.request.Request(url)
    if auth:
        import base64
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        # generous: a first request to a server still warming up on a busy host is slow
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_for(predicate, what: str, timeout: float, every: float = 2.0):
    """The first true value ``predicate()`` returns, asked every ``every`` seconds (a run's
    end, a file landed); TimeoutError naming ``what`` once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(every)
    return value


def wait_until(check, what: str, env: dict[str, str], names: list[str],
               timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        dead = [n for n in names if pid_of(env, n) is None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} stopped while starting; see "
                               f"{_run_dir(env) / 'logs'}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.5)


def celery_workers_ready(env: dict[str, str]) -> int:
    """How many Celery workers answer a ping on the broker."""
    from celery import Celery

    app = Celery(broker=env["LEADSCORE_CELERY_BROKER"], backend=env["LEADSCORE_CELERY_BACKEND"])
    try:
        return len(app.control.ping(timeout=1.0) or [])
    finally:
        app.close()


def up(env: dict[str, str]) -> None:
    prepare(env)
    cmds = commands(env)
    host = env["LEADSCORE_BIND_HOST"]
    creds = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    start(env, "mlflow", cmds["mlflow"])
    mlflow_url = f"http://{host}:{env['LEADSCORE_MLFLOW_PORT']}"
    wait_until(lambda: _http_ok(f"{mlflow_url}/health"), "MLflow", env, ["mlflow"])
    wait_until(lambda: _http_ok(
        f"{mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1", creds),
        "MLflow (authenticated)", env, ["mlflow"])
    workers = [n for n in cmds if n.startswith("worker-")]
    for name in ("daemon", "webserver", *workers, "api"):
        start(env, name, cmds[name])
    wait_until(lambda: _http_ok(f"http://{host}:{env['LEADSCORE_DAGSTER_UI_PORT']}/server_info"),
               "Dagster webserver", env, ["webserver"])
    location_loaded(env)
    wait_until(lambda: celery_workers_ready(env) >= len(workers), "Celery workers", env,
               workers)
    wait_until(lambda: _http_ok(f"http://{host}:{env['LEADSCORE_API_PORT']}/health"),
               "API", env, ["api"])
    print(status(env))


def stop(env: dict[str, str], name: str, grace: float = 20.0) -> None:
    pid = pid_of(env, name)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)  # the session this script started for it
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    (_run_dir(env) / "pids" / f"{name}.pid").unlink(missing_ok=True)


@contextlib.contextmanager
def interrupted_by_sigterm():
    """While the block runs, SIGTERM (a CI timeout, ``kill``) interrupts the main thread as
    Ctrl-C would, so the caller's cleanup (``down``) still runs; the handler is put back
    after. Also for a process started in the background, where SIGINT is ignored."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def down(env: dict[str, str], drop: bool = False) -> None:
    # the API and the daemon first (nothing new is launched), the tracking server last
    names = ["api", "daemon", "webserver",
             *[n for n in commands(env) if n.startswith("worker-")], "mlflow"]
    for name in names:
        stop(env, name)
    if drop:
        drop_databases(env)
        drop_vhost(env)


def status(env: dict[str, str]) -> str:
    host = env["LEADSCORE_BIND_HOST"]
    lines = []
    for name in commands(env):
        pid = pid_of(env, name)
        lines.append(f"{name:<12} {'pid ' + str(pid) if pid else 'stopped'}")
    lines += [
        f"Dagster UI   http://{host}:{env['LEADSCORE_DAGSTER_UI_PORT']}",
        f"MLflow       http://{host}:{env['LEADSCORE_MLFLOW_PORT']}",
        f"API          http://{host}:{env['LEADSCORE_API_PORT']}",
        f"logs         {_run_dir(env) / 'logs'}",
    ]
    return "\n".join(lines)


# -- the Dagster webserver's GraphQL API (what the UI's buttons do) ------------------------

LOCATION = {"repositoryLocationName": "leadscore", "repositoryName": "__repository__"}


def _mutation(signature: str, call: str, *answers: str) -> str:
    """A mutation's text: its ``__typename``, the fields of each kind of answer named, or a
    Python error's message."""
    kinds = "\n".join(f"    ... on {a}" for a in (*answers, "PythonError { message }"))
    return f"mutation {signature} {{\n  {call} {{\n    __typename\n{kinds}\n  }}\n}}"


_LAUNCH = _mutation("Launch($params: ExecutionParams!)", "launchRun(executionParams: $params)",
                    "LaunchRunSuccess { run { runId } }", "InvalidStepError { invalidStepKey }",
                    "RunConfigValidationInvalid { errors { message } }")
_SENSOR = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { jobOriginId sensorState { selectorId status } }
  }
}"""
_STOP_SENSOR = _mutation("Stop($origin: String!, $selector: String!)",
                         "stopSensor(jobOriginId: $origin, jobSelectorId: $selector)",
                         "StopSensorMutationResult { instigationState { status } }")
_START_SENSOR = _mutation("Start($selector: SensorSelector!)",
                          "startSensor(sensorSelector: $selector)",
                          "Sensor { sensorState { status } }")
# Sensors that launch runs of their own (the inbox sensors only land new files)
RUN_LAUNCHING_SENSORS = ("automation", "monitoring_automation_sensor", "retraining_sensor")


def graphql(env: dict[str, str], query: str, variables: dict) -> dict:
    import json

    url = f"http://{env['LEADSCORE_BIND_HOST']}:{env['LEADSCORE_DAGSTER_UI_PORT']}/graphql"
    request = urllib.request.Request(
        url, data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        body = json.load(response)
    if "errors" in body:
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


_LOCATIONS = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries { name loadStatus locationOrLoadError { __typename } }
    }
  }
}"""


_RELOAD = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
}"""


def location_loaded(env: dict[str, str], timeout: float = LOCATION_TIMEOUT) -> None:
    """Wait until the webserver has the code location loaded (asking it to load it again
    after a failed start). A sensor or a job is not found while it loads, which happens when
    its code server is replaced (a busy host's missed heartbeats can cause that)."""
    name = LOCATION["repositoryLocationName"]
    deadline = time.monotonic() + timeout
    while True:
        data = graphql(env, _LOCATIONS, {})["workspaceOrError"]
        entry = {e["name"]: e for e in data.get("locationEntries", [])}.get(name)
        kind = ((entry or {}).get("locationOrLoadError") or {}).get("__typename")
        if entry and entry["loadStatus"] == "LOADED":
            if kind == "RepositoryLocation":
                return
            graphql(env, _RELOAD, {"name": name})  # it failed to start: try again
        if time.monotonic() > deadline:
            raise TimeoutError(f"code location not loaded after {timeout:.0f} s: {entry}")
        time.sleep(2)


def mutate(env: dict[str, str], mutation: str, variables: dict, answer: str,
           what: str) -> dict:
    """Run ``mutation`` once the code location is loaded, as the UI's buttons do; its one
    field's answer, which must be of the kind ``answer`` (else ``what`` failed)."""
    location_loaded(env)
    [result] = graphql(env, mutation, variables).values()
    if result["__typename"] != answer:
        raise RuntimeError(f"{what} failed: {result}")
    return result


def launch(env: dict[str, str], job: str = "__ASSET_JOB", asset_paths: list | None = None,
           tags: dict[str, str] | None = None) -> str:
    """Launch a run of ``job`` (or of the assets named) as the UI does; its id."""
    selector = {**LOCATION, "jobName": job}
    if asset_paths is not None:
        selector["assetSelection"] = [{"path": p} for p in asset_paths]
    return mutate(env, _LAUNCH, {"params": {
        "selector": selector, "runConfigData": {},
        "executionMetadata": {"tags": [{"key": k, "value": v}
                                       for k, v in (tags or {}).items()]}}},
        "LaunchRunSuccess", f"launch of {job}")["run"]["runId"]


_REEXECUTE = _mutation("Reexecute($params: ReexecutionParams!)",
                       "launchRunReexecution(reexecutionParams: $params)",
                       "LaunchRunSuccess { run { runId } }")


def reexecute(env: dict[str, str], run_id: str, strategy: str = "ALL_STEPS") -> str:
    """Re-execute a run as the UI's "Re-execute" does; the new run's id."""
    return mutate(env, _REEXECUTE, {"params": {"parentRunId": run_id, "strategy": strategy}},
                  "LaunchRunSuccess", f"re-execution of {run_id}")["run"]["runId"]


def set_sensors(env: dict[str, str], names, running: bool) -> None:
    """Start or stop sensors, as an operator would in the UI."""
    for name in names:
        selector = {**LOCATION, "sensorName": name}
        if running:
            mutate(env, _START_SENSOR, {"selector": selector}, "Sensor", f"start {name}")
            continue
        location_loaded(env)
        sensor = graphql(env, _SENSOR, {"selector": selector})["sensorOrError"]
        if sensor["__typename"] != "Sensor":
            raise RuntimeError(f"no sensor {name}: {sensor}")
        mutate(env, _STOP_SENSOR, {"origin": sensor["jobOriginId"],
                                   "selector": sensor["sensorState"]["selectorId"]},
               "StopSensorMutationResult", f"stop {name}")


@contextlib.contextmanager
def sensors_stopped(env: dict[str, str], names=RUN_LAUNCHING_SENSORS):
    """The sensors stopped while the block runs, started again afterwards."""
    stopped = []
    try:
        for name in names:
            set_sensors(env, [name], running=False)
            stopped.append(name)
        yield
    finally:
        set_sensors(env, stopped, running=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--drop", action="store_true",
                        help="down: also drop the databases and the vhost")
    args = parser.parse_args(argv)
    env = cluster_env()
    if args.command == "up":
        up(env)
    elif args.command == "down":
        down(env, drop=args.drop)
    elif args.command == "status":
        print(status(env))
    else:  # the settings every piece of the cluster runs with, for a shell: eval "$(... env)"
        for key in sorted(k for k in env if k.startswith(("LEADSCORE_", "MLFLOW_", "DAGSTER_"))):
            print(f"export {key}={env[key]!r}")


if __name__ == "__main__":
    main()
