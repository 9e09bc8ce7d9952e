"""The API's own cost per request, in process: no sockets, no load generator.

``bench_api.py`` measures the served API over HTTP, where the server's socket work and the
generator's share of the machine move the figures from run to run. This script calls the
Litestar app (``api.app.create_app``, lifespan included, prediction log on) directly as an
ASGI callable on one event loop, the way uvicorn does, and measures CPU time per request:

- ``/health``: the framework's own floor (routing, middleware, a response), the baseline;
- a single lead scored with reasons, and a 100-lead batch (per request and per lead).

Same model as ``bench_api.py``: a lead-conversion model trained by the project's training
code on the X Education leads (``../shared/data``; synthetic web-form leads when absent),
registered in a temporary MLflow store and made champion. Each figure is the best of
``--rounds`` rounds of ``--requests`` requests (the rounds are interleaved), so a slow moment
of the machine does not count.

    uv run python bench/bench_api_inprocess.py [--rounds 8] [--requests 2000] [--shadow]

With ``--shadow`` a challenger is registered too and scored in the champion's shadow; its
thread's CPU time counts in the process's, so the figures include what shadow scoring costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import MODEL, clean, register_model  # noqa: E402


def scope_for(method: str, path: str, body: bytes, query: str = "",
              content_type: bytes = b"application/json", htmx: bool = False) -> dict:
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", content_type),
               (b"content-length", str(len(body)).encode())]
    if htmx:
        headers.append((b"hx-request", b"true"))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000), "headers": headers, "state": {},
    }


async def call(app, method: str, path: str, body: bytes = b"", *, query: str = "",
               content_type: bytes = b"application/json", htmx: bool = False
               ) -> tuple[int, bytes]:
    """One request to the ASGI app, as uvicorn hands it over: (status, body)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope_for(method, path, body, query, content_type, htmx), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@contextlib.asynccontextmanager
async def served(app, timeout: float = 120.0):
    """The app with its lifespan started as uvicorn starts it, once ``/ready`` answers 200
    (the models loaded); shut down afterwards."""
    startup: asyncio.Queue = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    events: asyncio.Queue = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                        "state": {}}, startup.get, events.put))
    started = await events.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"app did not start: {started}")
    deadline = time.monotonic() + timeout
    while (await call(app, "GET", "/ready"))[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"models not loaded within {timeout:.0f} s")
        await asyncio.sleep(0.05)
    try:
        yield app
    finally:
        await startup.put({"type": "lifespan.shutdown"})
        await events.get()
        await lifespan


async def measure(app, bodies: dict[str, list[bytes]], rounds: int, requests: int,
                  shadow: bool = False) -> dict[str, float]:
    """Best per-request CPU seconds per scenario, over interleaved rounds."""
    async with served(app):
        return await _measure(app, bodies, rounds, requests, shadow)


async def _measure(app, bodies: dict[str, list[bytes]], rounds: int, requests: int,
                   shadow: bool) -> dict[str, float]:
    deadline = time.monotonic() + 120
    while shadow and not json.loads((await call(app, "GET", "/v1/models"))[1])[0]["challenger"]:
        if time.monotonic() > deadline:
            raise RuntimeError("challenger not loaded within 120 s")
        await asyncio.sleep(0.1)

    scenarios = [("no-op (/health)", "GET", "/health", None),
                 ("score, single lead", "POST", "/v1/leads/score", "single"),
                 ("score, 100-lead batch", "POST", "/v1/leads/score", "batch")]
    best: dict[str, float] = {}
    for _ in range(rounds):
        for label, method, path, kind in scenarios:
            pool = bodies[kind] if kind else [b""]
            n = requests if kind != "batch" else max(1, requests // 50)
            for body in pool[:20]:  # warm: first use of each code path
                await call(app, method, path, body)
            t0 = time.process_time()
            for i in range(n):
                status, _ = await call(app, method, path, pool[i % len(pool)])
                if status != 200:
                    raise RuntimeError(f"{label}: answered {status}")
            best[label] = min(best.get(label, float("inf")), (time.process_time() - t0) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000, help="per round (batches: /50)")
    parser.add_argument("--shadow", action="store_true",
                        help="register a challenger, scored in the champion's shadow (its CPU "
                             "time, on its own thread, counts in the figures)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="leadscore-bench-inproc-"))
    uri, features, version = register_model(tmp, challenger=args.shadow)
    rows = [{k: clean(v) for k, v in r.items()} for r in features.to_dict("records")]
    rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
    rows = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]
    bodies = {"single": [json.dumps(r).encode() for r in rows[:400]],
              "batch": [json.dumps(rows[i * 100:(i + 1) * 100]).encode() for i in range(40)]}
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    profile = "xeducation" if (shared / "xeducation_leads.csv").is_file() else "webform"
    os.environ.update({
        "LEADSCORE_DATA_DIR": str(tmp / "data"), "LEADSCORE_MLFLOW_TRACKING_URI": uri,
        "LEADSCORE_API_MODELS": MODEL, "LEADSCORE_LEAD_PROFILE": profile,
        "LEADSCORE_API_KEY": "", "LEADSCORE_API_PREDICTION_LOG": "true",
        "LEADSCORE_API_SHADOW": str(args.shadow).lower()})

    import uvloop

    from api.app import create_app

    app = create_app()
    best = uvloop.run(measure(app, bodies, args.rounds, args.requests, args.shadow))
    if args.shadow:
        shadow = app.state.shadow
        print(f"shadow scoring: {shadow.scored:,} predictions answered by the challenger, "
              f"{shadow.skipped:,} logged without it")
    floor = best["no-op (/health)"]
    print(f"\nin-process CPU per request, best of {args.rounds} rounds (model version "
          f"{version}):")
    for label, seconds in best.items():
        per_lead = (f"   {seconds / 100 * 1e6:8.2f} us a lead" if "batch" in label else "")
        print(f"  {label:<24} {seconds * 1e6:9.1f} us   {seconds / floor:5.2f}x the no-op"
              f"{per_lead}")
    print(f"  single lead as a share of the no-op's rate: {floor / best['score, single lead']:.2f}")


if __name__ == "__main__":
    main()
