"""Drift checks: one per drift asset, WARN at a first threshold, ERROR at the second.

The check reads the verdict its asset just recorded (the latest materialization's metadata),
so the thresholds live in one place, the asset's ``DriftConfig``:

- ERROR when the dataset drifted (the share of drifted features reached ``share_threshold``,
  or one of the model's top features drifted);
- WARN when the share of drifted features reached ``warn_share`` but not the above;
- passed otherwise, and when there is nothing to judge yet (no champion, too few rows).

A failed check alerts through the ``AlertChannel``, once per champion version and level:
drift that persists for hours is one message, not one per run.
"""


import dagster as dg

from leadscore_assets.alerts import Alert, AlertChannel
from leadscore_assets.monitoring.assets import MONITORED, drift_key
from leadscore_core.registry import MODELS

DRIFT_CHECK = "drift_within_bounds"


def latest_drift_metadata(instance: dg.DagsterInstance, model: str) -> dict[str, object] | None:
    """The metadata values of the model's latest drift report, or None before the first."""
    event = instance.get_latest_materialization_event(drift_key(model))
    if event is None or event.asset_materialization is None:
        return None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def drift_check(model: str) -> dg.AssetChecksDefinition:
    key = drift_key(model)

    @dg.asset_check(
        asset=key,
        name=DRIFT_CHECK,
        description=f"{MODELS[model]}: WARN when the share of drifted features reaches the "
                    "warning share; ERROR when the dataset drifted (share threshold reached or "
                    "a top-3 feature drifted). Alerts once per champion version and level.",
    )
    def _check(context: dg.AssetCheckExecutionContext,
               alerts: AlertChannel) -> dg.AssetCheckResult:
        meta = latest_drift_metadata(context.instance, model)
        if meta is None:
            return dg.AssetCheckResult(passed=True, description="no drift report yet")
        status = str(meta.get("status", ""))
        share = float(meta.get("share_drifted", 0.0))
        warn = float(meta.get("warn_share", 1.0))
        facts = {"status": status, "share_drifted": share, "warn_share": warn,
                 "share_threshold": meta.get("share_threshold", "n/a"),
                 "champion_version": str(meta.get("champion_version", "none")),
                 "drifted_features": str(meta.get("drifted_features", "none"))}
        if status != "evaluated":
            return dg.AssetCheckResult(passed=True, metadata=facts,
                                       description=str(meta.get("verdict", status)))
        if meta.get("dataset_drifted"):
            level = dg.AssetCheckSeverity.ERROR
        elif share >= warn:
            level = dg.AssetCheckSeverity.WARN
        else:
            return dg.AssetCheckResult(passed=True, metadata=facts,
                                       description=str(meta.get("verdict")))
        severity = "error" if level == dg.AssetCheckSeverity.ERROR else "warning"
        report = meta.get("report")
        sent = alerts.send(Alert(
            key=f"drift/{model}/v{facts['champion_version']}/{severity}",
            kind="check_failed",
            severity=severity,
            title=f"{MODELS[model]} v{facts['champion_version']}: input drift ({severity})",
            asset="/".join(key.path),
            check=DRIFT_CHECK,
            run_id=context.run.run_id,
            counts={"drifted_features": len([f for f in facts["drifted_features"].split(", ")
                                             if f and f != "none"])},
            detail=f"{meta.get('verdict')}" + (f"\nreport: {report}" if report else ""),
        ))
        return dg.AssetCheckResult(
            passed=False, severity=level, description=str(meta.get("verdict")),
            metadata={**facts, "alert_sent": sent},
        )

    return _check


drift_checks = [drift_check(model) for model in MONITORED]
