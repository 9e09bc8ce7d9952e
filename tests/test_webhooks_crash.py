"""Crash safety: the API process is SIGKILLed in the middle of a stream of Stripe deliveries.

A real uvicorn process serves the webhook; eight client threads deliver signed events until a
few hundred have been acknowledged, then the whole process group is killed. After a restart
(which recovers the dead process's open spool file), every event that got a 2xx is in the
payments inbox exactly once, and nothing is there that was not at least sent. Then the sender
does what Stripe does, delivering again every event it got no 2xx for, and after a clean
shutdown every event is landed (through the real raw asset) exactly once.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from dagster_duckdb import DuckDBResource

from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.ingest.readers import read_export
from leadscore_core.profiles import load_profiles

SECRET = "whsec_crash_test_5b8e2f0c9d1a"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, port: int) -> None:
        env = {**os.environ, "LEADSCORE_DATA_DIR": str(data_dir),
               "LEADSCORE_STRIPE_WEBHOOK_SECRET": SECRET, "LEADSCORE_API_MODELS": "",
               "LEADSCORE_API_PREDICTION_LOG": "false", "LEADSCORE_WEBHOOK_SEAL_RECORDS": "40",
               "LEADSCORE_WEBHOOK_SEAL_SECONDS": "3600"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.port = port
        self.log = (data_dir.parent / f"server-{time.monotonic_ns()}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "server exited at start-up"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("server not up within 60 s")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down (the lifespan seals the spool), then re-raises the signal
        assert self.proc.wait(30) in (0, -signal.SIGTERM)
        assert b"Application shutdown complete" in Path(self.log.name).read_bytes()


def charge_event(template: dict, charge: dict, i: int) -> bytes:
    event = copy.deepcopy(template)
    obj = {**copy.deepcopy(charge), "id": f"ch_crash_{i:05d}"}
    event.update(id=f"evt_crash_{i:05d}", type="charge.succeeded", data={"object": obj})
    return json.dumps(event, indent=2).encode()


def deliver(port: int, body: bytes, conn_cache: dict) -> int | None:
    """The status, or None when the server gave no answer."""
    t = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    try:
        conn = conn_cache.get("c") or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn_cache["c"] = conn
        conn.request("POST", "/v1/webhooks/stripe", body=body, headers={
            "content-type": "application/json", "stripe-signature": f"t={t},v1={mac}"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        conn_cache.pop("c", None)
        return None


def stored_ids(data_dir: Path) -> Counter:
    out: Counter = Counter()
    for path in sorted((data_dir / "inbox" / "payments").glob("*.jsonl")):
        export = read_export("payments", path, load_profiles())
        out.update(export.frame["event_id"])
    return out


def test_every_acknowledged_delivery_lands_exactly_once_after_a_sigkill(shared_data, tmp_path):
    objects = json.loads((shared_data / "stripe_payment_objects_subset.json").read_text())
    template = next(o for o in objects.values() if o["object"] == "event")
    charge = next(o for o in objects.values() if o["object"] == "charge")
    bodies = {f"evt_crash_{i:05d}": charge_event(template, charge, i) for i in range(3_000)}
    data_dir = tmp_path / "data"
    port = free_port()
    server = Server(data_dir, port)

    todo: queue.Queue = queue.Queue()
    for event_id in bodies:
        todo.put(event_id)
    acked: set[str] = set()
    unanswered: set[str] = set()  # sent, no answer (in flight when the process died)
    lock = threading.Lock()
    stop = threading.Event()

    def sender() -> None:
        cache: dict = {}
        while not stop.is_set():
            try:
                event_id = todo.get_nowait()
            except queue.Empty:
                return
            status = deliver(port, bodies[event_id], cache)
            with lock:
                if status == 200:
                    acked.add(event_id)
                else:
                    assert status is None, status
                    unanswered.add(event_id)
                    stop.set()  # the server is gone

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for t in threads:
        t.start()
    while len(acked) < 400 and any(t.is_alive() for t in threads):
        time.sleep(0.005)
    server.kill()
    for t in threads:
        t.join(30)
    sent = acked | unanswered
    assert len(acked) >= 400 and len(bodies) - len(sent) > 1_000  # killed mid-stream

    server = Server(data_dir, port)  # recovers the dead process's open file at start-up
    recovered = stored_ids(data_dir)
    assert all(n == 1 for n in recovered.values()), recovered.most_common(3)
    assert acked <= set(recovered)  # every acknowledged delivery is there
    # nothing is there that was not sent; at most the few in flight at the kill that were
    # already committed when it struck (their answer was lost with the process)
    assert set(recovered) - acked <= unanswered

    # Stripe retries what got no 2xx, and sometimes repeats what did
    cache: dict = {}
    for event_id in sorted(unanswered) + sorted(acked)[:25]:
        assert deliver(port, bodies[event_id], cache) == 200
    server.stop()

    final = stored_ids(data_dir)
    assert set(final) == sent and all(n == 1 for n in final.values())
    assert not list((data_dir / "spool" / "stripe").glob("*.open"))
    landing = LandingZone(root=str(data_dir), settle_seconds=0)
    warehouse = DuckDBResource(database=str(data_dir / "warehouse.duckdb"))
    for path in sorted((data_dir / "inbox" / "payments").glob("*.jsonl")):
        assert land_file("payments", path.name, landing=landing, warehouse=warehouse).success
    with warehouse.get_connection() as conn:
        landed = conn.execute("SELECT event_id, count(*) FROM raw.payments GROUP BY 1").fetchall()
    assert {e for e, _ in landed} == sent and {n for _, n in landed} == {1}

