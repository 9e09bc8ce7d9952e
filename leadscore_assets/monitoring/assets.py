"""Monitoring assets: drift per model, realised performance.

The API's prediction log lands like any export (``raw/predictions``, ingest stage: the API
seals its files into ``data/inbox/predictions/``); what it served is read here once per
prediction id, by the time it was served (``served_predictions``).

- ``monitoring/<model>_drift``: the current champion's reference (``reference.parquet`` of the
  champion version's MLflow run) against the current window: feature rows the champion's
  training did not see (by each row's identity and time, ``features.seen``), plus what the
  API was asked to score since it was trained. Writes an HTML report, a JSON summary and the
  per-feature table (``<model>_drift.parquet``) under ``data/monitoring/``.
- ``monitoring/realised_performance``: served predictions joined to the outcomes that have
  arrived since, per model version.

None of them holds the writer pool: they read the published snapshots
(``resources.published_snapshots``) and write files of their own.
"""


import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from leadscore_assets.features.assets import PAYMENT_EVENTS, PURCHASES, markdown_table
from leadscore_assets.features.seen import KEY_COLUMN, TRAINING_ROWS_ARTIFACT, unseen
from leadscore_assets.models.champion import champion_key
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.monitoring.drift import DriftOptions, compare_feature, detect_drift
from leadscore_assets.monitoring.performance import (
    churn_outcomes,
    lead_outcomes,
    performance_by_version,
    performance_over_time,
    served_probabilities,
    stack,
)
from leadscore_assets.monitoring.report import markdown_table as drift_markdown
from leadscore_assets.monitoring.report import verdict_text, write_report
from leadscore_assets.resources import SettingsResource, published_snapshots
from leadscore_core.horizons import churn_horizon_days
from leadscore_core.profiles import normalise_category
from leadscore_core.published import (
    publish_file,
    realised_over_time_path,
    realised_performance_path,
)
from leadscore_core.registry import (
    CHAMPION,
    HOLDOUT_ARTIFACT,
    MODELS,
    REFERENCE_ARTIFACT,
    TAG_LABEL,
    ModelRegistry,
)
from leadscore_core.serving import ModelBundle
from leadscore_core.settings import get_settings
from leadscore_core.vocabulary import flags
from leadscore_core.warehouse import publish_snapshot, read_table, snapshot_dir, table_exists

GROUP = "monitoring"
PREDICTIONS_KEY = dg.AssetKey(["raw", "predictions"])
SHORT_NAME = {registered: short for short, registered in MODELS.items()}

