"""Any subset of sources: a business with only customer snapshots gets its snapshot features
and the invoice side is skipped with its reason, not a failed run."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import AlertChannel
from leadscore_assets.clean.assets import CLEAN_ASSETS
from leadscore_assets.features.assets import customer_activity_assets, customer_snapshot_asset
from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.resources import SettingsResource
from leadscore_core.warehouse import read_table

SNAPSHOT = ("customer_id,email,plan,snapshot_date,churned,signup_date,business_type,"
            "business_size,tenure_months,monthly_fee,seats,logins_30d,active_users_30d,"
            "support_tickets_90d,days_since_last_login,auto_renew,company\n"
            + "".join(f"c{i},c{i}@x.io,MVP,2026-01-31,{'yes' if i % 3 else 'no'},"
                      f"2025-01-0{i % 9 + 1},Dental,1-10,{i},350,{i % 4 + 1},{i},{i % 5},"
                      f"{i % 2},{i % 30},yes,Co{i}\n"
                      for i in range(60)))


def test_only_customer_snapshots_run_without_invoices(tmp_path: Path) -> None:
    root = tmp_path / "data"
    landing = LandingZone(root=str(root), settle_seconds=0)
    landing.inbox("customers").mkdir(parents=True)
    (landing.inbox("customers") / "accounts.csv").write_text(SNAPSHOT)
    os.utime(landing.inbox("customers") / "accounts.csv", (1_600_000_000, 1_600_000_000))
    warehouse = DuckDBResource(database=str(tmp_path / "w.duckdb"))
    assert land_file("customers", "accounts.csv", landing=landing, warehouse=warehouse).success

    result = dg.materialize(
        [*CLEAN_ASSETS.values(), customer_activity_assets, customer_snapshot_asset],
        resources={"warehouse": warehouse, "settings": SettingsResource(data_dir=str(root)),
                   "alerts": AlertChannel(log_path=str(tmp_path / "alerts.jsonl"))},
        raise_on_error=False)
    assert result.success
    materialised = {e.asset_key.to_user_string()
                    for e in result.get_asset_materialization_events()}
    assert "features/customer_snapshot" in materialised
    assert "features/customer_activity" not in materialised
    [observation] = [e.event_specific_data.asset_observation for e in result.all_events
                     if e.event_type_value == "ASSET_OBSERVATION"
                     and e.asset_key == dg.AssetKey(["features", "customer_activity"])]
    assert "no invoice lines have landed" in observation.metadata["skipped"].value
    with warehouse.get_connection() as conn:
        assert len(read_table(conn, "features.customer_snapshot")) == 60
