"""The code location loads, and its asset graph is exactly the one this file describes.

The expected graph below is written by hand: a change to an asset's key, group, inputs or
automation shows up here in review instead of silently in production.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from leadscore_assets.definitions import defs
from leadscore_assets.resources import WAREHOUSE_POOL

ROOT = Path(__file__).resolve().parents[1]

# asset -> (group, upstream assets)
EXPECTED_GRAPH: dict[str, tuple[str, set[str]]] = {
    "raw/leads": ("ingest", set()),
    "raw/payments": ("ingest", set()),
    "raw/invoices": ("ingest", set()),
    "raw/customers": ("ingest", set()),
    "raw/predictions": ("ingest", set()),
    "clean/leads": ("clean", {"raw/leads"}),
    "clean/payments": ("clean", {"raw/payments"}),
    "clean/invoices": ("clean", {"raw/invoices"}),
    "clean/customers": ("clean", {"raw/customers"}),
    "features/lead_features": ("features", {"clean/leads", "clean/payments"}),
    "features/plan_labels": ("features", {"clean/payments", "features/lead_features"}),
    "features/customer_activity": ("features", {"clean/invoices"}),
    "features/customer_activity_latest": ("features", {"clean/invoices"}),
    "features/customer_snapshot": ("features", {"clean/customers", "clean/payments"}),
    "models/lead_conversion": ("models", {"features/lead_features"}),
    "models/plan": ("models", {"features/plan_labels"}),
    "models/activity_churn": ("models", {"features/customer_activity"}),
    "models/snapshot_churn": ("models", {"features/customer_snapshot"}),
    # promotion is part of the graph: each champion follows its model's training
    **{f"models/{m}/champion": ("models", {f"models/{m}"})
       for m in ("lead_conversion", "plan", "activity_churn", "snapshot_churn")},
    "scores/leads": ("scores", {"features/lead_features", "models/lead_conversion/champion"}),
    "scores/customers": ("scores", {
        "features/customer_activity_latest", "features/customer_snapshot",
        "models/activity_churn/champion", "models/snapshot_churn/champion",
    }),
    "scores/lead_changes": ("scores", {"scores/leads"}),
    "scores/customer_changes": ("scores", {"scores/customers"}),
    "serving/customer_activity_snapshot": ("serving", {"features/customer_activity_latest"}),
    "monitoring/lead_conversion_drift": ("monitoring", {
        "features/lead_features", "models/lead_conversion/champion", "raw/predictions"}),
    "monitoring/plan_drift": ("monitoring", {
        "features/plan_labels", "models/plan/champion", "raw/predictions"}),
    "monitoring/activity_churn_drift": ("monitoring", {
        "features/customer_activity", "features/customer_activity_latest",
        "models/activity_churn/champion", "raw/predictions"}),
    "monitoring/snapshot_churn_drift": ("monitoring", {
        "features/customer_snapshot", "models/snapshot_churn/champion", "raw/predictions"}),
    "monitoring/realised_performance": ("monitoring", {
        "features/customer_activity_latest", "features/customer_snapshot",
        "features/lead_features", "raw/predictions"}),
    "monitoring/shadow_evidence": ("monitoring", {
        "features/customer_activity_latest", "features/customer_snapshot",
        "features/lead_features", "features/plan_labels", "raw/predictions"}),
    "monitoring/lead_conversion_estimated_performance": ("monitoring", {
        "features/lead_features", "models/lead_conversion/champion", "raw/predictions"}),
    "monitoring/activity_churn_estimated_performance": ("monitoring", {
        "features/customer_activity", "features/customer_activity_latest",
        "models/activity_churn/champion", "raw/predictions"}),
    "monitoring/snapshot_churn_estimated_performance": ("monitoring", {
        "features/customer_snapshot", "models/snapshot_churn/champion", "raw/predictions"}),
}

# (asset, check) -> blocking
EXPECTED_CHECKS: dict[tuple[str, str], bool] = {
    **{(f"clean/{s}", "schema"): True for s in ("leads", "payments", "invoices", "customers")},
    **{(f"clean/{s}", "raw_rows_accounted_for"): True
       for s in ("leads", "payments", "invoices", "customers")},
    **{(f"clean/{s}", "newest_export_row_count"): False
       for s in ("leads", "payments", "invoices", "customers")},
    ("clean/payments", "succeeded_payment_emails_match_leads"): False,
    ("clean/invoices", "invoice_customers_exist"): False,
    # the gate's verdict, recorded by the champion asset; it changes nothing and a challenger
    # that loses is a green outcome, so it blocks nothing
    **{(f"models/{m}/champion", "champion_gate"): False
       for m in ("lead_conversion", "plan", "activity_churn", "snapshot_churn")},
    **{(f"monitoring/{m}_drift", "drift_within_bounds"): False
       for m in ("lead_conversion", "plan", "activity_churn", "snapshot_churn")},
}

EXPECTED_SENSORS = {
    "leads_inbox_sensor", "payments_inbox_sensor", "invoices_inbox_sensor",
    "customers_inbox_sensor", "alert_on_run_failure", "automation",
    "predictions_inbox_sensor", "retraining_sensor", "monitoring_automation_sensor",
    "shadow_gate_sensor",
}

# Assets that write DuckDB must be in the single-writer pool.
WAREHOUSE_WRITERS = {k for k in EXPECTED_GRAPH if k.split("/")[0] in
                     {"raw", "clean", "features", "scores"}}


@pytest.fixture(scope="module")
def graph():
    return defs.resolve_asset_graph()


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_asset_graph_matches_snapshot(graph):
    actual = {
        key.to_user_string(): (
            graph.get(key).group_name,
            {p.to_user_string() for p in graph.get(key).parent_keys},
        )
        for key in graph.get_all_asset_keys()
    }
    assert actual == EXPECTED_GRAPH


def test_checks_and_blocking_match_snapshot():
    actual = {}
    for checks_def in [*defs.asset_checks, *defs.assets]:
        for spec in getattr(checks_def, "check_specs", []):
            actual[(spec.asset_key.to_user_string(), spec.name)] = spec.blocking
    assert actual == EXPECTED_CHECKS


def test_sensors_match_snapshot():
    assert {s.name for s in defs.sensors} == EXPECTED_SENSORS


def test_raw_assets_are_partitioned_per_file(graph):
    for source in ("leads", "payments", "invoices", "customers"):
        partitions = graph.get(dg.AssetKey(["raw", source])).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition)
        assert partitions.name == f"raw_{source}_files"


def test_warehouse_writers_share_the_single_writer_pool():
    def pool(assets_def: dg.AssetsDefinition) -> str | None:
        node = assets_def.node_def  # a graph-backed asset holds the pool on its one op
        ops = list(node.iterate_op_defs()) if isinstance(node, dg.GraphDefinition) else [node]
        [found] = {op.pool for op in ops}
        return found

    pools = {
        key.to_user_string(): pool(assets_def)
        for assets_def in defs.assets if isinstance(assets_def, dg.AssetsDefinition)
        for key in assets_def.keys
    }
    missing = {k for k in WAREHOUSE_WRITERS if pools.get(k) != WAREHOUSE_POOL}
    assert not missing, f"not in pool {WAREHOUSE_POOL}: {sorted(missing)}"
    # training, promotion and drift read published snapshots: they never hold the pool
    readers = {k for k in pools if k.startswith("models/") or k.endswith("_drift")}
    assert len(readers) == 12
    assert {k: pools[k] for k in readers if pools[k]} == {}


def test_automation_policy(graph):
    labels = {
        key.to_user_string(): graph.get(key).automation_condition.get_label()
        for key in graph.get_all_asset_keys() if graph.get(key).automation_condition
    }
    for key in ("features/lead_features", "scores/leads", "scores/customers",
                "scores/lead_changes", "scores/customer_changes"):
        assert labels[key] == "when inputs update and their blocking checks pass"
    for model in ("lead_conversion", "plan", "activity_churn", "snapshot_churn"):
        assert labels[f"models/{model}"] == "first training (retraining: retraining_sensor)"
        assert labels[f"models/{model}/champion"] == (
            "when inputs update and their blocking checks pass")
    # raw files land through the inbox sensors, never through automation
    assert not any(k.startswith("raw/") for k in labels)


@pytest.mark.xdist_group("dagster_cli")  # a process of its own: any worker
def test_dagster_cli_loads_the_workspace(tmp_path):
    """`dagster definitions validate` on workspace.yaml, as the daemon would load it (with
    DAGSTER_HOME holding a link to the project's dagster.yaml, as `make setup` leaves it)."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(ROOT / "dagster.yaml")
    env = {"DAGSTER_HOME": str(home), "LEADSCORE_DATA_DIR": str(tmp_path / "data"),
           "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate",
         "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "leadscore" in result.stdout + result.stderr


@pytest.mark.xdist_group("dg_check_defs")  # a process of its own: any worker
def test_dg_check_defs_loads_the_project(tmp_path):
    """`dg check defs` (pyproject's [tool.dg]) with nothing set: Dagster's temporary home."""
    env = {"LEADSCORE_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path),
           "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


SECRETS = {"LEADSCORE_ALERT_WEBHOOK_URL": "https://hooks.example.com/T000/B000/s3cr3t-t0ken",
           "LEADSCORE_MLFLOW_TRACKING_URI": "postgresql://mlflow:pa55word@db.internal/mlflow",
           "LEADSCORE_DAGSTER_UI_URL": "https://dagster.internal.example.com"}


@pytest.mark.xdist_group("ui_snapshot")  # a process of its own: any worker
def test_secrets_and_urls_reach_the_ui_as_variable_names(tmp_path):
    """What the UI reads (the repository snapshot a code server sends) names the variables
    and never holds their values."""
    code = (
        "import json\n"
        "from dagster._core.remote_representation.external_data import RepositorySnap\n"
        "from dagster._serdes import serialize_value\n"
        "from leadscore_assets.definitions import defs\n"
        "snap = RepositorySnap.from_def(defs.get_repository_def())\n"
        "print(json.dumps({'snapshot': serialize_value(snap), 'resources': {r.name: {k: str(v)"
        " for k, v in r.configured_values.items()} for r in snap.resources}}))\n"
    )
    env = {"LEADSCORE_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path),
           "PATH": str(Path(sys.executable).parent), **SECRETS}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    for value in SECRETS.values():
        assert value not in shown["snapshot"]
    resources = shown["resources"]
    assert "LEADSCORE_ALERT_WEBHOOK_URL" in resources["alerts"]["webhook_url"]
    assert "LEADSCORE_DAGSTER_UI_URL" in resources["alerts"]["ui_url"]
    assert "LEADSCORE_MLFLOW_TRACKING_URI" in resources["mlflow"]["mlflow_tracking_uri"]
    assert "LEADSCORE_MLFLOW_TRACKING_URI" in resources["model_registry"]["tracking_uri"]
