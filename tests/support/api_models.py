"""Small real models for the API's tests: trained on generated frames with a known signal,
saved as the project's bundles, logged and registered as the project's pyfunc in a temporary
MLflow store, with a serving snapshot beside them.

``build_model_store`` makes the store; ``tests/conftest.py`` builds it once per session (the
``model_store`` fixture) and tests only read it (``store_copy`` for one that moves aliases).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from api.config import ACTIVITY_CHURN, LEAD_CONVERSION, PLAN, SNAPSHOT_CHURN
from leadscore_core.registry import ModelRegistry, ensure_experiment
from leadscore_core.serving import Encoder, LeadscorePyfunc, ModelBundle
from leadscore_core.settings import Settings
from tests.support.mlflow_store import tracking_store

LEAD_FEATURES = {"business_type": "categorical", "business_size": "categorical",
                 "utm_source": "categorical", "utm_medium": "categorical",
                 "utm_campaign": "categorical"}
CUSTOMER_FEATURES = {"business_type": "categorical", "plan": "categorical",
                     "tenure_months": "numeric", "logins_30d": "numeric",
                     "support_tickets_90d": "numeric", "auto_renew": "boolean",
                     # a payment aggregate the profile does not declare: only the model knows it
                     "failed_payments_90d": "numeric"}
ACTIVITY_FEATURES = {"recency_days": "numeric", "frequency": "numeric",
                     "monetary": "numeric", "country": "categorical"}
PLANS = ["Business", "Elite", "MVP", "Now"]


# -- small real models -----------------------------------------------------------------------


def lead_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "business_type": rng.choice(["Cafe", "salon", "Gym", "Bakery", "Agency"], n),
        "business_size": rng.choice(["1-5", "6-20", "21-50", "50+"], n),
        "utm_source": rng.choice(["google", "Facebook", "newsletter", None], n),
        "utm_medium": rng.choice(["cpc", "email", "organic"], n),
        "utm_campaign": rng.choice(["spring", "summer", "brand"], n),
    })


def customer_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "business_type": rng.choice(["Cafe", "Salon", "Gym"], n),
        "plan": rng.choice(PLANS, n),
        "tenure_months": rng.integers(0, 48, n).astype(float),
        "logins_30d": rng.poisson(12, n).astype(float),
        "support_tickets_90d": rng.poisson(1, n).astype(float),
        "auto_renew": rng.choice([True, False], n),
        "failed_payments_90d": rng.poisson(0.3, n).astype(float),
    })


def activity_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "recency_days": rng.integers(0, 300, n).astype(float),
        "frequency": rng.integers(1, 40, n).astype(float),
        "monetary": rng.gamma(2.0, 300.0, n),
        "country": rng.choice(["United Kingdom", "France", "Germany"], n),
    })


def train_bundle(frame: pd.DataFrame, features: dict[str, str], y: np.ndarray, *,
                 task: str = "binary", classes: list[str] | None = None, rounds: int = 40,
                 seed: int = 0, calibration: dict | None = None) -> ModelBundle:
    encoder = Encoder.fit(frame, features, {n: n.replace("_", " ").title() for n in features})
    X = encoder.transform_frame(frame)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 7, "min_data_in_leaf": 10,
              "seed": seed, "num_threads": 1}
    if task == "multiclass":
        params.update(objective="multiclass", num_class=len(classes))
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=encoder.categorical_indices),
                        num_boost_round=rounds)
    bundle = ModelBundle(booster, encoder, task, classes or ["0", "1"], calibration, metadata={
        "trained_at": "2026-01-02T03:04:05+00:00", "metrics": {"roc_auc": 0.8 + seed / 100}})
    if task == "binary":
        bundle.set_tier_boundaries(ModelBundle.score(bundle.predict_proba(X)))
    return bundle


def lead_model(seed: int = 0) -> ModelBundle:
    frame = lead_frame(800, seed)
    logit = (frame.business_size.isin(["21-50", "50+"]) * 1.5
             + (frame.utm_medium == "cpc") * 1.0 - (frame.business_type == "Cafe") * 1.0)
    y = (np.random.default_rng(seed + 1).random(len(frame)) < 1 / (1 + np.exp(1 - logit)))
    # Platt-calibrated, as training does when it improves log loss
    return train_bundle(frame, LEAD_FEATURES, y.astype(int), seed=seed,
                        calibration={"method": "platt", "a": 0.8, "b": -0.2})


def plan_model() -> ModelBundle:
    frame = lead_frame(800, 7)
    y = frame.business_size.map({"1-5": 0, "6-20": 1, "21-50": 2, "50+": 3}).to_numpy()
    noise = np.random.default_rng(3).integers(0, 4, len(y))
    y = np.where(np.random.default_rng(4).random(len(y)) < 0.3, noise, y)
    return train_bundle(frame, LEAD_FEATURES, y, task="multiclass", classes=PLANS, rounds=20)


def snapshot_churn_model() -> ModelBundle:
    frame = customer_frame(800, 11)
    logit = frame.support_tickets_90d * 0.8 - frame.logins_30d * 0.1 + frame.failed_payments_90d
    y = np.random.default_rng(5).random(len(frame)) < 1 / (1 + np.exp(-logit))
    return train_bundle(frame, CUSTOMER_FEATURES, y.astype(int))


def activity_churn_model() -> ModelBundle:
    frame = activity_frame(800, 13)
    logit = frame.recency_days / 60 - frame.frequency / 10
    y = np.random.default_rng(6).random(len(frame)) < 1 / (1 + np.exp(-logit))
    return train_bundle(frame, ACTIVITY_FEATURES, y.astype(int))


def register(uri: str, name: str, bundle: ModelBundle, tmp: Path, *, promote: bool = True
             ) -> str:
    """Log the bundle as the project's pyfunc model, register it, optionally make it champion."""
    directory = bundle.save(tmp / f"{name}-{time.monotonic_ns()}")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    ensure_experiment(uri, tmp / "artifacts")
    mlflow.set_experiment("leadscore")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=LeadscorePyfunc(), artifacts={"bundle": str(directory)},
            registered_model_name=name, pip_requirements=["lightgbm", "pandas", "mlflow"])
    version = str(info.registered_model_version)
    if promote:
        ModelRegistry(uri).promote(name, version)
    return version


