"""The pages' server time with 10,000 open leads, beside the API's single-lead time.

The app (``api.app.create_app``: the same process and routes ``leadscore serve`` runs) is
called directly as an ASGI callable on one event loop, as uvicorn does, so the figure is the
server's own time per request, without sockets or a browser. Models: a lead-conversion and
a plan model trained with LightGBM on synthetic web-form leads and served from an in-memory
registry; the open leads are scored and published with the batch code (``scores/leads``'s
reason columns, the lead export) into a temporary data folder.

Targets: the lead list's first page under 100 ms, a what-if update under 20 ms. Each figure
is the median of ``--requests`` requests, best of ``--rounds`` interleaved rounds.

    uv run python bench/bench_ui.py [--leads 10000] [--rounds 5] [--requests 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import lightgbm as lgb
import numpy as np
import pandas as pd

from api.app import create_app
from api.config import LEAD_CONVERSION, PLAN, ApiSettings
from leadscore_core.serving import Encoder, ModelBundle
from leadscore_core.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_api_inprocess import call, served  # noqa: E402 - the app called as uvicorn calls it

from tests.support.ui import publish_open_leads  # noqa: E402 - the pages' files, as published

FEATURES = {"business_type": "categorical", "business_size": "categorical",
            "utm_source": "categorical", "utm_medium": "categorical",
            "utm_campaign": "categorical"}
PLANS = ["Business", "Elite", "MVP", "Now"]
TARGET_LIST_MS, TARGET_WHAT_IF_MS = 100.0, 20.0


def leads(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "business_type": rng.choice(["dental", "cafe", "salon", "gym", "bakery", "agency",
                                     "law firm", "clinic"], n),
        "business_size": rng.choice(["1-5", "6-20", "21-50", "50+"], n),
        "utm_source": rng.choice(["google", "facebook", "newsletter", "linkedin", None], n),
        "utm_medium": rng.choice(["cpc", "email", "organic", "social"], n),
        "utm_campaign": rng.choice(["spring", "summer", "brand", None], n),
    })


def train(frame: pd.DataFrame, y: np.ndarray, task: str) -> ModelBundle:
    encoder = Encoder.fit(frame, FEATURES)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 15, "seed": 0,
              "num_threads": 1}
    if task == "multiclass":
        params.update(objective="multiclass", num_class=len(PLANS))
    booster = lgb.train(params, lgb.Dataset(encoder.transform_frame(frame), y,
                                            categorical_feature=encoder.categorical_indices),
                        num_boost_round=200)
    bundle = ModelBundle(booster, encoder, task, PLANS if task == "multiclass" else ["0", "1"],
                         None, metadata={"trained_at": "2026-01-01T00:00:00+00:00"})
    if task == "binary":
        bundle.set_tier_boundaries(ModelBundle.score(bundle.predict_proba(
            encoder.transform_frame(frame))))
    return bundle


class MemoryRegistry:
    def __init__(self, bundles: dict[str, ModelBundle]):
        self.bundles = bundles

    def version_for_alias(self, name: str, alias: str) -> str | None:
        return "1" if name in self.bundles else None

    def load(self, name: str, version: str) -> ModelBundle:
        return self.bundles[name]


async def timed(app, **spec) -> tuple[int, bytes, float]:
    """``call`` with the server time it took."""
    started = time.perf_counter()
    status, body = await call(app, **spec)
    return status, body, time.perf_counter() - started


async def run(args: argparse.Namespace) -> None:
    train_frame = leads(4000, 1)
    logit = (train_frame.business_size.isin(["21-50", "50+"]) * 1.5
             + (train_frame.utm_medium == "cpc") - (train_frame.business_type == "cafe"))
    y = (np.random.default_rng(2).random(len(train_frame)) < 1 / (1 + np.exp(1 - logit)))
    plan_y = train_frame.business_size.map({"1-5": 0, "6-20": 1, "21-50": 2, "50+": 3})
    registry = MemoryRegistry({LEAD_CONVERSION: train(train_frame, y.astype(int), "binary"),
                               PLAN: train(train_frame, plan_y.to_numpy(), "multiclass")})
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        published = publish_open_leads(data_dir, registry.bundles[LEAD_CONVERSION],
                                       features=leads(args.leads, 42))
        app = create_app(Settings(data_dir=data_dir), registry=registry,
                         api_settings=ApiSettings(models=f"{LEAD_CONVERSION},{PLAN}",
                                                  prediction_log=False))
        async with served(app):
            lead = json.dumps({"business_type": "dental", "business_size": "21-50",
                               "utm_source": "google", "utm_medium": "cpc"}).encode()
            form = urlencode({"business_type": "dental", "business_size": "21-50",
                              "utm_source": "google", "utm_medium": "cpc",
                              "utm_campaign": ""}).encode()
            who = published.iloc[len(published) // 2]
            scenarios = {
                "API: one lead scored (POST /v1/leads/score)":
                    dict(method="POST", path="/v1/leads/score", body=lead),
                "lead list, first page (GET /ui/leads)":
                    dict(method="GET", path="/ui/leads"),
                "lead list, search fragment (htmx)":
                    dict(method="GET", path="/ui/leads",
                         query=urlencode({"q": who["company"]}), htmx=True),
                "lead list, tier + field filter fragment (htmx)":
                    dict(method="GET", path="/ui/leads",
                         query="tier=A&business_type=dental", htmx=True),
                "one lead page (GET /ui/leads/{id})":
                    dict(method="GET", path=f"/ui/leads/{who['lead_id']}"),
                "what-if update (POST /ui/score, htmx)":
                    dict(method="POST", path="/ui/score", body=form, htmx=True,
                         content_type=b"application/x-www-form-urlencoded"),
            }
            for spec in scenarios.values():  # warm-up: files read, templates compiled
                status, body = await call(app, **spec)
                assert status == 200, (spec, status)
                if spec["path"] != "/v1/leads/score":  # a page with a score or the lead list
                    assert b'data-testid="score"' in body or b"/ui/leads/lead-" in body, \
                        body[:300]
            best: dict[str, float] = {}
            for _ in range(args.rounds):
                for name, spec in scenarios.items():
                    times = [(await timed(app, **spec))[2] for _ in range(args.requests)]
                    best[name] = min(best.get(name, float("inf")), statistics.median(times))

    print(f"{args.leads:,} open leads; median server time per request, best of "
          f"{args.rounds} rounds of {args.requests}")
    for name, seconds in best.items():
        print(f"  {name:<50} {1000 * seconds:8.2f} ms")
    api = best["API: one lead scored (POST /v1/leads/score)"]
    first = best["lead list, first page (GET /ui/leads)"]
    what_if = best["what-if update (POST /ui/score, htmx)"]
    print(f"lead list first page {1000 * first:.1f} ms (target < {TARGET_LIST_MS:.0f} ms), "
          f"what-if {1000 * what_if:.1f} ms (target < {TARGET_WHAT_IF_MS:.0f} ms); "
          f"the API's single lead: {1000 * api:.2f} ms")
    missed = first * 1000 >= TARGET_LIST_MS or what_if * 1000 >= TARGET_WHAT_IF_MS
    raise SystemExit(1 if missed else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
