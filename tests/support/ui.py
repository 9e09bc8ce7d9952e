"""A real registry (the API tests' four small models) plus the files Dagster publishes for the
pages: open leads scored by the batch code, the lead export, drift and realised-performance
summaries. Shared by the fragment tests and the browser tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from api.config import LEAD_CONVERSION
from leadscore_assets.scores.assets import (
    LEAD_EXPORT,
    export_csv,
    quartile_tiers,
    reason_columns,
)
from leadscore_core.published import open_leads_path, publish_file, realised_performance_path
from leadscore_core.reasons import bundle_link
from leadscore_core.serving import ModelBundle
from tests.support.api_models import lead_frame

COMPANIES = ["Acme Dental", "Bright Cafe", "Core Gym", "Delta Bakery", "Echo Agency"]


def publish_open_leads(data_dir: Path, bundle: ModelBundle, n: int = 60, seed: int = 5
                       ) -> pd.DataFrame:
    """Score ``n`` open leads as ``scores/leads`` does and publish its two files."""
    features = lead_frame(n, seed)
    X = bundle.encoder.transform_frame(features)
    probability = bundle.predict_proba(X)
    scores = ModelBundle.score(probability)
    tiers, _ = quartile_tiers(scores)
    ids = [f"lead-{i:03d}@example.com" for i in range(n)]
    frame = pd.concat([pd.DataFrame({
        "lead_id": pd.Series(ids, dtype="string"),
        "email": pd.Series(ids, dtype="string"),
        "created_at": pd.Timestamp("2026-03-01 06:07") + pd.to_timedelta(np.arange(n), "h"),
        "score": scores.astype("int64"), "tier": pd.Series(tiers, dtype="string"),
        "probability": probability.round(6)}),
        reason_columns(bundle.explain(X, top_k=3), bundle_link(bundle))], axis=1)
    frame = frame.sort_values(["score", "lead_id"], ascending=[False, True], ignore_index=True)
    frame["model_version"] = "1"
    frame["scored_at"] = pd.Timestamp("2026-03-05 10:00")
    export_csv(frame, data_dir / "exports" / LEAD_EXPORT)
    by_id = features.assign(lead_id=ids, name=[f"Person {i}" for i in range(n)],
                            company=[f"{COMPANIES[i % 5]} {i}" for i in range(n)])
    published = frame.merge(by_id, on="lead_id", how="left")
    publish_file(lambda tmp: published.to_parquet(tmp, index=False),
                 open_leads_path(data_dir / "serving" / "snapshot.parquet"))
    return published


def publish_monitoring(data_dir: Path) -> None:
    monitoring = data_dir / "monitoring"
    monitoring.mkdir(parents=True, exist_ok=True)
    (monitoring / "lead_conversion_drift.json").write_text(json.dumps({
        "model": LEAD_CONVERSION, "champion version": "1", "dataset_drifted": True,
        "share_drifted": 0.4, "drifted_features": ["utm_source", "business_size"]}))
    (monitoring / "lead_conversion_drift.html").write_text(
        "<!doctype html><title>Drift</title><h1>Drift report: lead conversion</h1>")
    realised_performance_path(monitoring).write_text(json.dumps([
        {"model": LEAD_CONVERSION, "version": "1", "predictions": 120, "positives": 40,
         "mean_predicted": 0.35, "observed_rate": 0.33, "roc_auc": 0.74, "brier": 0.2}]))


@pytest.fixture(scope="module")
def published(store: dict) -> pd.DataFrame:
    """The API tests' registry, plus the open leads and monitoring files published for it."""
    frame = publish_open_leads(store["data_dir"], store["bundles"][LEAD_CONVERSION])
    publish_monitoring(store["data_dir"])
    return frame
