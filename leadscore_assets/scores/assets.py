"""Batch scores with the champion models, and the read-only snapshot the API serves from.

``scores/leads`` ranks every lead without a decision yet (one row per lead);
``scores/customers`` gives every customer one row with each churn model's probability and one
risk level (published as a Parquet snapshot too, which the customer pages rank). Both use
the registry's ``champion`` versions (never the freshly trained
challenger) and depend on the champion assets, which materialise only when a challenger is
promoted: a challenger that loses leaves the scores as they were. Each table is also
exported as a CSV a CRM can import: plain header, ISO 8601 dates, UTF-8, written to a
temporary file and renamed into place so an importer never reads half a file.

``serving/customer_activity_snapshot`` publishes the latest activity features per customer as
a Parquet file for the API, swapped in with an atomic rename: the API never opens the
warehouse, which has one writer.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from leadscore_assets.features.assets import active_profile, markdown_table, required_table
from leadscore_assets.models.champion import champion_key
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.resources import WAREHOUSE_POOL, SettingsResource
from leadscore_core.horizons import churn_horizons, lead_horizon
from leadscore_core.profiles import snake
from leadscore_core.published import customer_accounts_path, open_leads_path, publish_file
from leadscore_core.reasons import FieldDisplay, Link, bundle_link, displays_for, human_reason
from leadscore_core.registry import CHAMPION, MODELS, ModelRegistry
from leadscore_core.serving import Explanation, ModelBundle
from leadscore_core.settings import Settings
from leadscore_core.tiers import (
    CHURN_MODELS,
    customer_risk,
    lead_tiers_document,
    lead_tiers_path,
    quartile_boundaries,
    risk_rule,
    tiers_of,
)
from leadscore_core.warehouse import (
    publish_snapshot,
    read_table,
    snapshot_dir,
    table_exists,
    write_table,
)

GROUP = "scores"
TOP_REASONS = 3
LEAD_EXPORT = "lead_scores.csv"
CUSTOMER_EXPORT = "customer_churn_risk.csv"


class CustomerRiskConfig(dg.Config):
    high_threshold: float | None = None
    """Churn probability at or above which a customer's risk is High (default:
    ``LEADSCORE_CHURN_HIGH``, the same the API uses)."""
    medium_threshold: float | None = None
    """Churn probability at or above which (and below High) the risk is Medium (default:
    ``LEADSCORE_CHURN_MEDIUM``)."""

    def thresholds(self, settings: Settings) -> tuple[float, float]:
        high = settings.churn_high if self.high_threshold is None else self.high_threshold
        medium = (settings.churn_medium if self.medium_threshold is None
                  else self.medium_threshold)
        return high, medium


def risk_levels(probability: np.ndarray, high: float, medium: float) -> list[str]:
    risk = risk_rule(high, medium)
    return [risk(float(p)) for p in probability]


def quartile_tiers(scores: np.ndarray) -> tuple[list[str], list[float]]:
    """A (top quartile) to D, by the quartiles of these scores (the current open leads)."""
    bounds = quartile_boundaries(scores)
    return tiers_of(scores, bounds), bounds


def reason_columns(explanations: list[Explanation], link: Link,
                   displays: dict[str, FieldDisplay] | None = None,
                   top_k: int = TOP_REASONS,
                   sent: list[dict] | None = None) -> pd.DataFrame:
    """``reason_for_1..k`` / ``reason_against_1..k`` as people read them ("Business type is
    Dental: +12 points", ``leadscore_core.reasons``), each with its raw contribution in
    ``..._contribution`` for machines; a missing value that does not move the score is left
    out. ``sent``: per row, the record as its file had it (keyed by the export's column
    names), so a category reads as sent, as in the API's answers."""
    rows = []
    for k, e in enumerate(explanations):
        record = sent[k] if sent else {}
        row: dict[str, object] = {}
        for side, reasons in (("for", e.reasons_for), ("against", e.reasons_against)):
            human = [h for h in (human_reason(r.feature, r.value, r.contribution,
                                              raw_score=e.raw_score, link=link,
                                              displays=displays, sent=record.get(r.feature))
                                 for r in reasons) if h]
            for i in range(top_k):
                found = human[i] if i < len(human) else None
                row[f"reason_{side}_{i + 1}"] = found.sentence if found else ""
                row[f"reason_{side}_{i + 1}_contribution"] = (
                    round(found.contribution, 6) if found else None)
        rows.append(row)
    columns = [f"reason_{s}_{i + 1}{part}" for s in ("for", "against") for i in range(top_k)
               for part in ("", "_contribution")]
    return pd.DataFrame(rows, columns=columns).astype(
        {c: "float64" for c in columns if c.endswith("_contribution")})


def scored_leads_frame(open_leads: pd.DataFrame, bundle: ModelBundle, version: str, *,
                       displays: dict[str, FieldDisplay] | None = None,
                       sent: list[dict] | None = None) -> tuple[pd.DataFrame, list[float]]:
    """The rows of ``scores/leads`` for these open leads (``lead_id``, ``email``,
    ``created_at`` and the model's features): score, tier by the quartiles of these scores,
    probability and the top reasons, best first; and the tier boundaries."""
    X = bundle.encoder.transform_frame(open_leads)
    probability = bundle.predict_proba(X) if len(open_leads) else np.empty(0)
    scores = ModelBundle.score(probability)
    tiers, bounds = quartile_tiers(scores) if len(scores) else ([], [])
    frame = pd.concat([
        pd.DataFrame({
            "lead_id": open_leads["lead_id"].astype("string"),
            "email": open_leads["email"].astype("string"),
            "created_at": pd.to_datetime(open_leads["created_at"]),
            "score": scores.astype("int64"),
            "tier": pd.Series(tiers, dtype="string"),
            "probability": probability.round(6),
        }),
        reason_columns(bundle.explain(X, top_k=TOP_REASONS) if len(X) else [],
                       bundle_link(bundle), displays, sent=sent),
    ], axis=1)
    frame = frame.sort_values(["score", "lead_id"], ascending=[False, True],
                              ignore_index=True)
    frame["model_version"] = version
    return frame, bounds


def export_csv(frame: pd.DataFrame, path: Path) -> Path:
    """CRM-importable CSV: header, ISO dates, UTF-8; replaced atomically."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S").where(out[col].notna(), "")
    return publish_file(
        lambda tmp: out.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n"), path)


def _champion(registry: ModelRegistry, model: str) -> tuple[ModelBundle, str]:
    version = registry.by_alias(model, CHAMPION)
    if version is None:
        raise dg.Failure(f"{MODELS[model]} has no champion version yet: the champion gate "
                         f"has not promoted any training")
    return registry.load_bundle(model, version.version), str(version.version)


def customer_rows(columns: dict[str, pd.Series], versions: dict[str, str], high: float,
                  medium: float, horizon: str | Mapping[str, str]) -> pd.DataFrame:
    """One row per customer from each churn model's probabilities (a Series by customer id
    per model in ``columns``): each model's probability and version in its own columns, and
    one risk level by ``customer_risk``'s rule. ``horizon``: the one every row states, or
    per model (each row states that of its ``risk_model``)."""
    probabilities = pd.DataFrame(columns).sort_index()
    probabilities.index.name = "customer_id"
    probability, levels, risk_models = customer_risk(
        probabilities.to_numpy(dtype=np.float64), list(probabilities.columns), high, medium)
    frame = pd.DataFrame({"customer_id": probabilities.index.astype("string")})
    frame["risk_level"] = pd.Series(levels, dtype="string")
    frame["churn_probability"] = probability
    frame["risk_model"] = pd.Series(risk_models, dtype="string")
    for model in CHURN_MODELS:
        known = model in probabilities
        frame[f"{model}_probability"] = (probabilities[model].to_numpy() if known
                                         else np.nan)
        frame[f"{model}_version"] = pd.Series(
            np.where(probabilities[model].notna().to_numpy(), versions[model], None)
            if known else None, dtype="string")
    frame["horizon"] = (frame["risk_model"].map(horizon).astype("string")
                        if isinstance(horizon, Mapping) else horizon)
    return frame


def raw_records(conn, rows: pd.DataFrame, source: str = "leads",
                id_column: str = "lead_id") -> dict[str, dict]:
    """Each row's raw record (its row as the file had it: the export's column names and
    spellings), by id; empty without ``raw.<source>`` or the lineage columns."""
    lineage = {"_source_file", "_row_number"}
    if not table_exists(conn, f"raw.{source}") or not lineage <= set(rows):
        return {}
    keys = rows[[id_column, "_source_file", "_row_number"]].rename(columns={id_column: "_id"})
    conn.register("_row_keys", keys.assign(_id=keys["_id"].astype("string")))
    try:
        records = conn.execute(
            f"SELECT k._id, r.record FROM _row_keys k JOIN raw.{source} r "
            "ON r._source_file = k._source_file AND r._row_number = k._row_number").df()
    finally:
        conn.unregister("_row_keys")
    return {i: json.loads(r) for i, r in zip(records["_id"], records["record"], strict=True)}


def spelt_as_sent(frame: pd.DataFrame, bundle: ModelBundle, records: dict[str, dict],
                  id_column: str) -> pd.DataFrame:
    """``frame`` with each categorical feature as the row's file spelled it (``Dental``, not
    the model's ``dental``): the API normalises what it scores itself, and words its reasons
    as sent."""
    if not records:
        return frame
    out = frame.copy()
    ids = out[id_column].astype("string").to_numpy()
    for spec in bundle.encoder.specs:
        if spec.kind == "categorical" and spec.name in out.columns:
            cleaned = out[spec.name].astype(object)
            out[spec.name] = pd.Series(
                [v if pd.isna(v) else _as_sent(records.get(i), spec.original_name) or v
                 for i, v in zip(ids, cleaned, strict=True)], dtype="string", index=out.index)
    return out


def open_leads_frame(scored: pd.DataFrame, open_leads: pd.DataFrame, bundle: ModelBundle,
                     personal: list[str], records: dict[str, dict]) -> pd.DataFrame:
    """The exported rows plus each lead's model features and the profile's ``personal``
    columns (name, company) from its raw record, for the pages to filter and search.

    A categorical feature is published as the lead's file spelled it (``spelt_as_sent``):
    the lead page posts these values to the scoring the API uses."""
    features = [s.name for s in bundle.encoder.specs if s.name in open_leads.columns]
    extra = open_leads[["lead_id", *[f for f in features if f not in scored.columns]]]
    out = spelt_as_sent(scored.merge(extra, on="lead_id", how="left"), bundle, records,
                        "lead_id")
    if not records:
        return out
    ids = out["lead_id"].to_numpy()
    for name, column in {snake(p): p for p in personal if snake(p) not in out.columns}.items():
        out[name] = pd.Series([(records.get(i) or {}).get(column) or None for i in ids],
                              dtype="string")
    return out


def _as_sent(record: dict | None, column: str) -> str | None:
    """A field of a raw record as its file spelled it (white space folded), if text."""
    value = (record or {}).get(column)
    if not isinstance(value, str) or not value.strip():
        return None
    return " ".join(value.split())


@dg.asset(
    key=["scores", "leads"],
    deps=[champion_key("lead_conversion"), dg.AssetKey(["features", "lead_features"])],
    group_name=GROUP, kinds={"duckdb", "csv"}, pool=WAREHOUSE_POOL,
)
def lead_scores(warehouse: DuckDBResource, settings: SettingsResource,
                model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    """Every open lead (no conversion decided yet) scored 0-100 by the champion model, tiered A
    to D by quartile of the current open leads, with its top three reasons for and against."""
    bundle, version = _champion(model_registry.registry(), "lead_conversion")
    with warehouse.get_connection() as conn:
        profile = active_profile(settings, "leads", conn)
        leads = required_table(conn, "features.lead_features")
        open_leads = leads[leads["converted"].isna()].reset_index(drop=True)
        # the reasons word a category as the lead's file spelled it, as the API words it
        # as the request sent it
        records = raw_records(conn, open_leads)
        frame, bounds = scored_leads_frame(
            open_leads, bundle, version,
            displays=displays_for(profile.display if profile else None),
            sent=[records.get(i) or {} for i in open_leads["lead_id"]])
        frame["horizon"] = lead_horizon(settings.get(), profile)
        frame["scored_at"] = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None, microsecond=0))
        write_table(conn, "scores.leads", frame)
        published = open_leads_frame(frame, open_leads, bundle,
                                     list(profile.personal) if profile else [], records)
    path = export_csv(frame, settings.get().exports_dir / LEAD_EXPORT)
    # the pages' lead list: the same rows, with each lead's fields (never the warehouse)
    publish_file(lambda tmp: published.to_parquet(tmp, index=False),
                 open_leads_path(settings.get().serving_snapshot))
    tiers_file = None
    if bounds:
        # the API tiers a posted lead by these same boundaries while this version is served
        document = lead_tiers_document(MODELS["lead_conversion"], version, bounds,
                                       open_leads=len(frame))
        tiers_file = publish_file(
            lambda tmp: Path(tmp).write_text(json.dumps(document, indent=2)),
            lead_tiers_path(settings.get().serving_snapshot))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "model_version": version,
        "tier_boundaries": ", ".join(f"{b:g}" for b in bounds),
        "tier_boundaries_file": dg.MetadataValue.path(str(tiers_file) if tiers_file else ""),
        "tiers": dg.MetadataValue.json(frame["tier"].value_counts().sort_index().to_dict()),
        "export": dg.MetadataValue.path(str(path)),
        "top_leads": dg.MetadataValue.md(markdown_table(
            frame[["lead_id", "score", "tier", "reason_for_1", "reason_against_1"]].head(10))),
    })


@dg.op(
    name="score_customers",
    # each input is a fan-in: the step runs when either churn model's champion (and either
    # model's features) is new in the run, and is skipped only when neither is, so a
    # business with only customer snapshots (or only invoices) gets its scores
    ins={"champions": dg.In(dg.Nothing), "features": dg.In(dg.Nothing)},
    out=dg.Out(dg.Nothing),
    pool=WAREHOUSE_POOL,
)
def score_customers(context: dg.OpExecutionContext, config: CustomerRiskConfig,
                    warehouse: DuckDBResource, settings: SettingsResource,
                    model_registry: ModelRegistryResource) -> None:
    """Score every customer with the churn champions there are (see ``customer_scores``)."""
    context.add_output_metadata(_score_customers(config, warehouse, settings, model_registry))


@dg.graph_asset(
    key=["scores", "customers"],
    ins={
        "activity_champion": dg.AssetIn(champion_key("activity_churn"),
                                        dagster_type=dg.Nothing),
        "snapshot_champion": dg.AssetIn(champion_key("snapshot_churn"),
                                        dagster_type=dg.Nothing),
        "activity_features": dg.AssetIn(["features", "customer_activity_latest"],
                                        dagster_type=dg.Nothing),
        "snapshot_features": dg.AssetIn(["features", "customer_snapshot"],
                                        dagster_type=dg.Nothing),
    },
    group_name=GROUP, kinds={"duckdb", "csv"},
)
def customer_scores(activity_champion, snapshot_champion, activity_features,
                    snapshot_features):
    """One row per customer: each churn model's probability in its own column (purchase
    activity from invoices, the account snapshot), each by its champion, and one risk level
    (High, Medium, Low) by ``customer_risk``'s rule: the highest of the probabilities. Runs
    when either model has a new champion: a business with one of the two sources is scored
    by its one model. Publishes the account snapshots' features for the customer pages and
    the API with each category as the customer's file spelled it
    (``serving/customer_accounts.parquet``)."""
    return score_customers(champions=[activity_champion, snapshot_champion],
                           features=[activity_features, snapshot_features])


def _score_customers(config: CustomerRiskConfig, warehouse: DuckDBResource,
                     settings: SettingsResource,
                     model_registry: ModelRegistryResource) -> dict[str, object]:
    registry = model_registry.registry()
    high, medium = config.thresholds(settings.get())
    columns, versions = {}, {}
    accounts = None
    with warehouse.get_connection() as conn:
        for model, table in (("activity_churn", "features.customer_activity_latest"),
                             ("snapshot_churn", "features.customer_snapshot")):
            features = read_table(conn, table)
            if features is None or registry.by_alias(model, CHAMPION) is None:
                continue  # this business has no such data (or no model trained on it yet)
            bundle, version = _champion(registry, model)
            probability = bundle.predict_frame(features) if len(features) else np.empty(0)
            versions[model] = version
            ids = features["customer_id"].astype("string")
            if ids.duplicated().any():
                raise dg.Failure(f"{table} holds {int(ids.duplicated().sum())} customers twice")
            columns[model] = pd.Series(np.round(probability, 6), index=pd.Index(ids))
            if model == "snapshot_churn":  # the customer pages read these fields as sent
                accounts = spelt_as_sent(features, bundle, raw_records(
                    conn, features, "customers", "customer_id"), "customer_id")
        if not columns:
            raise dg.Failure("no churn champion and customer features to score: train "
                             "models/activity_churn or models/snapshot_churn first")
        # each row states the horizon of the model its risk comes from: the activity horizon,
        # or the customer profile's (what the snapshot's own churn label means)
        horizons = churn_horizons(settings.get(), active_profile(settings, "customers", conn))
        frame = customer_rows(columns, versions, high, medium, horizons)
        frame["scored_at"] = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None, microsecond=0))
        write_table(conn, "scores.customers", frame)
        # the customer pages rank these rows (the API never opens the warehouse)
        publish_snapshot(conn, "scores.customers", snapshot_dir(warehouse.database))
    path = export_csv(frame, settings.get().exports_dir / CUSTOMER_EXPORT)
    if accounts is not None:
        publish_file(lambda tmp: accounts.to_parquet(tmp, index=False),
                     customer_accounts_path(settings.get().serving_snapshot))
    levels = frame.groupby(["risk_model", "risk_level"]).size().rename("customers").reset_index()
    return {
        "dagster/row_count": len(frame),
        "model_versions": dg.MetadataValue.json(versions),
        "risk_rule": "the highest of the churn models' probabilities",
        "risk_levels": dg.MetadataValue.md(markdown_table(levels)),
        "thresholds": f"High >= {high}, Medium >= {medium}",
        "export": dg.MetadataValue.path(str(path)),
    }


@dg.asset(
    key=["serving", "customer_activity_snapshot"],
    deps=[dg.AssetKey(["features", "customer_activity_latest"])],
    group_name="serving", kinds={"parquet"}, pool=WAREHOUSE_POOL,
)
def customer_activity_snapshot(warehouse: DuckDBResource,
                               settings: SettingsResource) -> dg.MaterializeResult:
    """The latest activity features per customer as a Parquet file for the API, published by
    writing a new file beside the served one and renaming it into place (atomic)."""
    target = settings.get().serving_snapshot
    with warehouse.get_connection() as conn:
        frame = required_table(conn, "features.customer_activity_latest")
    publish_file(lambda tmp: frame.to_parquet(tmp, index=False), target)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "path": dg.MetadataValue.path(str(target)),
        "as_of": str(frame["cutoff"].max()) if len(frame) else "",
    })


score_assets = [lead_scores, customer_scores, customer_activity_snapshot]
