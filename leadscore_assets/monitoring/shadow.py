"""Live evidence on challengers, from the API's shadow scoring (``leadscore_core.shadow``).

``monitoring/shadow_evidence`` reads the served predictions once per prediction id, keeps
those the challenger also answered, and per model, champion version and challenger version
counts them and the ones whose tier (risk level, plan) would change; where the outcome has
arrived (``judged_predictions``), it sets the challenger's realised ROC-AUC beside the
champion's on those same predictions. It reads the published snapshots (no writer pool); the
figures are published as the snapshot ``monitoring.shadow_evidence`` and as
``data/monitoring/shadow_evidence.json``, which the champion gate, ``leadscore models`` and
the models page read.

``shadow_gate_sensor``: with live evidence required (``LEADSCORE_GATE_REQUIRE_LIVE``), a
challenger that won on its held-out rows waits (gate tag ``waiting``) until enough live
evidence is in; the sensor asks the champion asset to judge it again whenever its published
evidence has grown.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from leadscore_assets.features.assets import markdown_table
from leadscore_assets.models.champion import champion_key
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.monitoring.assets import (
    DRIFT_AUTOMATION,
    GROUP,
    SHORT_NAME,
    judged_predictions,
    realised_performance,
    served_predictions,
)
from leadscore_assets.monitoring.performance import plan_outcomes, served_plans
from leadscore_assets.resources import SettingsResource, published_snapshots
from leadscore_core.horizons import churn_horizon_days
from leadscore_core.published import publish_file, shadow_evidence_path
from leadscore_core.registry import CHAMPION, GATE_WAITING, MODELS, TAG_GATE
from leadscore_core.shadow import (
    LiveEvidence,
    evidence_for,
    evidence_json,
    live_evidence,
    read_evidence,
    shadow_answers,
)
from leadscore_core.warehouse import publish_snapshot, read_table, snapshot_dir

EVIDENCE_KEY = dg.AssetKey(["monitoring", "shadow_evidence"])
TABLE = "monitoring.shadow_evidence"


class ShadowEvidenceConfig(dg.Config):
    horizon_days: int | None = None
    """A customer scored for churn churned if they bought nothing in this many days after
    (default: ``LEADSCORE_CHURN_HORIZON_DAYS``)."""


def evidence_frame(evidence: list[LiveEvidence]) -> pd.DataFrame:
    return pd.DataFrame([e.as_dict() for e in evidence], columns=[
        "model", "champion_version", "challenger_version", "requests", "changed",
        "disagreement", "judged", "metric", "champion_realised", "challenger_realised", "lift",
        "evaluated_at"])


@dg.asset(
    key=EVIDENCE_KEY,
    # what realised performance reads: the log, and the tables the outcomes come from; and
    # the plans leads bought, which judge the plan recommendations
    deps=[*{dep.asset_key for spec in realised_performance.specs for dep in spec.deps},
          dg.AssetKey(["features", "plan_labels"])],
    group_name=GROUP,
    kinds={"parquet", "scikit-learn"},
    # no writer pool: it reads the published snapshots and publishes its own
    automation_condition=DRIFT_AUTOMATION,  # hourly, and as the prediction log lands
)
def shadow_evidence(context: dg.AssetExecutionContext, config: ShadowEvidenceConfig,
                    warehouse: DuckDBResource, settings: SettingsResource
                    ) -> dg.MaterializeResult:
    """Live evidence on each challenger scored in the champion's shadow: how many served
    predictions it also answered, the share whose tier (risk level, plan) it would change,
    and, once outcomes arrive, its realised ROC-AUC against the champion's on the same
    predictions (the lift; for plans, the share recommended the plan they then bought).
    Snapshot ``monitoring.shadow_evidence``; JSON for the gate, the command line and the
    pages."""
    s = settings.get()
    with published_snapshots(warehouse) as conn:
        predictions = served_predictions(conn)
        judged = judged_predictions(conn, churn_horizon_days(s, config.horizon_days))
        shadowed = (shadow_answers(predictions, SHORT_NAME) if predictions is not None else
                    shadow_answers(pd.DataFrame(columns=["model", "version", "outputs"]), {}))
        now = datetime.now(UTC).isoformat(timespec="seconds")
        plans = read_table(conn, "features.plan_labels")
        judged_plans = None
        if predictions is not None and plans is not None:
            recommended = served_plans(predictions)
            recommended["model"] = recommended["model"].map(lambda m: SHORT_NAME.get(m, m))
            judged_plans = plan_outcomes(recommended, plans)
        evidence = live_evidence(shadowed, judged, now, judged_plans)
        frame = evidence_frame(evidence)
        conn.register("_evidence", frame)
        publish_snapshot(conn, TABLE, snapshot_dir(warehouse.database),
                         "SELECT * FROM _evidence")
        conn.unregister("_evidence")
    published = shadow_evidence_path(s.root / "monitoring")
    text = evidence_json(evidence)
    publish_file(lambda tmp: Path(tmp).write_text(text), published)
    meta: dict[str, object] = {
        "shadow_scored_predictions": len(shadowed),
        "dagster/row_count": len(frame),
        "published": dg.MetadataValue.path(str(published)),
        "evidence": dg.MetadataValue.md(markdown_table(frame) if len(frame)
                                        else "no challenger has been scored in the shadow"),
    }
    for e in evidence:
        context.log.info(f"{e.model}: v{e.challenger_version} beside v{e.champion_version}: "
                         f"{e.describe()}")
    return dg.MaterializeResult(metadata=meta)


def _run_key(model: str, live: LiveEvidence) -> str:
    return (f"shadow-gate/{model}/v{live.challenger_version}-vs-v{live.champion_version}/"
            f"{live.requests}-{live.judged}")


@dg.sensor(
    name="shadow_gate_sensor",
    target=dg.AssetSelection.assets(*[champion_key(m) for m in MODELS]),
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="With live evidence required, judges a challenger waiting for it again "
                "whenever its shadow-scoring evidence has grown.",
)
def shadow_gate_sensor(context: dg.SensorEvaluationContext,
                       model_registry: ModelRegistryResource,
                       settings: SettingsResource) -> dg.SensorResult:
    if not model_registry.require_live:
        return dg.SensorResult(skip_reason="live evidence is not required "
                                           "(LEADSCORE_GATE_REQUIRE_LIVE)")
    registry = model_registry.registry()
    evidence = read_evidence(shadow_evidence_path(settings.get().root / "monitoring"))
    requests, notes = [], []
    for model in MODELS:
        challenger = registry.challenger(model)
        if challenger is None or (challenger.tags or {}).get(TAG_GATE) != GATE_WAITING:
            continue
        champion = registry.by_alias(model, CHAMPION)
        live = evidence_for(evidence, model, str(champion.version), str(challenger.version))
        if live is None:
            notes.append(f"{model}: v{challenger.version} waits; no live evidence yet")
            continue
        requests.append(dg.RunRequest(run_key=_run_key(model, live),
                                      asset_selection=[champion_key(model)],
                                      tags={"leadscore/trigger": "shadow_gate_sensor",
                                            "leadscore/model": model}))
    if requests:
        return dg.SensorResult(run_requests=requests)
    return dg.SensorResult(skip_reason="; ".join(notes) or "no challenger waits for evidence")
