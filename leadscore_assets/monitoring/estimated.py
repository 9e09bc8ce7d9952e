"""Estimated performance of each served binary model, before its outcomes arrive.

``monitoring/<model>_estimated_performance`` scores the current window (the drift window:
rows that arrived since the champion was trained, plus what the API was asked to score) with
the champion and estimates, from its calibrated probabilities alone
(``leadscore_core.estimation``), its ROC-AUC, the precision of its top tier (tier
A for leads, High risk for customers) and its calibration (positive rate, Brier score), each
with the interval the realised figure should fall in.

The same estimate is made on the champion's held-out rows, whose labels are known: that is
the reference a drop is measured from, and the held-out rows say whether the probabilities
are calibrated enough for the estimate to be trusted. An evaluation *estimates a drop* when
the window's whole ROC-AUC interval lies more than ``drop_tolerance`` below the reference
estimate; the retraining sensor acts on drops that persist over several evaluations.

Where outcomes have arrived for served predictions, the estimate is made on those same
predictions and set next to the realised figure: ``monitoring.estimate_vs_realised`` gains
one row per model version and metric at every evaluation, so the estimate's own error is
tracked over time. ``monitoring.estimated_performance`` keeps every window's estimates.

Neither holds the writer pool: the window and the served predictions are read from the
published snapshots, and both histories are published beside them as folders of parts, one
part per evaluation (``snapshot_reader`` shows each as its table).
"""


import json
import math
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from leadscore_assets.features.assets import markdown_table
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.monitoring.assets import (
    WindowConfig,
    _same_types,
    champion_monitor_asset,
    current_window,
    judged_predictions,
    served_champion,
)
from leadscore_assets.resources import SettingsResource, published_snapshots
from leadscore_assets.scores.assets import quartile_tiers, risk_levels
from leadscore_core.estimation import Estimate, estimate, realised_metrics
from leadscore_core.horizons import churn_horizon_days
from leadscore_core.published import estimated_summary_path, publish_file
from leadscore_core.registry import HOLDOUT_ARTIFACT, MODELS
from leadscore_core.serving import ModelBundle
from leadscore_core.settings import Settings
from leadscore_core.warehouse import publish_part, snapshot_dir

ESTIMATED = ("lead_conversion", "activity_churn", "snapshot_churn")  # the binary models
TOP_TIER = {"lead_conversion": "tier A", "activity_churn": "High risk",
            "snapshot_churn": "High risk"}
WINDOW_TABLE = "monitoring.estimated_performance"
ERROR_TABLE = "monitoring.estimate_vs_realised"


def estimated_key(model: str) -> dg.AssetKey:
    return dg.AssetKey(["monitoring", f"{model}_estimated_performance"])


class EstimationConfig(WindowConfig):
    max_rows: int = 50_000
    """Larger windows are sampled down to this many rows (fixed seed)."""
    draws: int = 400
    """Label sets drawn from the probabilities for each interval."""
    level: float = 0.95
    """Share of the drawn realised figures the interval holds."""
    drop_tolerance: float = 0.02
    """A drop: the window's ROC-AUC interval lies wholly this far below the reference."""
    horizon_days: int | None = None
    """A scored customer's outcome is known this many days after the score (default:
    ``LEADSCORE_CHURN_HORIZON_DAYS``)."""


def top_tier_mask(model: str, probability: np.ndarray, settings: Settings) -> np.ndarray:
    """Rows in the top tier, by the rule the scores use: tier A is the top quartile of the
    scores judged together; High risk is at or above ``LEADSCORE_CHURN_HIGH``."""
    p = np.asarray(probability, dtype=np.float64)
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    if model == "lead_conversion":
        tiers, _ = quartile_tiers(ModelBundle.score(p))
        return np.asarray(tiers) == "A"
    return np.asarray(risk_levels(p, settings.churn_high, settings.churn_medium)) == "High"


