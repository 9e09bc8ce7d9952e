"""A real registry (the API tests' four small models) plus the files Dagster publishes for the
pages: open leads scored by the batch code, the lead export, drift and realised-performance
summaries. Shared by the fragment tests and the browser tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from api.config import ACTIVITY_CHURN, LEAD_CONVERSION, SNAPSHOT_CHURN
from api.snapshot import customer_key
from leadscore_assets.scores.assets import (
    CUSTOMER_EXPORT,
    LEAD_EXPORT,
    customer_rows,
    export_csv,
    scored_leads_frame,
)
from leadscore_core.horizons import churn_horizons
from leadscore_core.money import currency_counts, publish_payment_currencies
from leadscore_core.profiles import load_profiles
from leadscore_core.published import (
    customer_accounts_path,
    open_leads_path,
    publish_file,
    realised_over_time_path,
    realised_performance_path,
)
from leadscore_core.serving import ModelBundle
from leadscore_core.settings import Settings
from leadscore_core.warehouse import snapshot_dir, snapshot_path
from tests.support.api_models import customer_frame, lead_frame

COMPANIES = ["Acme Dental", "Bright Cafe", "Core Gym", "Delta Bakery", "Echo Agency"]


def publish_open_leads(data_dir: Path, bundle: ModelBundle, n: int = 60, seed: int = 5,
                       features: pd.DataFrame | None = None) -> pd.DataFrame:
    """Score open leads (``features``; default ``n`` of the API tests' ``lead_frame``) as
    ``scores/leads`` does and publish its two files (the pages' benchmark uses it too)."""
    features = lead_frame(n, seed) if features is None else features
    n = len(features)
    ids = [f"lead-{i:03d}@example.com" for i in range(n)]
    frame, _ = scored_leads_frame(features.assign(
        lead_id=ids, email=ids,
        created_at=pd.Timestamp("2026-03-01 06:07") + pd.to_timedelta(np.arange(n), "h")),
        bundle, "1")
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
    realised_over_time_path(monitoring).write_text(json.dumps(OVER_TIME))


# realised ROC-AUC per week of prediction time as ``monitoring/realised_performance``
# publishes it: three weeks, the last with one kind of outcome only (nothing realised yet)
OVER_TIME = [
    {"model": "lead_conversion", "window_start": start, "window_end": end, "versions": "1",
     "predictions": n, "positives": k, "roc_auc": auc, "estimated_roc_auc": est,
     "estimated_low": est - 0.06, "estimated_high": est + 0.05}
    for start, end, n, k, auc, est in (
        ("2026-02-02", "2026-02-08", 40, 13, 0.76, 0.75),
        ("2026-02-09", "2026-02-15", 44, 15, 0.71, 0.74),
        ("2026-03-02", "2026-03-08", 36, 0, None, 0.73))]


# account-snapshot customers (Telco-style ids), and activity customers who also have one
SNAPSHOT_IDS = [f"{7590 + i}-ACCT{i:02d}" for i in range(30)] + [
    str(17040 + i) for i in range(10)]


def customer_profile(settings: Settings):
    """The customer profile the API loads (the snapshot model's horizon is its)."""
    return load_profiles(settings.user_profiles_dir)[settings.profile_name("customers")]


def publish_customers(data_dir: Path, store: dict) -> pd.DataFrame:
    """The account snapshots' features and ``scores/customers``' rows (both churn models,
    one risk level each), published as the features and scores stages publish them."""
    settings = Settings(data_dir=data_dir)
    published = snapshot_dir(settings.warehouse)
    accounts = customer_frame(len(SNAPSHOT_IDS), 31)
    accounts.insert(0, "customer_id", SNAPSHOT_IDS)
    accounts["email"] = [f"account{i}@example.com" for i in range(len(accounts))]
    published.mkdir(parents=True, exist_ok=True)
    for target in (snapshot_path(published, "features.customer_snapshot"),
                   customer_accounts_path(settings.serving_snapshot)):
        publish_file(lambda tmp: accounts.to_parquet(tmp, index=False), target)
    activity = store["customers"]
    columns = {}
    for key, name, frame in (("activity_churn", ACTIVITY_CHURN, activity),
                             ("snapshot_churn", SNAPSHOT_CHURN, accounts)):
        probability = store["bundles"][name].predict_frame(frame)
        ids = pd.Index([customer_key(v) for v in frame["customer_id"]])
        columns[key] = pd.Series(np.round(probability, 6), index=ids)
    versions = {"activity_churn": store["versions"][ACTIVITY_CHURN],
                "snapshot_churn": store["versions"][SNAPSHOT_CHURN]}
    rows = customer_rows(columns, versions, settings.churn_high, settings.churn_medium,
                         churn_horizons(settings, customer_profile(settings)))
    rows["scored_at"] = pd.Timestamp("2026-03-05 10:00")
    export_csv(rows, data_dir / "exports" / CUSTOMER_EXPORT)
    publish_file(lambda tmp: rows.to_parquet(tmp, index=False),
                 snapshot_path(published, "scores.customers"))
    return rows


@pytest.fixture(scope="module")
def published(store: dict) -> pd.DataFrame:
    """The API tests' registry, plus the open leads, the customers' scores and the monitoring
    files published for it."""
    frame = publish_open_leads(store["data_dir"], store["bundles"][LEAD_CONVERSION])
    publish_customers(store["data_dir"], store)
    publish_monitoring(store["data_dir"])
    # as clean/payments publishes it: every payment in USD, two of them bought a plan
    publish_payment_currencies(currency_counts(["USD"] * 3, ["Business", None, "Now"]),
                               store["data_dir"] / "serving" / "snapshot.parquet")
    return frame
