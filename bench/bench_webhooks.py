"""Stripe webhook deliveries under sustained load, next to the same server's lead scoring.

One ``leadscore serve`` worker (lead-conversion champion trained with the project's training
code, as in ``bench_api.py``; prediction log on; Stripe secret set) on a free loopback port.
An async Python client (aiohttp) delivers signed Stripe events, each a distinct ``charge``
event built from ``../shared/data``'s Stripe fixture (a synthetic charge when absent), signed
per delivery with Stripe's scheme (HMAC-SHA256 over ``timestamp.payload``), at a fixed
arrival rate (default 200/s) from ``--concurrency`` (16) connections for ``--seconds`` (60).
Latency is measured from each delivery's scheduled time, so a stall shows in the
percentiles instead of slowing the schedule down.

Then the server is stopped cleanly (the spool seals its last file) and every sealed file in
the payments inbox is read with the payments reader: an acknowledged event missing there is
lost, one found twice is duplicated. The same client then sends single leads to
``/v1/leads/score`` of the same server at the same rate, and both endpoints once more at
full speed (closed loop), and prints the figures side by side. Targets: 0 lost, 0
duplicated, p99 < 20 ms at 200 deliveries/s.

    uv run python bench/bench_webhooks.py [--rate 200] [--seconds 60] [--concurrency 16]
                                          [--no-pin]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import (  # noqa: E402 - the same model, servers and closed-loop client
    MODEL,
    SHARED,
    bodies_for,
    clean,
    cores,
    free_port,
    load,
    register_model,
    server_cpu_meter,
    start,
    wait_until_up,
)

SECRET = "whsec_bench_0c4f9a7e2d5b8e1f"


def event_template() -> tuple[dict, dict]:
    path = SHARED / "stripe_payment_objects_subset.json"
    if path.is_file():
        objects = json.loads(path.read_text())
        event = next(o for o in objects.values() if o["object"] == "event")
        charge = next(o for o in objects.values() if o["object"] == "charge")
        return event, charge
    event = {"object": "event", "api_version": "2024-06-20", "created": 1721948530,
             "livemode": False, "pending_webhooks": 1, "request": {"id": None}}
    charge = {"object": "charge", "amount": 15000, "currency": "usd", "status": "succeeded",
              "created": 1721948530, "billing_details": {"email": "a@example.com"}}
    return event, charge


def stripe_bodies(n: int) -> list[tuple[str, bytes]]:
    template, charge = event_template()
    out = []
    for i in range(n):
        event = copy.deepcopy(template)
        event.update(id=f"evt_bench_{i:07d}", type="charge.succeeded",
                     data={"object": {**charge, "id": f"ch_bench_{i:07d}"}})
        out.append((event["id"], json.dumps(event, indent=2).encode()))
    return out


def signed(body: bytes) -> dict[str, str]:
    t = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "stripe-signature": f"t={t},v1={mac}"}


class Phase:
    """What one load phase's connections saw: each request's latency, the acknowledged
    keys, the errors by status."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.acked: list[str] = []
        self.errors: Counter = Counter()

    async def post(self, session, url: str, key: str, body: bytes, headers: dict,
                   since: float) -> None:
        """Send one request; its latency is counted from ``since``."""
        import aiohttp

        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except aiohttp.ClientError as exc:
            status = type(exc).__name__
        self.latencies.append(time.perf_counter() - since)
        if status == 200:
            self.acked.append(key)
        else:
            self.errors[str(status)] += 1

    def figures(self, elapsed: float) -> dict:
        """Requests/s and latency percentiles (ms), with the errors and acks."""
        lat = np.asarray(self.latencies) * 1000
        return {"requests": len(lat), "rps": len(lat) / elapsed,
                "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                "max": float(lat.max()), "errors": dict(self.errors), "acked": self.acked}


async def paced(url: str, bodies: list[tuple[str, bytes]], rate: float, concurrency: int,
                sign: bool) -> dict:
    """``len(bodies)`` requests at ``rate`` per second from ``concurrency`` connections;
    latency from each request's scheduled time."""
    import aiohttp

    phase = Phase()
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter() + 0.2

        async def client() -> None:
            nonlocal next_index
            while next_index < len(bodies):
                i = next_index
                next_index += 1
                due = started + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                key, body = bodies[i]
                headers = signed(body) if sign else {"content-type": "application/json"}
                await phase.post(session, url, key, body, headers, max(due, started))

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return phase.figures(elapsed)


def landed_event_ids(data_dir: Path) -> Counter:
    from leadscore_assets.ingest.readers import read_export
    from leadscore_core.profiles import load_profiles

    found: Counter = Counter()
    profiles = load_profiles()
    for path in sorted((data_dir / "inbox" / "payments").glob("*.jsonl")):
        found.update(read_export("payments", path, profiles).frame["event_id"])
    return found


def line(what: str, r: dict) -> str:
    errors = sum(r["errors"].values()) if isinstance(r["errors"], dict) else r["errors"]
    return (f"  {what:<44} {r['rps']:>8,.0f} req/s  p50 {r['p50']:>7.2f} ms  "
            f"p99 {r['p99']:>7.2f} ms  errors {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="sustained for")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the server and the client to different cores")
    args = parser.parse_args()
    server_cpu, client_cpu = ([], []) if args.no_pin else cores()
    tmp = Path(tempfile.mkdtemp(prefix="leadscore-bench-webhooks-"))
    data_dir = tmp / "data"
    process = None
    try:
        uri, features, _ = register_model(tmp)
        rows = [{k: clean(v) for k, v in r.items()} for r in features.to_dict("records")]
        rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
        lead_bodies = [(str(i), b) for i, b in enumerate(bodies_for(rows, 1, "api"))]
        n = int(args.rate * args.seconds)
        events = stripe_bodies(n)
        port = free_port()
        log = tmp / "api.log"
        profile = "xeducation" if (SHARED / "xeducation_leads.csv").is_file() else "webform"
        process = start(
            [*server_cpu, str(Path(sys.executable).parent / "leadscore"), "serve",
             "--port", str(port), "--workers", "1"],
            {"LEADSCORE_DATA_DIR": str(data_dir), "LEADSCORE_MLFLOW_TRACKING_URI": uri,
             "LEADSCORE_API_MODELS": MODEL, "LEADSCORE_LEAD_PROFILE": profile,
             "LEADSCORE_API_KEY": "", "LEADSCORE_STRIPE_WEBHOOK_SECRET": SECRET}, log)
        url = f"http://127.0.0.1:{port}"
        if client_cpu:
            os.sched_setaffinity(0, {int(client_cpu[-1])})
        asyncio.run(wait_until_up(f"{url}/ready", process, log))
        meter = server_cpu_meter(process)
        print(f"one server worker{' on CPU ' + server_cpu[-1] if server_cpu else ''}, client"
              f"{' on CPU ' + client_cpu[-1] if client_cpu else ''}; {n:,} signed Stripe "
              f"deliveries at {args.rate:.0f}/s for {args.seconds:.0f} s, concurrency "
              f"{args.concurrency}; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

        cpu0 = meter() if meter else float("nan")
        hooks = asyncio.run(paced(f"{url}/v1/webhooks/stripe", events, args.rate,
                                  args.concurrency, sign=True))
        cpu_hook = ((meter() if meter else float("nan")) - cpu0) / max(1, hooks["requests"])
        scoring_n = int(args.rate * min(args.seconds, 15))
        scoring = asyncio.run(paced(f"{url}/v1/leads/score",
                                    [lead_bodies[i % len(lead_bodies)] for i in
                                     range(scoring_n)], args.rate, args.concurrency,
                                    sign=False))
        extra = stripe_bodies(n + 20_000)[n:]  # distinct events for the closed loop
        closed_hooks = asyncio.run(load_signed(f"{url}/v1/webhooks/stripe", extra,
                                               args.concurrency, 5.0))
        closed_score = asyncio.run(load(f"{url}/v1/leads/score",
                                        [b for _, b in lead_bodies], args.concurrency, 5.0,
                                        200_000))
        os.killpg(process.pid, signal.SIGTERM)  # a clean stop seals the last spool file
        process.wait(60)

        found = landed_event_ids(data_dir)
        acked = set(hooks["acked"]) | set(closed_hooks["acked"])
        lost = len(acked - set(found))
        duplicated = sum(1 for c in found.values() if c > 1)
        print(line(f"webhook, paced {args.rate:.0f}/s x {args.seconds:.0f} s", hooks)
              + f"  max {hooks['max']:.1f} ms  server CPU {cpu_hook * 1e6:,.0f} us/delivery")
        print(line(f"single-lead scoring, paced {args.rate:.0f}/s x {scoring_n / args.rate:.0f} s",
                   scoring) + f"  max {scoring['max']:.1f} ms")
        print(line(f"webhook, closed loop c={args.concurrency} (capacity)", closed_hooks))
        print(line(f"single-lead scoring, closed loop c={args.concurrency} (capacity)",
                   closed_score))
        files = sorted((data_dir / "inbox" / "payments").glob("*.jsonl"))
        print(f"  acknowledged {len(acked):,}, landed {len(found):,} distinct event ids in "
              f"{len(files)} sealed files: lost {lost}, duplicated {duplicated}")
        ok = (lost == 0 and duplicated == 0 and hooks["p99"] < 20.0 and not hooks["errors"]
              and hooks["rps"] >= 0.95 * args.rate)
        print(f"target (0 lost, 0 duplicated, no errors, p99 < 20 ms at {args.rate:.0f}/s): "
              f"{'met' if ok else 'MISSED'}")
        if not ok:
            sys.exit(1)
    finally:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


async def load_signed(url: str, bodies: list[tuple[str, bytes]], concurrency: int,
                      seconds: float) -> dict:
    """Closed loop for signed deliveries: each connection sends its next event when
    answered, for ``seconds``."""
    import aiohttp

    phase = Phase()
    it = iter(bodies)
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        started = time.perf_counter()

        async def client() -> None:
            for key, body in it:
                if time.monotonic() >= deadline:
                    return
                await phase.post(s, url, key, body, signed(body), time.perf_counter())

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return phase.figures(elapsed)


if __name__ == "__main__":
    main()