def _rows(estimates: dict[str, Estimate], **extra: object) -> list[dict[str, object]]:
    return [{**extra, "metric": e.metric, "estimated": e.value, "low": e.low, "high": e.high,
             "rows": e.rows} for e in estimates.values()]


def _append(warehouse: DuckDBResource, table: str, model: str, evaluated_at: datetime,
            frame: pd.DataFrame) -> None:
    """One evaluation's rows as a part of the table's published history."""
    if frame.empty:
        return
    with duckdb.connect() as conn:
        conn.register("_estimates", frame)
        publish_part(conn, table, snapshot_dir(warehouse.database),
                     f"{evaluated_at:%Y%m%dT%H%M%S%f}-{model}", "SELECT * FROM _estimates")


def estimate_vs_realised(model: str, judged: pd.DataFrame, config: EstimationConfig,
                         settings: Settings) -> pd.DataFrame:
    """Per served version: each metric estimated from the served probabilities of the
    predictions whose outcome is known, next to the realised figure on the same rows."""
    rows = []
    for version, group in judged[judged["model"] == model].groupby("version", sort=True):
        p = group["probability"].astype(float).to_numpy()
        y = group["outcome"].astype(bool).to_numpy()
        top = top_tier_mask(model, p, settings)
        realised = realised_metrics(p, y, top)
        for row in _rows(estimate(p, top, config.draws, config.level), model=model,
                         version=str(version)):
            value = realised[str(row["metric"])]
            rows.append({**row, "realised": value, "error": float(row["estimated"]) - value,
                         "within_interval": bool(row["low"] <= value <= row["high"])})
    return pd.DataFrame(rows, columns=["model", "version", "metric", "estimated", "low", "high",
                                       "rows", "realised", "error", "within_interval"])


def summary_path(settings: Settings, model: str) -> Path:
    return estimated_summary_path(settings.root / "monitoring", model)


def write_summary(settings: Settings, model: str, summary: dict[str, object]) -> Path:
    """The latest estimate as JSON for the command line and the pages (atomic replace)."""
    text = json.dumps(_finite(summary), indent=2, default=_json_value, allow_nan=False)
    path = summary_path(settings, model)
    return publish_file(lambda tmp: Path(tmp).write_text(text), path)


