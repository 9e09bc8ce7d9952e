"""The pipeline stack the model, gate and score tests run on: hand-made clean tables with a
known signal (conversion follows the utm source, the plan the business size, churn the
engagement) in a temporary DuckDB file, a temporary MLflow store, and the assets run on them
in-process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from leadscore_assets.features.assets import feature_assets
from leadscore_assets.models.assets import model_assets
from leadscore_assets.models.champion import champion_assets
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.models.resources import MlflowTracking
from leadscore_assets.resources import SettingsResource
from leadscore_assets.scores.assets import score_assets
from leadscore_core.registry import MODELS, ModelRegistry
from tests.support.mlflow_store import tracking_store

PLANS = {"micro": "Business", "small": "Elite", "medium": "MVP", "large": "Now"}
SIZES = list(PLANS)
SOURCES = ["google", "facebook", "newsletter", "partner"]
TYPES = ["retail", "agency", "clinic"]
# Small, quick models: the point here is the plumbing, not the last point of ROC-AUC.
FAST = {"num_leaves": [7], "min_data_in_leaf": [10], "max_rounds": 80,
        "early_stopping_rounds": 15, "cv_folds": 3, "learning_rate": 0.1,
        # one thread: on a shared 2-core runner, two OpenMP threads mostly wait for each other
        "num_threads": 1, "tune": False}
MODEL_KEYS = {m: f"models__{m}" for m in MODELS}


# -- hand-made clean tables ------------------------------------------------------------------


def lineage(n: int) -> dict[str, object]:
    return {"_source_file": "handmade.csv", "_row_number": np.arange(1, n + 1),
            "_ingested_at": pd.Timestamp("2026-01-05")}


def make_clean_tables(seed: int = 3, n_leads: int = 900, n_customers: int = 400
                      ) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01")

    # leads: partner/newsletter convert, google/facebook rarely; the last weeks stay open
    created = start + pd.to_timedelta(np.sort(rng.uniform(0, 360, n_leads)), unit="D")
    source = rng.choice(SOURCES, n_leads)
    size = rng.choice(SIZES, n_leads)
    p_convert = np.select([source == "partner", source == "newsletter"], [0.75, 0.55], 0.12)
    converts = rng.random(n_leads) < p_convert
    emails = [f"lead{i}@example.com" for i in range(n_leads)]
    leads = pd.DataFrame({
        "lead_id": emails, "profile": "webform", "created_at": created, "email": emails,
        "converted": pd.Series(pd.NA, index=range(n_leads), dtype="boolean"),
        "business_type": rng.choice(TYPES, n_leads), "business_size": size,
        "utm_source": source, "utm_medium": rng.choice(["cpc", "email"], n_leads),
        "utm_campaign": rng.choice(["spring", "autumn", None], n_leads), **lineage(n_leads),
    })

    # payments: a converted lead pays within 20 days, its plan follows its size (mostly)
    payer = np.flatnonzero(converts)
    paid_at = created[payer] + pd.to_timedelta(rng.uniform(0.5, 20, len(payer)), unit="D")
    plan = np.array([PLANS[s] for s in size[payer]], dtype=object)
    noise = rng.random(len(payer)) < 0.1
    plan[noise] = rng.choice(list(PLANS.values()), noise.sum())
    payments = pd.DataFrame({
        "payment_id": [f"ch_{i}" for i in range(len(payer))], "object_type": "charge",
        "created_at": paid_at, "amount": 150.0, "amount_refunded": 0.0, "currency": "USD",
        "status": "succeeded", "failure_code": None, "customer_id": None,
        "customer_email": np.asarray(emails, dtype=object)[payer], "plan": plan,
        "setup_fee": False, **lineage(len(payer)),
    })
    failed = payments.head(40).assign(payment_id=lambda d: d["payment_id"] + "_f",
                                      status="failed", failure_code="card_declined")
    payments = pd.concat([payments, failed], ignore_index=True)

    # invoices: loyal customers buy all year; churners stop at a random month
    ids = [str(10001 + i) for i in range(n_customers)]
    churner = rng.random(n_customers) < 0.45
    stop = np.where(churner, rng.uniform(60, 330, n_customers), 400)
    rate = rng.uniform(0.05, 0.25, n_customers)  # invoices per day
    rows = []
    for i, cid in enumerate(ids):
        days = np.cumsum(rng.exponential(1 / rate[i], 200))
        days = days[(days < min(stop[i], 364))]
        for k, d in enumerate(days):
            qty = int(rng.integers(1, 12))
            rows.append((f"{i:04d}{k:03d}", f"SKU{rng.integers(1, 40)}", qty,
                         start + pd.Timedelta(days=float(d)), float(rng.uniform(1, 9)), cid,
                         "United Kingdom" if i % 3 else "France"))
    inv = pd.DataFrame(rows, columns=["invoice_no", "stock_code", "quantity", "invoice_date",
                                      "unit_price", "customer_id", "country"])
    inv.insert(2, "description", "item")
    inv["is_return"] = False
    inv["line_total"] = inv["quantity"] * inv["unit_price"]
    invoices = inv.assign(**lineage(len(inv)))

    # customer snapshots: churned accounts log in less and open more tickets
    churned = rng.random(n_customers) < 0.3
    customers = pd.DataFrame({
        "customer_id": ids, "profile": "saas_accounts",
        "created_at": start - pd.to_timedelta(rng.uniform(30, 900, n_customers), unit="D"),
        "email": [f"lead{i}@example.com" for i in range(n_customers)],
        "churned": churned,
        "business_type": rng.choice(TYPES, n_customers),
        "business_size": rng.choice(SIZES, n_customers),
        "plan": rng.choice(list(PLANS.values()), n_customers),
        "tenure_months": rng.integers(1, 36, n_customers).astype(float),
        "monthly_fee": rng.choice([150.0, 250.0, 350.0, 500.0], n_customers),
        "seats": rng.integers(1, 20, n_customers).astype(float),
        "logins_30d": np.where(churned, rng.poisson(3, n_customers),
                               rng.poisson(14, n_customers)).astype(float),
        "active_users_30d": rng.integers(1, 10, n_customers).astype(float),
        "support_tickets_90d": np.where(churned, rng.poisson(4, n_customers),
                                        rng.poisson(1, n_customers)).astype(float),
        "days_since_last_login": np.where(churned, rng.uniform(5, 40, n_customers),
                                          rng.uniform(0, 10, n_customers)),
        "auto_renew": rng.random(n_customers) < np.where(churned, 0.3, 0.8),
        **lineage(n_customers),
    })
    return {"leads": leads, "payments": payments, "invoices": invoices,
            "customers": customers}


def write_clean_warehouse(path: Path, tables: dict[str, pd.DataFrame]) -> None:
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS clean")
        for name, frame in tables.items():
            conn.register("frame", frame)
            conn.execute(f"CREATE OR REPLACE TABLE clean.{name} AS SELECT * FROM frame")
            conn.unregister("frame")


class Stack:
    """A temporary data folder, warehouse and MLflow store, and a way to run assets on them."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.warehouse = self.data / "warehouse.duckdb"
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "mlflow").mkdir(exist_ok=True)
        self.tracking_uri = tracking_store(self.data / "mlflow" / "mlflow.db")
        write_clean_warehouse(self.warehouse, make_clean_tables())
        self.registry = ModelRegistry(self.tracking_uri)

    def copy(self, root: Path) -> Stack:
        """A stack of its own for a test that changes the warehouse or the registry: the
        files copied (the registry's artifacts are read where they are)."""
        other = object.__new__(Stack)
        other.root, other.data = root, root / "data"
        shutil.copytree(self.data, other.data)
        other.warehouse = other.data / "warehouse.duckdb"
        other.tracking_uri = f"sqlite:///{other.data / 'mlflow' / 'mlflow.db'}"
        other.registry = ModelRegistry(other.tracking_uri)
        return other

    def resources(self, **gate: float) -> dict[str, object]:
        return {
            "warehouse": DuckDBResource(database=str(self.warehouse)),
            "settings": SettingsResource(data_dir=str(self.data)),
            "mlflow": MlflowTracking(mlflow_tracking_uri=self.tracking_uri,
                                     artifact_root=str(self.data / "mlflow" / "artifacts")),
            "model_registry": ModelRegistryResource(tracking_uri=self.tracking_uri, **gate),
        }

    def materialize(self, selection: dg.AssetSelection | None = None, ops: dict | None = None,
                    gate: dict | None = None) -> dg.ExecuteInProcessResult:
        everything = [*feature_assets, *model_assets, *champion_assets, *score_assets]
        return dg.materialize(everything, selection=selection,
                              resources=self.resources(**(gate or {})),
                              run_config={"ops": ops or {}}, raise_on_error=False)


def fast(**extra: object) -> dict:
    return {"config": {**FAST, **extra}}