def write_snapshot(path: Path, frame: pd.DataFrame) -> None:
    """As Dagster publishes it: written beside, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), partial)
    os.replace(partial, path)


def make_settings(store: dict, **overrides) -> Settings:
    return Settings(data_dir=store["data_dir"], mlflow_tracking_uri=store["uri"], **overrides)


def wait_ready(client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"API not ready within {timeout}s: {client.get('/ready').text}")


def wait_for_challenger(client, name: str, version: str | None,
                        timeout: float = 20.0) -> None:
    """Until ``GET /v1/models`` says the API scores ``version`` in the shadow of ``name``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = {m["name"]: m for m in client.get("/v1/models").json()}
        if info[name].get("challenger") == version:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name}: challenger {version} not loaded: {info[name]}")


def leads_payload(frame: pd.DataFrame) -> list[dict]:
    return [{k: v for k, v in row.items() if v is not None and v == v}
            for row in frame.to_dict(orient="records")]


def build_model_store(tmp: Path) -> dict:
    """One MLflow store with all four models registered as champion, and a serving snapshot."""
    uri = tracking_store(tmp / "mlflow.db")
    bundles = {LEAD_CONVERSION: lead_model(), PLAN: plan_model(),
               SNAPSHOT_CHURN: snapshot_churn_model(), ACTIVITY_CHURN: activity_churn_model()}
    versions = {name: register(uri, name, b, tmp) for name, b in bundles.items()}
    customers = activity_frame(50, 21)
    customers.insert(0, "customer_id", [f"{17000 + i}.0" for i in range(50)])
    customers["as_of"] = "2026-01-01"
    return {"uri": uri, "tmp": tmp, "bundles": bundles, "versions": versions,
            "customers": customers}


def with_data_dir(store: dict, data_dir: Path) -> dict:
    """The store with a data folder of its own: the serving snapshot, and room for the
    prediction log of the apps that use it."""
    write_snapshot(data_dir / "serving" / "snapshot.parquet", store["customers"])
    return {**store, "data_dir": data_dir}
