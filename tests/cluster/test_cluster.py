"""The cluster topology end to end: files dropped into the inbox land through two Celery
workers, a killed worker's run is marked failed and its re-run lands each row once, and a
promotion on the tracking server reaches every API worker without a failed request."""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg
import httpx
import psycopg2
import pytest
from celery import Celery
from mlflow import MlflowClient

from deploy.cluster import cluster as profile
from deploy.cluster.cluster import wait_for
from leadscore_assets.ingest.landing import partition_key
from leadscore_assets.resources import LOCK_APPLICATION, warehouse_resource, writer_lock
from leadscore_core.registry import registered_name
from leadscore_core.settings import Settings

TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.CANCELED}
# eight files across the four sources
DROPPED = {"leads": 4, "payments": 2, "invoices": 1, "customers": 1}
LOCK_ERRORS = ("Could not set lock", "Conflicting lock", "database is locked")


def _file_runs(instance: dg.DagsterInstance, names: set[str]) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if r.tags.get("leadscore/file") in names]


def _csv_rows(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def _messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    out = []
    for entry in instance.all_logs(run_id):
        out.append(entry.message or "")
        event = entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        if error is not None:
            out.append(error.to_string())
    return out


@pytest.fixture(scope="module")
def sample_files(cluster_root) -> dict[str, list[Path]]:
    out = cluster_root / "samples"
    subprocess.run(["leadscore", "sample-data", "--inbox", str(out), "--scale", "0.2"],
                   check=True, capture_output=True)
    files = {s: sorted((out / s).iterdir())[:n] for s, n in DROPPED.items()}
    assert sum(map(len, files.values())) == 8
    return files


@pytest.fixture(scope="module")
def landed(cluster, sample_files):
    """The eight files dropped into the inbox at once, and the runs that landed them."""
    settings = Settings()
    for source, paths in sample_files.items():
        inbox = settings.inbox(source)
        inbox.mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copyfile(path, inbox / f".{path.name}.part")
    for source, paths in sample_files.items():  # all at once: renamed in one go
        for path in paths:
            os.rename(settings.inbox(source) / f".{path.name}.part",
                      settings.inbox(source) / path.name)
    names = {p.name for paths in sample_files.values() for p in paths}
    instance = dg.DagsterInstance.get()

    def finished():
        runs = _file_runs(instance, names)
        return runs if len(runs) == 8 and all(r.status in TERMINAL for r in runs) else None

    runs = wait_for(finished, "the eight landing runs", timeout=900)
    return instance, runs


def test_eight_files_land_through_two_workers(cluster, sample_files, landed):
    instance, runs = landed
    failed = {r.tags["leadscore/file"]: _messages(instance, r.run_id)[-5:]
              for r in runs if r.status != dg.DagsterRunStatus.SUCCESS}
    assert not failed, failed
    for run in runs:
        text = "\n".join(_messages(instance, run.run_id))
        assert not any(e in text for e in LOCK_ERRORS), run.run_id

    # each run was a Celery task; the tasks were taken by both worker processes
    app = Celery(broker=cluster["LEADSCORE_CELERY_BROKER"],
                 backend=cluster["LEADSCORE_CELERY_BACKEND"])
    workers = {app.AsyncResult(r.tags["dagster-celery/task_id"]).worker for r in runs}
    app.close()
    prefix = cluster["LEADSCORE_CELERY_WORKER_PREFIX"]
    assert {w.split("@")[0] for w in workers} == {f"{prefix}1", f"{prefix}2"}

    # each file landed exactly once: one partition, every row once, as many rows as the file
    settings = Settings()
    with warehouse_resource(settings).get_connection() as conn:
        for source, paths in sample_files.items():
            for path in paths:
                parts, rows, distinct = conn.execute(
                    f"SELECT count(DISTINCT _partition), count(*), count(DISTINCT _row_number) "
                    f"FROM raw.{source} WHERE _source_file = ?", [path.name]).fetchone()
                assert parts == 1 and rows == distinct > 0, (path.name, parts, rows, distinct)
                if path.suffix in (".csv", ".gz"):
                    assert rows == _csv_rows(path), path.name


def test_reconciliation_identity_after_clean(cluster, landed):
    """A clean run launched after the landings (on a worker) accounts for every raw row."""
    instance, _ = landed
    from leadscore_assets.clean.assets import CLEAN_ASSETS

    run_id = profile.launch(cluster, asset_paths=[a.key.path for a in CLEAN_ASSETS.values()])
    run = wait_for(lambda: (r := instance.get_run_by_id(run_id)) and r.status in TERMINAL and r,
                   "the clean run", timeout=900)
    assert run.status == dg.DagsterRunStatus.SUCCESS, _messages(instance, run_id)[-5:]
    settings = Settings()
    with warehouse_resource(settings).get_connection() as conn:
        for source in DROPPED:
            raw = conn.execute(f"SELECT count(*) FROM raw.{source}").fetchone()[0]
            clean = conn.execute(f"SELECT count(*) FROM clean.{source}").fetchone()[0]
            quarantined = conn.execute(f"SELECT count(*) FROM quarantine.{source}").fetchone()[0]
            removed = conn.execute(
                "SELECT coalesce(sum(rows), 0) FROM quarantine.removed_rows WHERE source = ?",
                [source]).fetchone()[0]
            assert raw > 0 and raw == clean + quarantined + removed, (source, raw, clean,
                                                                     quarantined, removed)


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The process executing the run: the one that reported "Started process for run"."""
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if (event and event.event_type_value == "ENGINE_EVENT"
                and (entry.message or "").startswith("Started process for run")):
            return int(event.event_specific_data.metadata["pid"].value)
    return None


IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
             dg.DagsterRunStatus.CANCELING]


def _idle(instance: dg.DagsterInstance) -> bool:
    """No run queued or in progress, twice a few seconds apart (a sensor tick that was under
    way when its sensor stopped may still submit one)."""
    for _ in range(2):
        if instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT), limit=1):
            return False
        time.sleep(5)
    return True


def test_killed_worker_fails_the_run_and_rerun_lands_once(cluster, landed, sample_files):
    """The warehouse lock is held here, so the landing step waits inside its run; the worker
    process running it is killed; the run is marked failed; its re-run lands every row once.

    The sensors that launch runs of their own are stopped and the cluster left to finish
    what it is doing first: a run waiting for the held lock occupies its worker, and with
    both workers so occupied the landing run would stay queued."""
    instance, _ = landed
    settings = Settings()
    source = "leads"
    path = sorted(sample_files["leads"][0].parent.iterdir())[-1]  # the one not dropped yet
    assert path.name not in {p.name for p in sample_files["leads"]}
    inbox = settings.inbox(source)
    with profile.sensors_stopped(cluster):
        wait_for(lambda: _idle(instance), "the cluster to finish its runs", timeout=2400, every=5)
        run = _kill_landing_run(cluster, instance, settings, path, inbox)
        rerun_id = profile.reexecute(cluster, run.run_id)
        rerun = wait_for(lambda: (r := instance.get_run_by_id(rerun_id)).status in TERMINAL and r,
                         "the re-run", timeout=600)
    assert rerun.status == dg.DagsterRunStatus.SUCCESS, _messages(instance, rerun_id)[-5:]
    key = partition_key(path.name, hashlib.sha256(path.read_bytes()).hexdigest())
    with warehouse_resource(settings).get_connection() as conn:
        rows, distinct, parts = conn.execute(
            f"SELECT count(*), count(DISTINCT _row_number), count(DISTINCT _partition) "
            f"FROM raw.{source} WHERE _source_file = ?", [path.name]).fetchone()
        assert parts == 1
        assert conn.execute(f"SELECT count(*) FROM raw.{source} WHERE _partition = ?",
                            [key]).fetchone()[0] == rows
    assert rows == distinct == _csv_rows(path)


def _kill_landing_run(cluster, instance, settings, path: Path, inbox: Path) -> dg.DagsterRun:
    """Drop ``path`` while holding the writer lock, kill the worker process whose landing
    step waits for it, and return the run once run monitoring has marked it failed."""
    # the lock is held here, as another writer on another host would hold it
    with writer_lock(str(settings.warehouse), cluster["LEADSCORE_WAREHOUSE_LOCK_URL"]):
        shutil.copyfile(path, inbox / f".{path.name}.part")
        os.rename(inbox / f".{path.name}.part", inbox / path.name)
        run = wait_for(lambda: next(iter(_file_runs(instance, {path.name})), None),
                       "the sensor's run for the new file", timeout=300)
        activity = psycopg2.connect(cluster["LEADSCORE_PG_ADMIN_URL"])
        activity.autocommit = True

        def run_waits_on_lock():
            pid = _run_pid(instance, run.run_id)
            if pid is None:
                return None
            with activity.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                            "AND wait_event_type = 'Lock'", (f"{LOCK_APPLICATION}:{pid}",))
                return pid if cur.fetchone()[0] else None

        try:
            # the run's landing step waits for the lock: it is in the middle of the run
            pid = wait_for(run_waits_on_lock, "the landing step to wait for the writer lock",
                           timeout=900)
        finally:
            activity.close()
        os.kill(pid, signal.SIGKILL)  # the worker process executing the run
        failed = wait_for(lambda: (r := instance.get_run_by_id(run.run_id)).status in TERMINAL
                          and r, "run monitoring to mark the run", timeout=300)
        assert failed.status == dg.DagsterRunStatus.FAILURE
    return failed


def _worker_versions(metrics_dir: Path) -> dict[str, set[str]]:
    """Per API worker process (its own metrics file): the model versions it answered with."""
    from prometheus_client.multiprocess import MultiProcessCollector

    out: dict[str, set[str]] = {}
    for file in metrics_dir.glob("counter_*.db"):
        pid = file.stem.split("_")[-1]
        versions = set()
        for metric in MultiProcessCollector._read_metrics([str(file)]).values():
            for sample in metric.samples:
                labels = dict(sample.labels)  # before accumulation: (name, value) pairs
                if (labels.get("endpoint", "").endswith("/leads/score")
                        and labels.get("status") == "200" and "version" in labels):
                    versions.add(labels["version"])
        out[pid] = versions
    return out


def test_promotion_followed_by_every_api_worker(cluster, landed):
    """The lead-conversion model is trained on the cluster (a run of it and what it reads,
    launched as the UI does) and registered on the tracking server; once every API worker
    serves the champion, a new version is made champion while requests keep coming: every
    worker follows, no request fails."""
    instance, _ = landed
    from leadscore_assets.definitions import defs
    from leadscore_assets.models.champion import champion_key

    graph = defs.resolve_asset_graph()
    selection = (dg.AssetSelection.assets(champion_key("lead_conversion")).upstream()
                 - dg.AssetSelection.groups("ingest"))
    run_id = profile.launch(cluster, asset_paths=[
        k.path for k in selection.resolve(graph)])
    run = wait_for(lambda: (r := instance.get_run_by_id(run_id)).status in TERMINAL and r,
                   "the training run", timeout=2400, every=10)
    assert run.status == dg.DagsterRunStatus.SUCCESS, _messages(instance, run_id)[-5:]

    name = registered_name("lead_conversion")
    client = MlflowClient(tracking_uri=cluster["LEADSCORE_MLFLOW_TRACKING_URI"])
    versions = client.search_model_versions(f"name = '{name}'")
    assert versions, "the training run registered no version"
    try:
        first = client.get_model_version_by_alias(name, "champion")
    except Exception:  # the gate kept the first version out (too little sample data)
        first = max(versions, key=lambda v: int(v.version))
        client.set_registered_model_alias(name, "champion", first.version)
    api = f"http://127.0.0.1:{cluster['LEADSCORE_API_PORT']}"
    lead = {"id": "lead-1", "business_type": "Dental", "business_size": "11-50",
            "utm_source": "google"}
    metrics_dir = Path(cluster["LEADSCORE_DATA_DIR"]) / "prometheus"
    workers = int(cluster["LEADSCORE_API_WORKERS"])

    def every_worker_serves(version: str) -> bool:
        answers = _worker_versions(metrics_dir)
        return len(answers) == workers and all(version in v for v in answers.values())

    def warm_up() -> bool:
        # new connections, so that requests reach every worker process
        for _ in range(10):
            httpx.post(f"{api}/v1/leads/score", json=lead, timeout=30)
        return every_worker_serves(first.version)

    wait_for(warm_up, "every API worker to serve the champion", timeout=600)

    failures: list[str] = []
    served: set[str] = set()
    stop = threading.Event()

    def hammer():
        with httpx.Client(base_url=api, limits=httpx.Limits(max_keepalive_connections=0),
                          timeout=30) as http:
            while not stop.is_set():
                response = http.post("/v1/leads/score", json=lead)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                else:
                    served.add(str(response.json()["version"]))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        copy = client.copy_model_version(f"models:/{name}/{first.version}", name)
        client.set_registered_model_alias(name, "champion", copy.version)
        wait_for(lambda: every_worker_serves(copy.version),
                 "every API worker to serve the new champion", timeout=300)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    assert served >= {first.version, copy.version}
