"""The leadscore code location: every asset, check, sensor and resource, assembled once."""

from __future__ import annotations

import dagster as dg

from leadscore_assets.alerts import AlertChannel, alert_on_run_failure
from leadscore_assets.clean.assets import CLEAN_ASSETS
from leadscore_assets.clean.checks import CLEAN_CHECKS, with_raw_freshness
from leadscore_assets.features.assets import feature_assets
from leadscore_assets.ingest.assets import RAW_ASSETS
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.ingest.sensors import INBOX_SENSORS
from leadscore_assets.models.assets import model_assets
from leadscore_assets.models.champion import champion_assets
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.models.resources import MlflowTracking
from leadscore_assets.monitoring.assets import monitoring_assets
from leadscore_assets.monitoring.automation import RetrainPolicy, monitoring_sensors
from leadscore_assets.monitoring.checks import drift_checks
from leadscore_assets.monitoring.estimated import estimated_assets
from leadscore_assets.monitoring.shadow import shadow_evidence, shadow_gate_sensor
from leadscore_assets.resources import SettingsResource, env_or, warehouse_resource
from leadscore_assets.scores.assets import score_assets
from leadscore_assets.scores.changes import change_assets
from leadscore_core.settings import SOURCES, get_settings

# Project-wide automation policy. Derived tables follow their inputs, but only once the
# blocking checks on those inputs have passed (bad data stops here, in automation as in a
# run). A model trains on its own the first time; after that, retraining is decided by the
# retraining sensor (drift, or enough new labelled rows), never by every feature refresh.
FOLLOW_INPUTS = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("when inputs update and their blocking checks pass")
# Not Dagster's on_missing(): it fires only for a target that becomes missing after the
# condition's first evaluation, and a new deployment's models are missing from the first
# tick, before their inputs exist, so they never trained. Here a missing model is requested
# when its inputs have been updated since it was last requested, trained or failed, exist and
# passed their blocking checks, and nothing it depends on is running: once per arrival of
# data, so a failed (or empty-handed) training is tried again only when new data comes, and
# the daemon's first tick after `make demo` asks for nothing (Dagster counts no update on a
# first evaluation).
INPUTS_UPDATED = dg.AutomationCondition.any_deps_updated().since(
    (dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated()
     | dg.AutomationCondition.execution_failed().newly_true()
     ).with_label("requested, materialised or failed")
).with_label("inputs updated since")
FIRST_TRAINING = (
    dg.AutomationCondition.missing()
    & INPUTS_UPDATED
    & ~dg.AutomationCondition.any_deps_missing()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.any_deps_in_progress()
).with_label("first training (retraining: retraining_sensor)")

def with_policy(assets: list, condition: dg.AutomationCondition) -> list:
    return [a.map_asset_specs(lambda spec: spec.replace_attributes(
        automation_condition=condition)) for a in assets]


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation",
    # the monitoring stage has its own automation sensor (hourly drift reports)
    target=dg.AssetSelection.all() - dg.AssetSelection.assets(*monitoring_assets,
                                                              *estimated_assets,
                                                              shadow_evidence),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Cleans, refreshes features and scores, and trains missing models as data lands.",
)

# The main job: everything downstream of the landed files, in dependency order (raw files
# land per file, through the inbox sensors or `leadscore land`).
main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("ingest"),
    description="Clean, features, models and their champions (the gate), scores and drift "
                "reports.",
)

defs = dg.Definitions(
    # the default executor runs each step in a subprocess; LEADSCORE_RUN_EXECUTOR=in_process
    # runs them in the run's process (a Celery worker's pool process may not fork its own)
    executor=dg.in_process_executor if get_settings().run_executor == "in_process" else None,
    # with_raw_freshness puts the freshness policy on every raw/* asset in the list
    assets=with_raw_freshness([
        *(asset for source, asset in RAW_ASSETS.items() if source in SOURCES),
        *CLEAN_ASSETS.values(),
        *with_policy(feature_assets, FOLLOW_INPUTS),
        *with_policy(model_assets, FIRST_TRAINING),
        *with_policy(champion_assets, FOLLOW_INPUTS),
        *with_policy([*score_assets, *change_assets], FOLLOW_INPUTS),
    ]) + [RAW_ASSETS["predictions"]]  # the API's log, not a delivery: no freshness policy
    + monitoring_assets + estimated_assets + [shadow_evidence],
    asset_checks=[
        *CLEAN_CHECKS,
        *drift_checks,
    ],
    jobs=[main_job],
    sensors=[
        *INBOX_SENSORS.values(),
        alert_on_run_failure,
        automation_sensor,
        *monitoring_sensors,
        shadow_gate_sensor,
    ],
    resources={
        "warehouse": warehouse_resource(),
        "landing": LandingZone.from_settings(get_settings()),
        "settings": SettingsResource.from_env(),
        "alerts": AlertChannel.from_settings(),
        "mlflow": MlflowTracking.from_settings(get_settings()),
        "model_registry": ModelRegistryResource(tracking_uri=env_or(
            "LEADSCORE_MLFLOW_TRACKING_URI", get_settings().mlflow_uri),
            **ModelRegistryResource.live_fields(get_settings())),
        "retrain_policy": RetrainPolicy(cadence=env_or("LEADSCORE_RETRAIN_CADENCE",
                                                       get_settings().retrain_cadence)),
    },
)
