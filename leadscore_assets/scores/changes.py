"""Score changes since the previous scoring, explained, and the moves that matter pushed.

``scores/lead_changes`` and ``scores/customer_changes`` follow their scores: each compares the
scoring just made with the one before it (kept in ``scores.<kind>_previous_scoring`` with every
feature's value and contribution) and publishes the entities that moved, a table
(``scores.lead_changes``, ``scores.customer_changes``) and a CSV a CRM imports
(``lead_score_changes.csv``, ``customer_risk_changes.csv``): the tier or risk move ("B→D"),
the score change, and the features whose contributions changed most ("days since last
purchase +21 (10 → 31)", from ``leadscore_core.changes``).

The moves that matter (by default a lead into tier A, a customer into High risk; see
``ScoreMoveAlerts``) go out as one alert per scoring run through the ``AlertChannel`` (the
webhook and ``alerts.jsonl``), each with a link to the lead's or customer's page. The first
scoring has nothing to compare with: it records the baseline and announces nothing.
"""


from collections.abc import Callable

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import Alert, AlertChannel
from leadscore_assets.features.assets import markdown_table
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.resources import WAREHOUSE_POOL, SettingsResource
from leadscore_assets.scores.assets import GROUP, export_csv
from leadscore_core.changes import contributions_long, moves_into, score_changes
from leadscore_core.registry import ModelRegistry
from leadscore_core.serving import ModelBundle
from leadscore_core.warehouse import read_table, write_table

LEAD_CHANGES_EXPORT = "lead_score_changes.csv"
CUSTOMER_CHANGES_EXPORT = "customer_risk_changes.csv"
CUSTOMER_FEATURES = {"activity_churn": "features.customer_activity_latest",
                     "snapshot_churn": "features.customer_snapshot"}


class ScoreMoveAlerts(dg.Config):
    lead_tiers: list[str] = ["A"]
    """A lead moving into one of these tiers is announced."""
    risk_levels: list[str] = ["High"]
    """A customer moving into one of these risk levels is announced."""
    include_new: bool = True
    """Also announce entities scored for the first time straight into one of them."""
    listed: int = 50
    """Most entities listed in one alert (the count covers them all)."""


def feature_contributions(bundle: ModelBundle, features: pd.DataFrame,
                          keys: pd.DataFrame) -> pd.DataFrame:
    """Every feature's shown value and contribution for each row of ``features`` (binary
    models: the one explainer's contributions on the log-odds scale, the base value left
    out), the same the exports and the API give as reasons."""
    X = bundle.encoder.transform_frame(features)
    contrib = bundle.explainer.contributions(X)[:, 0, :-1]
    specs = bundle.encoder.specs
    numeric = np.array([s.kind == "numeric" for s in specs])
    numbers = np.where(numeric[None, :], X, np.nan)
    shown = [[spec.decode(x) for spec, x in zip(specs, row, strict=True)] for row in X]
    return contributions_long(keys.reset_index(drop=True), [s.original_name for s in specs],
                              shown, numbers, contrib)


def _rows_for(features: pd.DataFrame, id_column: str, ids: pd.Series) -> pd.DataFrame:
    """The feature row of each id, in the order of ``ids`` (the first row of a repeated id)."""
    table = features.assign(_id=features[id_column].astype("string")).drop_duplicates("_id")
    return table.set_index("_id").reindex(ids.astype("string").to_numpy()).reset_index(
        drop=True)


def lead_scoring(conn, registry: ModelRegistry) -> tuple[pd.DataFrame, pd.DataFrame]:
    scores = read_table(conn, "scores.leads")
    if scores is None or scores.empty:
        return pd.DataFrame(columns=["lead_id", "level", "value", "model_version"]), \
            pd.DataFrame(columns=["lead_id", "feature", "value", "number", "contribution"])
    current = pd.DataFrame({"lead_id": scores["lead_id"].astype("string"),
                            "level": scores["tier"].astype("string"),
                            "value": scores["score"].astype("float64"),
                            "model_version": scores["model_version"].astype("string")})
    features = read_table(conn, "features.lead_features")
    parts = []
    for version, group in current.groupby("model_version"):
        bundle = registry.load_bundle("lead_conversion", str(version))
        rows = _rows_for(features, "lead_id", group["lead_id"])
        parts.append(feature_contributions(bundle, rows, group[["lead_id"]]))
    return current, pd.concat(parts, ignore_index=True)


