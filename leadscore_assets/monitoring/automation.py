"""Sensors of the monitoring stage: land the prediction log, and retrain when the world moved.

``prediction_log_sensor`` requests a ``raw/predictions`` run when closed log files are waiting
(files still being written end in ``.jsonl.open`` and are never picked up); the run key is
the set of waiting files, so a tick that sees the same files asks for nothing new. Files still
waiting ``retry_seconds`` after their request (the run failed) are requested again.

``retraining_sensor`` requests a run of ``models/<model>`` (whose blocking champion gate then
decides what is served) when the latest drift report *of the current champion* says

- the dataset drifted, or
- the labelled rows grew by ``new_label_ratio`` since the champion was trained.

The run key is ``retrain/<model>/champion-v<version>/<reason>``: one retraining per champion
version and reason. That is what stops a loop: a retrained version that the gate rejects
leaves the champion (and so the key) unchanged, and one that it promotes becomes the new
reference, whose drift report starts from its own training data.
"""


import hashlib
import json
import time

import dagster as dg

from leadscore_assets.models.champion import champion_key
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.models.registry import CHAMPION
from leadscore_assets.monitoring.assets import MONITORED, monitoring_assets, raw_predictions
from leadscore_assets.monitoring.checks import latest_drift_metadata
from leadscore_assets.predlog import closed_files, seal_abandoned
from leadscore_assets.resources import SettingsResource

TRIGGER_TAG = "leadscore/trigger"
REASON_TAG = "leadscore/retrain_reason"
CHAMPION_TAG = "leadscore/champion_version"
KEPT_RUN_KEYS = 200
LANDING_RETRY_SECONDS = 3_600


class RetrainPolicy(dg.ConfigurableResource):
    """When the platform retrains a model by itself."""

    on_drift: bool = True
    new_label_ratio: float = 0.2
    """Retrain when the labelled rows grew by this share since the champion's training."""


@dg.sensor(
    name="prediction_log_sensor",
    target=raw_predictions,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lands the closed files of the API's prediction log into raw/predictions.",
)
def prediction_log_sensor(context: dg.SensorEvaluationContext,
                          settings: SettingsResource) -> dg.SensorResult:
    directory = settings.get().predictions_dir
    if not directory.is_dir():
        return dg.SensorResult(skip_reason=f"no prediction log yet at {directory}")
    sealed = seal_abandoned(directory)
    waiting = closed_files(directory)
    if not waiting:
        return dg.SensorResult(skip_reason="no closed prediction log files waiting")
    names = sorted(p.name for p in waiting)
    key = hashlib.sha256("\n".join(names).encode()).hexdigest()[:32]
    previous = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    if previous.get("key") == key and now - previous.get("at", 0) < LANDING_RETRY_SECONDS:
        return dg.SensorResult(skip_reason=f"{len(names)} file(s) already requested")
    if sealed:
        context.log.warning(f"sealed {len(sealed)} file(s) left open by a stopped writer")
    attempt = previous.get("attempt", 0) + 1 if previous.get("key") == key else 1
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"predictions/{key}/{attempt}",
                                    tags={"leadscore/files": str(len(names))})],
        cursor=json.dumps({"key": key, "at": now, "attempt": attempt}),
    )


def _retrain_reasons(meta: dict[str, object], policy: RetrainPolicy) -> list[str]:
    reasons = []
    if policy.on_drift and meta.get("status") == "evaluated" and meta.get("dataset_drifted"):
        reasons.append("drift")
    now = int(meta.get("labelled_rows", -1))  # type: ignore[arg-type]
    then = int(meta.get("labelled_rows_at_training", 0))  # type: ignore[arg-type]
    if then > 0 and now >= then * (1 + policy.new_label_ratio):
        reasons.append("new_labels")
    return reasons


@dg.sensor(
    name="retraining_sensor",
    target=dg.AssetSelection.assets(*[key for m in MONITORED
                                      for key in (dg.AssetKey(["models", m]), champion_key(m))]),
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrains a model when its champion's drift report says the data drifted or "
                "enough new labelled rows arrived; the champion gate decides what is served.",
)
def retraining_sensor(context: dg.SensorEvaluationContext, model_registry: ModelRegistryResource,
                      retrain_policy: RetrainPolicy) -> dg.SensorResult:
    requested: list[str] = json.loads(context.cursor) if context.cursor else []
    registry = model_registry.registry()
    requests, notes = [], []
    for model in MONITORED:
        champion = registry.by_alias(model, CHAMPION)
        meta = latest_drift_metadata(context.instance, model)
        if champion is None or meta is None:
            continue
        if str(meta.get("champion_version")) != str(champion.version):
            notes.append(f"{model}: drift report is of v{meta.get('champion_version')}, "
                         f"champion is v{champion.version}; waiting for a fresh report")
            continue
        reasons = _retrain_reasons(meta, retrain_policy)
        if not reasons:
            continue
        run_key = f"retrain/{model}/champion-v{champion.version}/{reasons[0]}"
        if run_key in requested:
            continue
        requested.append(run_key)
        requests.append(dg.RunRequest(
            run_key=run_key,
            asset_selection=[dg.AssetKey(["models", model]), champion_key(model)],
            tags={TRIGGER_TAG: "retraining_sensor", REASON_TAG: "+".join(reasons),
                  CHAMPION_TAG: str(champion.version), "leadscore/model": model},
        ))
        context.log.info(f"{model}: retraining requested ({', '.join(reasons)}; champion "
                         f"v{champion.version}: {meta.get('verdict', '')})")
    cursor = json.dumps(requested[-KEPT_RUN_KEYS:])
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    return dg.SensorResult(skip_reason="; ".join(notes) or "no drift and no new labels",
                           cursor=cursor)


# Evaluates the drift and realised-performance automation conditions. Declared here, running
# by default, because Dagster's implicit automation sensor starts stopped.
monitoring_automation_sensor = dg.AutomationConditionSensorDefinition(
    "monitoring_automation_sensor",
    target=dg.AssetSelection.assets(*monitoring_assets),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Runs the drift reports hourly and when their model, features or the "
                "prediction log change; realised performance daily.",
)

monitoring_sensors = [prediction_log_sensor, retraining_sensor, monitoring_automation_sensor]
