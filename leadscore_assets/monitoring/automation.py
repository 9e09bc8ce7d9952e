"""Sensors of the monitoring stage: retrain when the world moved.

(The prediction log lands through its inbox sensor, ``predictions_inbox_sensor``, like any
export.)

``retraining_sensor`` requests a run of ``models/<model>`` (whose blocking champion gate then
decides what is served) for any of four reasons, each off or on in ``RetrainPolicy``:

- ``drift``: the latest drift report *of the current champion* says the dataset drifted;
- ``new_labels``: the labelled rows grew by ``new_label_ratio`` since the champion was trained;
- ``estimated_drop``: the latest ``estimated_drop_evaluations`` performance estimates of the
  current champion all estimate a drop (``monitoring/<model>_estimated_performance``), a
  warning weeks before the outcomes could show it;
- ``cadence``: a tick of the ``cadence`` schedule (cron, UTC; off unless set) passed since the
  champion was trained, a fixed rhythm of rebuilds.

The run key is ``retrain/<model>/champion-v<version>/<reason>`` (a cadence's also names its
tick), and the tags list every reason that held: one retraining per champion version and
reason. That is what stops a loop: a retrained version that the gate rejects leaves the
champion (and so the key) unchanged, and one that it promotes becomes the new reference,
whose drift report and estimates start from its own training data. The reasons a run was
requested for are all marked done, so a later tick asks only for a reason that is new.
"""


import json
from datetime import UTC, datetime

import dagster as dg
from croniter import croniter

from leadscore_assets.models.champion import champion_key
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.monitoring.assets import MONITORED, monitoring_assets
from leadscore_assets.monitoring.checks import latest_drift_metadata
from leadscore_assets.monitoring.estimated import ESTIMATED, estimated_assets, estimated_key
from leadscore_assets.monitoring.shadow import shadow_evidence
from leadscore_core.registry import CHAMPION

TRIGGER_TAG = "leadscore/trigger"
REASON_TAG = "leadscore/retrain_reason"
CHAMPION_TAG = "leadscore/champion_version"
KEPT_RUN_KEYS = 200


class RetrainPolicy(dg.ConfigurableResource):
    """When the platform retrains a model by itself."""

    on_drift: bool = True
    new_label_ratio: float = 0.2
    """Retrain when the labelled rows grew by this share since the champion's training."""
    on_estimated_drop: bool = True
    estimated_drop_evaluations: int = 3
    """Retrain when this many performance estimates in a row of the champion estimate a drop."""
    cadence: str | None = None
    """Cron schedule (UTC) of fixed retrainings, e.g. ``0 6 * * 1`` weekly; off when unset
    (``LEADSCORE_RETRAIN_CADENCE``)."""

    def cadence_tick(self, now: datetime) -> datetime | None:
        """The latest tick of the cadence at or before ``now`` (naive UTC), or None."""
        if not self.cadence:
            return None
        if not croniter.is_valid(self.cadence):
            raise ValueError(f"retrain cadence {self.cadence!r} is not a cron schedule")
        return croniter(self.cadence, now).get_prev(datetime)


def _retrain_reasons(meta: dict[str, object], policy: RetrainPolicy) -> list[str]:
    reasons = []
    if policy.on_drift and meta.get("status") == "evaluated" and meta.get("dataset_drifted"):
        reasons.append("drift")
    now = int(meta.get("labelled_rows", -1))  # type: ignore[arg-type]
    then = int(meta.get("labelled_rows_at_training", 0))  # type: ignore[arg-type]
    if then > 0 and now >= then * (1 + policy.new_label_ratio):
        reasons.append("new_labels")
    return reasons