def customer_scoring(conn, registry: ModelRegistry) -> tuple[pd.DataFrame, pd.DataFrame]:
    scores = read_table(conn, "scores.customers")
    key = ["customer_id"]
    if scores is None or scores.empty:
        return pd.DataFrame(columns=[*key, "model", "level", "value", "model_version"]), \
            pd.DataFrame(columns=[*key, "feature", "value", "number", "contribution"])
    # one row per customer: the level and probability the risk rule chose, and the reasons of
    # the model it chose them from
    model = scores["risk_model"].astype("string")
    version = pd.Series([scores.at[i, f"{m}_version"] for i, m in zip(scores.index, model,
                                                                       strict=True)],
                        index=scores.index, dtype="string")
    current = pd.DataFrame({"customer_id": scores["customer_id"].astype("string"),
                            "model": model,
                            "level": scores["risk_level"].astype("string"),
                            "value": scores["churn_probability"].astype("float64"),
                            "model_version": version})
    parts = []
    for (model, version), group in current.groupby(["model", "model_version"]):
        features = read_table(conn, CUSTOMER_FEATURES[str(model)])
        bundle = registry.load_bundle(str(model), str(version))
        rows = _rows_for(features, "customer_id", group["customer_id"])
        parts.append(feature_contributions(bundle, rows, group[key]))
    return current, pd.concat(parts, ignore_index=True)


def scoring_id(context: dg.AssetExecutionContext, kind: str) -> str:
    """The scoring being compared: the storage id of the scores asset's latest
    materialization (two scorings in the same second are still two)."""
    records = context.instance.fetch_materializations(dg.AssetKey(["scores", kind]),
                                                      limit=1).records
    return str(records[0].storage_id) if records else ""


def page_url(base: str, kind: str, entity: str) -> str:
    return f"{base.rstrip('/')}/ui/{kind}/{entity}"


def announce(alerts: AlertChannel, kind: str, moves: pd.DataFrame, id_column: str,
             base_url: str, run_id: str, listed: int) -> bool:
    """One alert for the run's moves that matter; False when there were none."""
    if moves.empty:
        return False
    items = []
    for row in moves.head(listed).itertuples(index=False):
        entity = str(getattr(row, id_column))
        items.append({
            "id": entity, "move": row.move or f"new→{row.level}", "level": row.level,
            "value": float(row.value),
            "previous_value": None if pd.isna(row.previous_value) else float(
                row.previous_value),
            "reasons": row.changed_reasons, "url": page_url(base_url, kind, entity),
            **({"model": row.model} if "model" in moves else {}),
        })
    noun = "lead" if kind == "leads" else "customer"
    lines = [f"{i['id']}: {i['move']}" + (f" ({i['reasons']})" if i["reasons"] else "")
             + f" {i['url']}" for i in items]
    more = len(moves) - len(items)
    return alerts.send(Alert(
        key=f"score_moves/{kind}/{run_id}", kind="score_moves", severity="warning",
        title=f"{len(moves)} {noun}{'s' if len(moves) != 1 else ''} moved into "
              f"{', '.join(sorted(set(moves['level'])))}",
        asset=f"scores/{kind}", counts={"moves": len(moves)}, run_id=run_id,
        detail="\n".join(lines) + (f"\n… and {more} more" if more > 0 else ""),
        items=items,
    ))


