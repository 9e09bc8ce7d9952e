"""Any subset of sources: a business with only customer snapshots gets its snapshot features
and the invoice side is skipped with its reason, not a failed run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster_duckdb import DuckDBResource

from leadscore_assets.cli import main
from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.landing import LandingZone
from leadscore_core.settings import Settings
from leadscore_core.warehouse import read_table
from tests.support.accounts import accounts_csv, materialise_snapshot_side

PROJECT_INSTANCE = Path(__file__).parents[1] / "dagster.yaml"

SNAPSHOT = accounts_csv(60)


def test_only_customer_snapshots_run_without_invoices(tmp_path: Path) -> None:
    root = tmp_path / "data"
    landing = LandingZone(root=str(root), settle_seconds=0)
    landing.inbox("customers").mkdir(parents=True)
    (landing.inbox("customers") / "accounts.csv").write_text(SNAPSHOT)
    os.utime(landing.inbox("customers") / "accounts.csv", (1_600_000_000, 1_600_000_000))
    warehouse = DuckDBResource(database=str(tmp_path / "w.duckdb"))
    assert land_file("customers", "accounts.csv", landing=landing, warehouse=warehouse).success

    result = materialise_snapshot_side(root, warehouse, tmp_path / "alerts.jsonl")
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


# -- `leadscore demo` with only customer snapshots -------------------------------------------


def leadscore(*args: str, data: Path, home: Path) -> subprocess.CompletedProcess:
    """The command as a person runs it, in its own process: the code location reads its
    settings (data folder, Dagster home) when it is first imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSCORE_")}
    env.update(LEADSCORE_DATA_DIR=str(data), DAGSTER_HOME=str(home))
    return subprocess.run([str(Path(sys.executable).parent / "leadscore"), *args], env=env,
                          capture_output=True, text=True, timeout=1800, check=False)


@pytest.fixture(scope="module")
def customers_only_demo(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("customers_only")
    data, home = root / "data", root / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(PROJECT_INSTANCE.read_text())
    written = CliRunner().invoke(main, ["sample-data", "--inbox", str(data / "inbox"),
                                        "--scale", "0.5"], catch_exceptions=False)
    assert written.exit_code == 0, written.output
    for source in ("leads", "payments", "invoices"):
        shutil.rmtree(data / "inbox" / source)
    [snapshot] = (data / "inbox" / "customers").iterdir()
    demo = leadscore("demo", data=data, home=home)
    return data, home, snapshot, demo


def test_a_customers_only_demo_writes_the_churn_export(customers_only_demo) -> None:
    data, _, snapshot, demo = customers_only_demo
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "== leads: inbox empty, nothing to land" in demo.stdout
    customers = pd.read_csv(snapshot, dtype=str)
    export = pd.read_csv(data / "exports" / "customer_churn_risk.csv", dtype=str,
                         keep_default_na=False)
    assert sorted(export["customer_id"]) == sorted(customers["customer_id"].unique())
    assert set(export["risk_model"]) == {"snapshot_churn"}
    assert set(export["risk_level"]) <= {"High", "Medium", "Low"}
    assert (export["activity_churn_probability"] == "").all()
    probability = export["snapshot_churn_probability"].astype(float)
    assert probability.between(0, 1).all() and probability.nunique() > 1
    assert (export["churn_probability"].astype(float) == probability).all()
    assert not (data / "exports" / "lead_scores.csv").exists()


def test_the_daemon_after_the_demo_requests_nothing_on_its_first_tick(
        customers_only_demo) -> None:
    """``make dev`` after ``make demo``: every sensor of the code location, evaluated on the
    demo's own instance with no cursor (as the daemon's first tick is), asks for no run, nor
    on the tick after: the lead models the demo ran with nothing to learn from (no leads)
    wait for leads to land."""
    from leadscore_assets.definitions import automation_sensor, defs
    from leadscore_assets.ingest.sensors import INBOX_SENSORS
    from leadscore_assets.models.checks import ModelRegistryResource
    from leadscore_assets.monitoring.automation import (
        RetrainPolicy,
        monitoring_automation_sensor,
        retraining_sensor,
    )

    data, home, _, demo = customers_only_demo
    assert demo.returncode == 0, demo.stdout + demo.stderr
    settings = Settings(data_dir=data)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs()  # the demo's runs and materialisations are here
        for sensor in (automation_sensor, monitoring_automation_sensor):
            evaluated = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, asset_selection=sensor.asset_selection)
            wanted = sorted(r.key.to_user_string() for r in evaluated.results
                            if r.true_subset.size)
            assert wanted == [], sensor.name
            again = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, asset_selection=sensor.asset_selection,
                cursor=evaluated.cursor)
            assert again.total_requested == 0, sensor.name
        resources = {"model_registry": ModelRegistryResource(
                         tracking_uri=settings.mlflow_uri),
                     "retrain_policy": RetrainPolicy(),
                     "landing": LandingZone.from_settings(settings)}
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            retrain = retraining_sensor(context)
            assert not retrain.run_requests, retrain.run_requests
            assert "no reason to retrain" in str(retrain.skip_reason)
        for source, sensor in INBOX_SENSORS.items():
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                tick = sensor(context)
            assert not tick.run_requests, (source, tick.run_requests)