def sustained_estimated_drop(instance: dg.DagsterInstance, model: str, version: str,
                             evaluations: int) -> bool:
    """The latest ``evaluations`` estimates of the model are all of ``version`` and all
    estimate a drop (estimates without a verdict, too few rows, break the run)."""
    if model not in ESTIMATED or evaluations < 1:
        return False
    records = instance.fetch_materializations(estimated_key(model), limit=evaluations).records
    if len(records) < evaluations:
        return False
    for record in records:
        meta = record.asset_materialization.metadata if record.asset_materialization else {}
        values = {k: getattr(v, "value", v) for k, v in meta.items()}
        if str(values.get("champion_version")) != version or not values.get("estimated_drop"):
            return False
    return True


def utc_now() -> datetime:
    """The sensor's clock (naive UTC); tests move it to see a cadence come due."""
    return datetime.now(UTC).replace(tzinfo=None)


def _run_key(model: str, version: str, reason: str, tick: datetime | None) -> str:
    key = f"retrain/{model}/champion-v{version}/{reason}"
    return f"{key}/{tick:%Y%m%dT%H%M}" if reason == "cadence" and tick else key


@dg.sensor(
    name="retraining_sensor",
    target=dg.AssetSelection.assets(*[key for m in MONITORED
                                      for key in (dg.AssetKey(["models", m]), champion_key(m))]),
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrains a model when its champion's drift report says the data drifted, "
                "enough new labelled rows arrived, its performance estimates keep dropping, "
                "or the cadence (off by default) is due; the champion gate decides what is "
                "served.",
)
def retraining_sensor(context: dg.SensorEvaluationContext, model_registry: ModelRegistryResource,
                      retrain_policy: RetrainPolicy) -> dg.SensorResult:
    requested: list[str] = json.loads(context.cursor) if context.cursor else []
    registry = model_registry.registry()
    tick = retrain_policy.cadence_tick(utc_now())
    requests, notes = [], []
    for model in MONITORED:
        champion = registry.by_alias(model, CHAMPION)
        if champion is None:
            continue
        version = str(champion.version)
        reasons = []
        meta = latest_drift_metadata(context.instance, model)
        if meta is not None and str(meta.get("champion_version")) != version:
            notes.append(f"{model}: drift report is of v{meta.get('champion_version')}, "
                         f"champion is v{version}; waiting for a fresh report")
        elif meta is not None:
            reasons += _retrain_reasons(meta, retrain_policy)
        if retrain_policy.on_estimated_drop and sustained_estimated_drop(
                context.instance, model, version, retrain_policy.estimated_drop_evaluations):
            reasons.append("estimated_drop")
        trained = datetime.fromtimestamp(champion.creation_timestamp / 1000, UTC
                                         ).replace(tzinfo=None)
        if tick is not None and tick > trained:
            reasons.append("cadence")
        keys = [_run_key(model, version, r, tick) for r in reasons]
        new = [k for k in keys if k not in requested]
        if not new:
            continue
        requested.extend(new)
        requests.append(dg.RunRequest(
            run_key=new[0],
            asset_selection=[dg.AssetKey(["models", model]), champion_key(model)],
            tags={TRIGGER_TAG: "retraining_sensor", REASON_TAG: "+".join(reasons),
                  CHAMPION_TAG: version, "leadscore/model": model},
        ))
        context.log.info(f"{model}: retraining requested ({', '.join(reasons)}; champion "
                         f"v{version}: {(meta or {}).get('verdict', '')})")
    cursor = json.dumps(requested[-KEPT_RUN_KEYS:])
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    return dg.SensorResult(skip_reason="; ".join(notes) or "no reason to retrain",
                           cursor=cursor)


# Evaluates the drift and realised-performance automation conditions. Declared here, running
# by default, because Dagster's implicit automation sensor starts stopped.
monitoring_automation_sensor = dg.AutomationConditionSensorDefinition(
    "monitoring_automation_sensor",
    target=dg.AssetSelection.assets(*monitoring_assets, *estimated_assets, shadow_evidence),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Runs the drift reports and performance estimates hourly and when their "
                "model, features or the prediction log change; realised performance daily.",
)

monitoring_sensors = [retraining_sensor, monitoring_automation_sensor]