def publish_changes(context: dg.AssetExecutionContext, kind: str, key: list[str],
                    scoring, levels: list[str], config: ScoreMoveAlerts,
                    warehouse: DuckDBResource, settings: SettingsResource,
                    model_registry: ModelRegistryResource, alerts: AlertChannel,
                    export: str) -> dg.MaterializeResult:
    state_table = f"scores.{kind[:-1]}_previous_scoring"
    contrib_table = f"scores.{kind[:-1]}_previous_contributions"
    scored = scoring_id(context, kind)
    with warehouse.get_connection() as conn:
        current, contributions = scoring(conn, model_registry.registry())
        current["scoring"] = scored
        previous = read_table(conn, state_table)
        previous_contributions = read_table(conn, contrib_table)
        first = previous is None or previous_contributions is None
        if not first and scored and len(previous) and (previous["scoring"] == scored).all():
            return dg.MaterializeResult(metadata={
                "first_scoring": False, "entities": len(current),
                "changes": "this scoring was compared already: the published changes stand"})
        changes = (pd.DataFrame() if first else score_changes(
            previous, current, key, previous_contributions, contributions))
        if not first:
            write_table(conn, f"scores.{kind[:-1]}_changes",
                        changes.assign(scored_at=pd.Timestamp.now(tz="UTC").tz_localize(None)))
        write_table(conn, state_table, current)
        write_table(conn, contrib_table, contributions)
    s = settings.get()
    if first:
        return dg.MaterializeResult(metadata={
            "first_scoring": True, "entities": len(current),
            "changes": "first scoring: recorded as the baseline, nothing to compare with"})
    path = export_csv(changes, s.exports_dir / export)
    moves = moves_into(changes, levels, config.include_new)
    sent = announce(alerts, kind, moves, key[0], s.app_url, context.run.run_id, config.listed)
    counts = changes["status"].value_counts().to_dict()
    level_moves = changes.loc[changes["move"] != "", "move"].value_counts().head(12)
    return dg.MaterializeResult(metadata={
        "first_scoring": False,
        "entities": len(current),
        "dagster/row_count": len(changes),
        "new": int(counts.get("new", 0)), "gone": int(counts.get("gone", 0)),
        "changed": int(counts.get("changed", 0)),
        "moves_that_matter": len(moves), "alert_sent": sent,
        "moves": dg.MetadataValue.md(markdown_table(level_moves.rename("entities")
                                                    .reset_index()) if len(level_moves)
                                     else "no level moves"),
        "largest_changes": dg.MetadataValue.md(markdown_table(
            changes[changes["status"] == "changed"].assign(
                _size=lambda d: d["value_change"].abs()).sort_values("_size", ascending=False)
            .drop(columns="_size").head(10)) if counts.get("changed") else "none"),
        "export": dg.MetadataValue.path(str(path)),
    })


def changes_asset(key: list[str], kind: str, id_column: str, scoring,
                  levels: Callable[[ScoreMoveAlerts], list[str]], export: str,
                  description: str) -> dg.AssetsDefinition:
    """The changes of ``scores/<kind>`` since its previous scoring (``publish_changes``),
    with the moves into ``levels(config)`` announced."""

    @dg.asset(
        key=key, deps=[dg.AssetKey(["scores", kind])], description=description,
        group_name=GROUP, kinds={"duckdb", "csv"}, pool=WAREHOUSE_POOL,
    )
    def _changes(context: dg.AssetExecutionContext, config: ScoreMoveAlerts,
                 warehouse: DuckDBResource, settings: SettingsResource,
                 model_registry: ModelRegistryResource,
                 alerts: AlertChannel) -> dg.MaterializeResult:
        return publish_changes(context, kind, [id_column], scoring, levels(config), config,
                               warehouse, settings, model_registry, alerts, export)

    return _changes


lead_changes = changes_asset(
    ["scores", "lead_changes"], "leads", "lead_id", lead_scoring,
    lambda config: config.lead_tiers, LEAD_CHANGES_EXPORT,
    "Leads whose tier or score changed since the previous scoring (and new and gone ones), "
    "with the reasons whose contributions changed most; leads moving into the configured "
    "tiers are announced in one alert per run, each with a link to its page.")
customer_changes = changes_asset(
    ["scores", "customer_changes"], "customers", "customer_id", customer_scoring,
    lambda config: config.risk_levels, CUSTOMER_CHANGES_EXPORT,
    "Customers whose churn risk level or probability changed since the previous scoring "
    "(one row per customer, as ``scores/customers`` has them), with the reasons whose "
    "contributions changed most; customers moving into the configured risk levels are "
    "announced in one alert per run, each with a link to its page.")

change_assets = [lead_changes, customer_changes]