# Each prediction the API served, once: the well-formed rows of ``raw.predictions``, one per
# prediction id (the same entry landed in two files counts once), with the time it was served
# as naive UTC. "Since training" is decided by that time, never by when a file landed.
SERVED_SQL = """
    SELECT prediction_id, timezone('UTC', TRY_CAST(predicted_at AS TIMESTAMPTZ)) AS predicted_at,
           model, version, endpoint, inputs, outputs
    FROM raw.predictions
    WHERE _malformed IS NULL
    QUALIFY row_number() OVER (
        PARTITION BY coalesce(prediction_id, md5(concat_ws('|', predicted_at, model, version,
                                                            endpoint, inputs, outputs)))
        ORDER BY _ingested_at, _partition, _row_number) = 1
"""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def served_predictions(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """The served predictions (see ``SERVED_SQL``), or None before any log file landed."""
    if not table_exists(conn, "raw.predictions"):
        return None
    return conn.sql(SERVED_SQL).df()


# -- drift ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitoredModel:
    """Where a model's rows live: labelled training rows and the rows it is asked about.

    Where the two tables are one, the drift window is that table's rows the champion's
    training did not see. Where they differ (activity: the training table stacks cutoffs,
    the current table is every customer as of the latest invoice line), the current table is
    the window once the training table holds a row the champion did not see: before that,
    comparing it would only measure how the latest moment differs from the training cutoffs,
    and retraining on the same invoice lines could not change that.
    """

    name: str
    training_table: str  # labelled rows (new labels since training trigger a retrain)
    label: str
    current_table: str  # the rows the model is asked about (the drift window)
    deps: tuple[str, ...]


MONITORED: dict[str, MonitoredModel] = {
    "lead_conversion": MonitoredModel("lead_conversion", "features.lead_features", "converted",
                                      "features.lead_features", ("lead_features",)),
    "plan": MonitoredModel("plan", "features.plan_labels", "plan", "features.plan_labels",
                           ("plan_labels",)),
    "activity_churn": MonitoredModel("activity_churn", "features.customer_activity",
                                     "churned", "features.customer_activity_latest",
                                     ("customer_activity", "customer_activity_latest")),
    "snapshot_churn": MonitoredModel("snapshot_churn", "features.customer_snapshot",
                                     "churned", "features.customer_snapshot",
                                     ("customer_snapshot",)),
}


def drift_key(model: str) -> dg.AssetKey:
    return dg.AssetKey(["monitoring", f"{model}_drift"])


class WindowConfig(dg.Config):
    """How large the window of rows that arrived since training must be, and may be."""

    min_rows: int = 100
    """Fewer rows in the window than this: no verdict (too few to tell a change from noise)."""
    max_rows: int = 100_000
    """Larger windows are sampled down to this many rows (fixed seed)."""


class DriftConfig(WindowConfig):
    share_threshold: float = 0.5
    """ERROR: the dataset drifted when this share of features drifts (or a top feature)."""
    warn_share: float = 0.25
    """WARN: this share of features drifted, below the dataset threshold."""
    top_features: int = 3
    """Drift of any of the model's most important features marks the dataset drifted."""
    missing_rate_threshold: float = 0.1


# The drift reports run hourly and whenever the model, its features or the prediction log
# change, so a new champion gets a fresh reference straight away.
DRIFT_AUTOMATION = (
    (dg.AutomationCondition.cron_tick_passed("0 * * * *")
     | dg.AutomationCondition.any_deps_updated())
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.any_deps_in_progress()
).with_label("hourly, or when the model, its features or the prediction log change")


def _naive_utc(value: str | datetime) -> datetime:
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.tz_localize(None).to_pydatetime()


def api_window(conn: duckdb.DuckDBPyConnection, registered: str, since: datetime,
               kinds: dict[str, str]) -> pd.DataFrame:
    """What the API was asked to score with this model since ``since``, typed like features."""
    if not table_exists(conn, "raw.predictions"):
        return pd.DataFrame(columns=list(kinds))
    rows = conn.execute(f"SELECT inputs FROM ({SERVED_SQL}) WHERE model IN (?, ?) "
                        "AND predicted_at > ?", [registered, SHORT_NAME[registered], since]
                        ).fetchall()
    records = [json.loads(r[0]) for r in rows]
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return type_like_features(frame, kinds)


def type_like_features(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Request fields -> the feature tables' types (numbers, flags, normalised categories)."""
    out = pd.DataFrame(index=frame.index)
    for name, kind in kinds.items():
        if name not in frame:
            out[name] = pd.Series(np.nan if kind != "categorical" else pd.NA, index=frame.index)
            continue
        values = frame[name]
        if kind == "numeric":
            out[name] = pd.to_numeric(values, errors="coerce").astype("Float64")
        elif kind == "boolean":
            out[name] = flags(values)  # the encoder's own words (boolean_value)
        else:
            out[name] = normalise_category(values.astype("string"))
    return out


def seen_rows(registry, champion) -> np.ndarray | None:
    """The keys of the rows the champion was trained on (``features.seen``), or None for a
    version trained before its training logged them."""
    try:
        return registry.run_frame(champion.run_id, TRAINING_ROWS_ARTIFACT)[KEY_COLUMN
                                                                          ].to_numpy()
    except (OSError, MlflowException):
        return None


@dataclass(frozen=True)
class ServedChampion:
    """The champion a monitoring asset judges: its bundle, inputs, training time and label."""

    registry: ModelRegistry
    version: ModelVersion
    bundle: ModelBundle
    kinds: dict[str, str]
    trained_at: datetime
    label: str


def served_champion(model_registry: ModelRegistryResource, model: str) -> ServedChampion | None:
    """The model's current champion, or None before the first promotion."""
    registry = model_registry.registry()
    champion = registry.by_alias(model, CHAMPION)
    if champion is None:
        return None
    bundle = registry.load_bundle(model, champion.version)
    trained_at = _naive_utc(bundle.metadata.get("trained_at")
                            or datetime.fromtimestamp(champion.creation_timestamp / 1000, UTC))
    return ServedChampion(registry, champion, bundle,
                          {s.name: s.kind for s in bundle.encoder.specs}, trained_at,
                          champion.tags.get(TAG_LABEL, MONITORED[model].label))


def current_window(conn: duckdb.DuckDBPyConnection, model: str, served: ServedChampion,
                   features: list[str], columns: list[str], max_rows: int
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(from_features, from_api, window)``: the feature rows the champion has not seen
    (``columns`` of them), what the API was asked since it was trained, and both stacked
    (``_window`` says which), every feature present, sampled down to ``max_rows``."""
    from_features = feature_window(conn, MONITORED[model],
                                   seen_rows(served.registry, served.version),
                                   served.trained_at, columns)
    from_api = api_window(conn, MODELS[model], served.trained_at, served.kinds)
    parts = [f.assign(_window=w) for f, w in ((from_features, "features"), (from_api, "api"))
             if len(f)]
    window = pd.concat(parts, ignore_index=True) if parts else from_features.copy()
    for name in features:  # a feature the table lacks is missing, not an error
        if name not in window:
            window[name] = pd.NA
    if len(window) > max_rows:
        window = window.sample(max_rows, random_state=0)
    return from_features, from_api, window


def feature_window(conn: duckdb.DuckDBPyConnection, spec: MonitoredModel,
                   seen: np.ndarray | None, since: datetime,
                   columns: list[str]) -> pd.DataFrame:
    """The feature rows that arrived since the champion was trained (see ``MonitoredModel``),
    decided by each row's own identity and time, never by when its file landed.

    ``seen`` is the champion's training rows (``seen_rows``). A champion that predates them
    is judged by the rows' own created time against ``since``, its training time (the
    activity window stays empty then: its rows carry no time of their own)."""
    frame = read_table(conn, spec.current_table)
    if frame is None:
        return pd.DataFrame(columns=columns)
    wanted = [c for c in columns if c in frame.columns]
    if seen is None:
        if "created_at" not in frame or spec.current_table != spec.training_table:
            return frame.iloc[0:0][wanted]
        created = pd.to_datetime(frame["created_at"], errors="coerce")
        return frame.loc[(created > since).to_numpy(), wanted].reset_index(drop=True)
    if spec.current_table == spec.training_table:
        return frame.loc[unseen(frame, seen), wanted].reset_index(drop=True)
    training = read_table(conn, spec.training_table)
    if training is None or not unseen(training, seen).any():
        return frame.iloc[0:0][wanted]
    return frame[wanted]


def labelled_rows(conn: duckdb.DuckDBPyConnection, spec: MonitoredModel) -> int | None:
    if not table_exists(conn, spec.training_table):
        return None
    return int(conn.execute(f'SELECT count("{spec.label}") FROM {spec.training_table}'
                            ).fetchone()[0])


def _prediction(bundle, frame: pd.DataFrame) -> pd.Series:
    proba = np.asarray(bundle.predict_frame(frame))
    if bundle.task == "multiclass":
        return pd.Series(bundle.predicted_class(np.atleast_2d(proba)), index=frame.index,
                         dtype="string")
    return pd.Series(proba, index=frame.index, dtype="float64")


def _same_types(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """One dtype per kind on both sides (the reference comes from Parquet, the window from
    DuckDB and JSON)."""
    out = frame.copy()
    for name, kind in kinds.items():
        if name in out and kind == "categorical":
            out[name] = out[name].astype("string")
        elif name in out and kind == "numeric":
            out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
        elif name in out:
            out[name] = out[name].astype("boolean")
    return out


def evaluate_drift(context: dg.AssetExecutionContext, model: str, config: DriftConfig,
                   warehouse: DuckDBResource, settings: SettingsResource,
                   model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    """One model's drift report: reference and window, tests, files, table and metadata.

    The metadata carries what the drift check and the retraining sensor read: ``status``
    (evaluated | too_few_rows | no_champion), ``champion_version``, ``dataset_drifted``,
    ``share_drifted``, the thresholds, and the labelled row counts now and at training.
    """
    spec = MONITORED[model]
    served = served_champion(model_registry, model)
    if served is None:
        return dg.MaterializeResult(metadata={
            "status": "no_champion", "dataset_drifted": False, "share_drifted": 0.0,
            "verdict": f"{MODELS[model]} has no champion yet: nothing to compare"})
    registry, champion, bundle = served.registry, served.version, served.bundle
    kinds, trained_at, label = served.kinds, served.trained_at, served.label
    by_original = {s.original_name: s.name for s in bundle.encoder.specs}
    importance = {by_original.get(k, k): v
                  for k, v in bundle.metadata.get("feature_importance", {}).items()}
    reference = registry.run_frame(champion.run_id, REFERENCE_ARTIFACT)
    holdout = registry.run_frame(champion.run_id, HOLDOUT_ARTIFACT)
    features = [f for f in kinds if f in reference.columns]

    # the published snapshots, not the warehouse: a drift report never waits for the writer
    with published_snapshots(warehouse) as conn:
        from_features, from_api, current = current_window(
            conn, model, served, features, [*features, label], config.max_rows)
        labelled_now = labelled_rows(conn, spec)
    run = registry.client.get_run(champion.run_id)
    labelled_then = int(run.data.metrics.get("rows_train", 0)
                        + run.data.metrics.get("rows_holdout", 0))
    base_meta: dict[str, object] = {
        "champion_version": str(champion.version),
        "registered_model": MODELS[model],
        "trained_at": trained_at.isoformat(timespec="seconds"),
        "reference_rows": len(reference),
        "current_rows": len(current),
        "current_rows_from_features": len(from_features),
        "current_rows_from_api": len(from_api),
        "labelled_rows": labelled_now if labelled_now is not None else -1,
        "labelled_rows_at_training": labelled_then,
        "warn_share": config.warn_share,
        "share_threshold": config.share_threshold,
    }
    if len(current) < config.min_rows:
        verdict = (f"{len(current)} row(s) arrived since version {champion.version} was "
                   f"trained (fewer than {config.min_rows}): no verdict yet")
        context.log.info(verdict)
        return dg.MaterializeResult(metadata={
            **base_meta, "status": "too_few_rows", "dataset_drifted": False,
            "share_drifted": 0.0, "verdict": verdict})

    reference = reference.assign(prediction=_prediction(bundle, reference))
    current = _same_types(current, kinds)
    current["prediction"] = _prediction(bundle, current[features])
    options = DriftOptions(share_threshold=config.share_threshold,
                           top_features=config.top_features,
                           missing_rate_threshold=config.missing_rate_threshold)
    result = detect_drift(
        _same_types(reference, kinds), current, kinds=kinds, importance=importance,
        options=options, prediction_column="prediction", features=features,
        prediction_kind="categorical" if bundle.task == "multiclass" else "numeric",
    )
    if label in holdout and label in current and current[label].notna().any():
        # The reference sample has no labels; the held-out rows come from the same training
        # data, so their labels stand for what the model learned from.
        result = replace(result, label=compare_feature(
            label, holdout[label].astype("string"), current[label].astype("string"),
            "categorical", options))

    s = settings.get()
    context_facts = {"model": MODELS[model], "champion version": champion.version,
                     "trained at": trained_at.isoformat(timespec="seconds"),
                     "window": f"rows since training: {len(from_features):,} from the "
                               f"feature tables, {len(from_api):,} from the API"}
    html_path, json_path = write_report(result, s.root / "monitoring", f"{model}_drift",
                                        f"Drift: {MODELS[model]} v{champion.version}",
                                        context_facts)
    table = result.table().drop(columns=["new_categories"]).assign(
        new_categories=[", ".join(f.new_categories) for f in result.features],
        model=MODELS[model], champion_version=str(champion.version), evaluated_at=_now())
    table_path = s.root / "monitoring" / f"{model}_drift.parquet"
    partial = table_path.with_name(f".{table_path.name}.partial")
    table.to_parquet(partial, index=False)
    os.replace(partial, table_path)  # a reader sees the old table or the new one

    verdict = verdict_text(result)
    context.log.info(f"{model}: {verdict}")
    meta = {
        **base_meta,
        "status": "evaluated",
        "dataset_drifted": result.dataset_drifted,
        "share_drifted": round(result.share_drifted, 4),
        "drifted_features": ", ".join(result.drifted_features) or "none",
        "top_features": ", ".join(result.top_features) or "n/a",
        "verdict": verdict,
        "drift_table": dg.MetadataValue.md(drift_markdown(result)),
        "report": dg.MetadataValue.path(str(html_path)),
        # the same report as the prediction service serves it, a link to open
        "report_url": dg.MetadataValue.url(s.drift_report_url(model)),
        "summary": dg.MetadataValue.path(str(json_path)),
        "dagster/row_count": len(table),
    }
    for name, extra in (("prediction", result.prediction), ("label", result.label)):
        if extra is not None:
            meta[f"{name}_drift_test"] = extra.test
            meta[f"{name}_drift_statistic"] = float(extra.statistic)
            meta[f"{name}_drifted"] = extra.drifted
    return dg.MaterializeResult(metadata=meta)


def champion_monitor_asset(model: str, key: dg.AssetKey, kinds: set[str], description: str,
                           config_type: type[dg.Config], evaluate) -> dg.AssetsDefinition:
    """A monitoring asset of a model's champion: ``evaluate(context, model, config,
    warehouse, settings, model_registry)`` computes it. Every such asset shares its upstream
    (the champion, the prediction log, the model's feature tables), group and rhythm. None
    holds the writer pool: they read the published snapshots and write files of their own."""

    @dg.asset(
        key=key, kinds=kinds, description=description,
        deps=[champion_key(model), PREDICTIONS_KEY,
              *[dg.AssetKey(["features", d]) for d in MONITORED[model].deps]],
        group_name=GROUP, automation_condition=DRIFT_AUTOMATION,
    )
    def _monitor(context: dg.AssetExecutionContext, config: config_type,
                 warehouse: DuckDBResource, settings: SettingsResource,
                 model_registry: ModelRegistryResource) -> dg.MaterializeResult:
        return evaluate(context, model, config, warehouse, settings, model_registry)

    return _monitor


def drift_asset(model: str) -> dg.AssetsDefinition:
    return champion_monitor_asset(
        model, drift_key(model), {"scipy", "parquet", "html"},
        f"Drift of {MODELS[model]}'s inputs, predictions and labels: the champion's "
        "training reference against the rows that arrived since it was trained and what "
        "the API was asked to score. HTML report and JSON summary under data/monitoring/.",
        DriftConfig, evaluate_drift)


drift_assets = [drift_asset(model) for model in MONITORED]


# -- realised performance ---------------------------------------------------------------------


class RealisedPerformanceConfig(dg.Config):
    horizon_days: int | None = None
    """A customer scored for churn churned if they bought nothing in this many days after
    (default: ``LEADSCORE_CHURN_HORIZON_DAYS``)."""
    calibration_bins: int = 10


def judged_predictions(conn: duckdb.DuckDBPyConnection, horizon_days: int) -> pd.DataFrame:
    """Served predictions with the outcome that followed, where one is known yet."""
    predictions = served_predictions(conn)
    if predictions is None or predictions.empty:
        return stack([])
    served = served_probabilities(predictions)
    served["model"] = served["model"].map(lambda m: SHORT_NAME.get(m, m))
    parts = []
    leads = read_table(conn, "features.lead_features")
    lead_rows = served[served["model"] == "lead_conversion"]
    if leads is not None and len(lead_rows):
        parts.append(lead_outcomes(lead_rows, leads))
    purchases = read_table(conn, PURCHASES)
    activity_rows = served[served["model"] == "activity_churn"]
    if purchases is not None and len(activity_rows):
        bought = purchases[purchases["bought"].fillna(False).astype(bool)]
        activity = pd.DataFrame({"subject": bought["customer_id"], "at": bought["invoice_date"]})
        as_of = pd.to_datetime(purchases["invoice_date"]).max()
        parts.append(churn_outcomes(activity_rows, activity, horizon_days, as_of))
    snapshot_rows = served[served["model"] == "snapshot_churn"]
    customers = read_table(conn, "features.customer_snapshot")
    payments = read_table(conn, PAYMENT_EVENTS)
    if customers is not None and payments is not None and len(snapshot_rows):
        emails = customers.dropna(subset=["email"])
        to_id = dict(zip(emails["email"].astype(str).str.lower(),
                         emails["customer_id"].astype(str).str.lower(), strict=False))
        paid = payments[payments["status"] == "succeeded"]
        activity = pd.DataFrame({
            "subject": paid["customer_email"].astype("string").str.lower().map(to_id),
            "at": paid["created_at"]}).dropna()
        as_of = pd.to_datetime(payments["created_at"]).max()
        parts.append(churn_outcomes(snapshot_rows, activity, horizon_days, as_of))
    return stack(parts)


# What realised_performance publishes beside the feature snapshots (``snapshot_reader`` shows
# them as these tables); the pages read the JSON copy of the summary.
PERFORMANCE_TABLE = "monitoring.realised_performance"
CALIBRATION_TABLE = "monitoring.realised_calibration"


@dg.asset(
    key=["monitoring", "realised_performance"],
    deps=[PREDICTIONS_KEY, dg.AssetKey(["features", "lead_features"]),
          dg.AssetKey(["features", "customer_snapshot"]),
          dg.AssetKey(["features", "customer_activity_latest"])],
    group_name=GROUP,
    kinds={"parquet", "scikit-learn"},
    # no writer pool: it reads the published snapshots and publishes its own
    # daily whatever changed: outcomes arrive with any of the deps, rarely with all of them
    automation_condition=(dg.AutomationCondition.cron_tick_passed("0 5 * * *")
                          & ~dg.AutomationCondition.in_progress()).with_label("daily at 05:00"),
)
def realised_performance(context: dg.AssetExecutionContext, config: RealisedPerformanceConfig,
                         warehouse: DuckDBResource,
                         settings: SettingsResource) -> dg.MaterializeResult:
    """ROC-AUC, Brier score and calibration of what each served model version predicted,
    against the outcomes that arrived since (a scored lead paid within its window; a scored
    customer bought again within the horizon). Published as ``PERFORMANCE_TABLE`` and
    ``CALIBRATION_TABLE`` snapshots."""
    with published_snapshots(warehouse) as conn:
        judged = judged_predictions(conn, churn_horizon_days(get_settings(),
                                                             config.horizon_days))
        summary, calibration = performance_by_version(judged, config.calibration_bins)
        for table, frame in ((PERFORMANCE_TABLE, summary), (CALIBRATION_TABLE, calibration)):
            conn.register("_perf", frame)
            publish_snapshot(conn, table, snapshot_dir(warehouse.database),
                             "SELECT * FROM _perf")
            conn.unregister("_perf")
    meta: dict[str, object] = {
        "judged_predictions": len(judged),
        "dagster/row_count": len(summary),
        "per_version": dg.MetadataValue.md(markdown_table(summary) if len(summary)
                                           else "no predictions with a known outcome yet"),
        "calibration": dg.MetadataValue.md(markdown_table(calibration) if len(calibration)
                                           else "n/a"),
    }
    for row in summary.itertuples(index=False):
        if np.isfinite(row.roc_auc):
            meta[f"roc_auc/{row.model}/v{row.version}"] = float(row.roc_auc)
    # for the pages, which never open the warehouse
    published = realised_performance_path(settings.get().root / "monitoring")
    rows = json.loads(summary.to_json(orient="records"))
    publish_file(lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=1)), published)
    meta["published"] = dg.MetadataValue.path(str(published))
    # the same outcomes over calendar time, with the label-free estimate beside each window
    windows = json.loads(performance_over_time(judged).to_json(orient="records"))
    over_time = realised_over_time_path(settings.get().root / "monitoring")
    publish_file(lambda tmp: Path(tmp).write_text(json.dumps(windows, indent=1)), over_time)
    meta["over_time"] = dg.MetadataValue.path(str(over_time))
    context.log.info(f"{len(judged)} served predictions have a known outcome")
    return dg.MaterializeResult(metadata=meta)


monitoring_assets = [*drift_assets, realised_performance]