def _finite(value: object) -> object:
    """NaN and infinities (a metric with nothing to measure) as JSON null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value


def _json_value(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _figures(estimates: dict[str, Estimate]) -> dict[str, object]:
    return {f"{e.metric}/{part}": float(getattr(e, part))
            for e in estimates.values() for part in ("value", "low", "high")
            if np.isfinite(getattr(e, part))}


def evaluate_estimate(context: dg.AssetExecutionContext, model: str, config: EstimationConfig,
                      warehouse: DuckDBResource, settings: SettingsResource,
                      model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    """One model's estimate: window, reference, drop verdict, estimate against realised.

    The metadata carries what the retraining sensor reads: ``status`` (evaluated |
    too_few_rows | no_champion), ``champion_version`` and ``estimated_drop``.
    """
    served = served_champion(model_registry, model)
    if served is None:
        return dg.MaterializeResult(metadata={
            "status": "no_champion", "estimated_drop": False,
            "verdict": f"{MODELS[model]} has no champion yet: nothing to estimate"})
    s = settings.get()
    registry, champion, bundle = served.registry, served.version, served.bundle
    kinds, trained_at, label = served.kinds, served.trained_at, served.label
    features = list(kinds)

    holdout = registry.run_frame(champion.run_id, HOLDOUT_ARTIFACT)
    p_ref = np.asarray(bundle.predict_frame(_same_types(holdout, kinds)[features]))
    top_ref = top_tier_mask(model, p_ref, s)
    reference = estimate(p_ref, top_ref, config.draws, config.level)
    reference_realised = (realised_metrics(p_ref, holdout[label].astype(bool).to_numpy(),
                                           top_ref) if label in holdout else {})

    with published_snapshots(warehouse) as conn:
        _, _, window = current_window(conn, model, served, features, features,
                                      config.max_rows)
        judged = judged_predictions(conn, churn_horizon_days(s, config.horizon_days))
    versus = estimate_vs_realised(model, judged, config, s)
    now = datetime.now(UTC).replace(tzinfo=None)

    meta: dict[str, object] = {
        "champion_version": str(champion.version),
        "registered_model": MODELS[model],
        "trained_at": trained_at.isoformat(timespec="seconds"),
        "window_rows": len(window),
        "top_tier": TOP_TIER[model],
        **{f"reference/{k}": v for k, v in _figures(reference).items()},
        **{f"reference_realised/{k}": v for k, v in reference_realised.items()
           if np.isfinite(v)},
    }
    if len(versus):
        meta["estimate_vs_realised"] = dg.MetadataValue.md(markdown_table(versus))
        meta["share_within_interval"] = float(versus["within_interval"].mean())
    if len(window) < config.min_rows:
        verdict = (f"{len(window)} row(s) in the window since version {champion.version} was "
                   f"trained (fewer than {config.min_rows}): no estimate yet")
        _append(warehouse, ERROR_TABLE, model, now, versus.assign(evaluated_at=now))
        return dg.MaterializeResult(metadata={**meta, "status": "too_few_rows",
                                              "estimated_drop": False, "verdict": verdict})

    p = np.asarray(bundle.predict_frame(_same_types(window, kinds)[features]))
    current = estimate(p, top_tier_mask(model, p, s), config.draws, config.level)
    auc, ref_auc = current["roc_auc"], reference["roc_auc"].value
    dropped = bool(np.isfinite(auc.high) and np.isfinite(ref_auc)
                   and auc.high < ref_auc - config.drop_tolerance)
    verdict = (f"estimated ROC-AUC {auc.value:.3f} [{auc.low:.3f}, {auc.high:.3f}] on "
               f"{len(window):,} rows against {ref_auc:.3f} on the held-out rows: "
               + ("DROP" if dropped else "no drop"))
    context.log.info(f"{model}: {verdict}")
    table = pd.DataFrame(
        _rows(current, evaluated_on="window") + _rows(reference, evaluated_on="held-out")
    ).assign(model=model, version=str(champion.version), evaluated_at=now)
    _append(warehouse, WINDOW_TABLE, model, now, table)
    _append(warehouse, ERROR_TABLE, model, now, versus.assign(evaluated_at=now))
    summary = write_summary(s, model, {
        "model": MODELS[model], "champion_version": str(champion.version),
        "evaluated_at": now.isoformat(timespec="seconds"), "window_rows": len(window),
        "top_tier": TOP_TIER[model], "estimated_drop": dropped, "verdict": verdict,
        "window": {k: vars(v) for k, v in current.items()},
        "held_out": {k: vars(v) for k, v in reference.items()},
        "held_out_realised": reference_realised,
        "estimate_vs_realised": versus.to_dict("records"),
    })
    return dg.MaterializeResult(metadata={
        "summary": dg.MetadataValue.path(str(summary)),
        **meta,
        **_figures(current),
        "status": "evaluated",
        "estimated_drop": dropped,
        "drop_tolerance": config.drop_tolerance,
        "verdict": verdict,
        "estimates": dg.MetadataValue.md(markdown_table(
            table.drop(columns=["model", "version", "evaluated_at"]))),
    })


def estimated_asset(model: str) -> dg.AssetsDefinition:
    return champion_monitor_asset(  # on the drift reports' rhythm
        model, estimated_key(model), {"numpy", "parquet"},
        f"{MODELS[model]}'s ROC-AUC, precision in its top tier ({TOP_TIER[model]}) and "
        "calibration on the current window, estimated from the champion's calibrated "
        "probabilities before the outcomes arrive, with intervals; set next to the "
        "realised figures as outcomes arrive.",
        EstimationConfig, evaluate_estimate)


estimated_assets = [estimated_asset(model) for model in ESTIMATED]
