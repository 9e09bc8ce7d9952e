"""Hand-made SaaS account snapshots (``features.customer_snapshot`` rows) with a known truth,
and an account snapshot export run through cleaning and the snapshot features.

Churn follows a hidden engagement that two features (logins in 30 days, days since the last
login) measure equally well; the other features are noise. Shared by the tests of the
performance estimate and of score changes; ``account_rows`` also by the drift tests, whose
signal is the monthly fee.
"""

from pathlib import Path

import numpy as np
import pandas as pd

TRAINED_BEFORE = pd.Timestamp("2026-01-05")
FEATURES = ["business_type", "business_size", "tenure_months", "monthly_fee", "seats",
            "logins_30d", "active_users_30d", "support_tickets_90d", "days_since_last_login",
            "auto_renew"]


def account_rows(rng: np.random.Generator, churned: np.ndarray, logins: np.ndarray,
                 idle: np.ndarray, start: int = 0, ingested: pd.Timestamp = TRAINED_BEFORE,
                 fee: np.ndarray | None = None) -> pd.DataFrame:
    """``features.customer_snapshot`` rows around a signal drawn by the caller (churn,
    logins, days idle, and the monthly fee where it is part of the signal); the other
    features are drawn here, from ``rng``, as noise."""
    n = len(churned)
    ids = [f"c{start + i}" for i in range(n)]
    return pd.DataFrame({
        "customer_id": ids, "profile": "saas_accounts",
        "created_at": pd.Series([pd.Timestamp("2024-01-01")] * n, dtype="datetime64[us]"),
        "email": [f"{i}@example.com" for i in ids], "churned": churned,
        "business_type": rng.choice(["retail", "agency", "clinic"], n),
        "business_size": rng.choice(["micro", "small", "medium"], n),
        "plan": "MVP",
        "tenure_months": rng.integers(1, 36, n).astype(float),
        "monthly_fee": rng.choice([150.0, 250.0, 350.0, 500.0], n) if fee is None else fee,
        "seats": rng.integers(1, 20, n).astype(float),
        "logins_30d": logins.astype(float),
        "active_users_30d": rng.integers(1, 10, n).astype(float),
        "support_tickets_90d": rng.poisson(1, n).astype(float),
        "days_since_last_login": idle,
        "auto_renew": rng.random(n) < 0.7,
        "payments_matched": False,
        "_source_file": "handmade.csv", "_row_number": np.arange(1, n + 1),
        "_ingested_at": pd.Series([ingested] * n, dtype="datetime64[us]"),
    })


def accounts(n: int, seed: int, start: int = 0, ingested: pd.Timestamp = TRAINED_BEFORE
             ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    engagement = rng.normal(0, 1, n)
    logins = np.clip(np.rint(12 + 5 * (engagement + rng.normal(0, 0.4, n))), 0, None)
    idle = np.clip(15 - 6 * (engagement + rng.normal(0, 0.4, n)), 0, None)
    churned = rng.random(n) < 1 / (1 + np.exp(-(-1.0 - 2.0 * engagement)))
    return account_rows(rng, churned, logins, idle, start, ingested)


def now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def accounts_csv(n: int) -> str:
    """An account snapshot export (the ``saas_accounts`` profile) of ``n`` customers
    ``c0``.. with emails ``c0@x.io``.., a third of them churned."""
    return ("customer_id,email,plan,snapshot_date,churned,signup_date,business_type,"
            "business_size,tenure_months,monthly_fee,seats,logins_30d,active_users_30d,"
            "support_tickets_90d,days_since_last_login,auto_renew,company\n"
            + "".join(f"c{i},c{i}@x.io,MVP,2026-01-31,{'yes' if i % 3 else 'no'},"
                      f"2025-01-0{i % 9 + 1},Dental,1-10,{i},350,{i % 4 + 1},{i},{i % 5},"
                      f"{i % 2},{i % 30},yes,Co{i}\n"
                      for i in range(n)))


def materialise_snapshot_side(root: Path, warehouse, alerts: Path):
    """Every clean asset and the customer features over what has landed under ``root``
    (the Dagster result; failures kept in it, not raised)."""
    import dagster as dg

    from leadscore_assets.alerts import AlertChannel
    from leadscore_assets.clean.assets import CLEAN_ASSETS
    from leadscore_assets.features.assets import (
        customer_activity_assets,
        customer_snapshot_asset,
    )
    from leadscore_assets.resources import SettingsResource

    return dg.materialize(
        [*CLEAN_ASSETS.values(), customer_activity_assets, customer_snapshot_asset],
        resources={"warehouse": warehouse, "settings": SettingsResource(data_dir=str(root)),
                   "alerts": AlertChannel(log_path=str(alerts))},
        raise_on_error=False)
