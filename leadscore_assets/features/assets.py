"""Feature assets: the clean tables turned into what the models learn from and score.

Each asset writes one table of the ``features`` schema (the asset ``features/lead_features`` is
the table ``features.lead_features``). The computations are the plain functions of
``features.leads``, ``features.activity`` and ``features.snapshot``; these assets read the
clean tables, call them with the configured windows and cutoffs, and publish the result.

Which columns are model inputs is read back from the warehouse's column types (VARCHAR is a
category, DOUBLE a number, BOOLEAN a flag), because the clean tables already carry exactly the
active profile's typed features.
"""

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from leadscore_assets.features.activity import (
    ACTIVITY_FEATURES,
    DAY,
    activity_features,
    activity_training_set,
    churn_cutoffs,
)
from leadscore_assets.features.leads import lead_features, plan_label
from leadscore_assets.features.snapshot import (
    MONEY_SET_ASIDE,
    PAYMENT_FEATURES,
    SEVERAL_CURRENCIES,
    money_set_aside,
    snapshot_features,
)
from leadscore_assets.resources import WAREHOUSE_POOL, SettingsResource
from leadscore_core.horizons import churn_horizon_days, lead_window_days
from leadscore_core.money import PAYMENT_AMOUNTS
from leadscore_core.plans import PlanCatalogue
from leadscore_core.profiles import Profile, load_profiles, snake
from leadscore_core.settings import get_settings
from leadscore_core.warehouse import (
    publish_snapshot,
    read_table,
    snapshot_dir,
    write_table,
)

GROUP = "features"
KINDS = {"duckdb"}

# Columns of the feature tables that are never model inputs.
NOT_FEATURES = frozenset({
    "lead_id", "customer_id", "profile", "created_at", "email", "converted", "churned",
    "label_source", "paid_at", "plan", "cutoff", "payments_matched", PAYMENT_AMOUNTS,
    "_source_file", "_row_number", "_ingested_at",
})
_SQL_KIND = {"VARCHAR": "categorical", "BOOLEAN": "boolean"}
_NUMERIC_SQL = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "INTEGER", "BIGINT", "SMALLINT",
                "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER")


# -- warehouse helpers ---------------------------------------------------------------------------


def table_feature_kinds(conn: duckdb.DuckDBPyConnection, table: str,
                        exclude: frozenset[str] = NOT_FEATURES) -> dict[str, str]:
    """Feature column -> kind, from the warehouse's column types, in table order."""
    schema, name = table.split(".")
    rows = conn.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE schema_name = ? AND table_name = ? ORDER BY column_index", [schema, name]
    ).fetchall()
    kinds: dict[str, str] = {}
    for column, sql_type in rows:
        if column in exclude:
            continue
        base = sql_type.split("(")[0].upper()
        if base in _SQL_KIND:
            kinds[column] = _SQL_KIND[base]
        elif base in _NUMERIC_SQL:
            kinds[column] = "numeric"
    return kinds


def original_names(profile: Profile | None) -> dict[str, str]:
    """Warehouse feature name -> the export's column name, for reasons people can read."""
    if profile is None:
        return {}
    f = profile.features
    return {snake(c): c for c in [*f.categorical, *f.numeric, *f.boolean]}


def active_profile(settings: SettingsResource, source: str, conn=None) -> Profile | None:
    """The profile ``clean.<source>`` was typed with (read from the table when ``conn`` is
    given), else the one the settings choose."""
    s = settings.get()
    name = table_profile(conn, source) if conn is not None else None
    return load_profiles(s.user_profiles_dir).get(name or s.profile_name(source))


# Where a source's rows carry the profile they were typed with: the clean table, and the
# feature table built from it (the published snapshots the models read hold only the latter).
PROFILE_TABLES = {"leads": ("clean.leads", "features.lead_features"),
                  "customers": ("clean.customers", "features.customer_snapshot")}


def table_profile(conn, source: str) -> str | None:
    """The profile of the rows of ``clean.<source>``, or of the feature table built from it
    when the connection has no clean tables (None when neither has one)."""
    for table in PROFILE_TABLES.get(source, (f"clean.{source}",)):
        try:
            row = conn.execute(f"SELECT any_value(profile) FROM {table}").fetchone()
        except duckdb.Error:
            continue
        if row and row[0]:
            return row[0]
    return None


def skipped(context: dg.AssetExecutionContext, *keys: list[str], reason: str):
    """Materialise nothing for ``keys`` (their downstream steps are skipped, the run goes on)
    and say why: an observation on each asset, shown in the UI, and a log line."""
    context.log.warning(f"{', '.join('/'.join(k) for k in keys)}: skipped: {reason}")
    for key in keys:
        yield dg.AssetObservation(asset_key=key, metadata={"skipped": reason})


def markdown_table(frame: pd.DataFrame) -> str:
    """A small frame as a GitHub-flavoured markdown table (for asset metadata)."""
    def cell(value: object) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _preview(frame: pd.DataFrame, rows: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame.head(rows)))


# -- config --------------------------------------------------------------------------------------


class LeadFeaturesConfig(dg.Config):
    window_days: int | None = None
    """A lead converted when a succeeded payment with its email arrives within this many days
    (default: the lead profile's ``horizon_days``, else ``LEADSCORE_LEAD_WINDOW_DAYS``: the
    horizon the scores state)."""

    def days(self, profile: Profile | None = None) -> int:
        return lead_window_days(get_settings(), self.window_days, profile)


class ActivityFeaturesConfig(dg.Config):
    horizon_days: int | None = None
    """A customer churned at a cutoff when they buy nothing in this many days after it
    (default: ``LEADSCORE_CHURN_HORIZON_DAYS``, the horizon the scores state)."""
    cutoffs: list[str] = []
    """Training cutoffs (ISO dates, ascending; the last is held out). Empty: chosen from the
    data so that every training label is observed before the held-out cutoff."""
    cutoff_count: int = 4
    cutoff_step_days: int = 30

    def horizon(self) -> int:
        return churn_horizon_days(get_settings(), self.horizon_days)


# Published beside the feature snapshots for what judges served predictions afterwards
# (``monitoring/realised_performance``), so it never opens the warehouse either: with the
# activity features, each customer's invoice days (and whether they bought that day); with
# the snapshot features, the payments' email, time and status.
PURCHASES = "features.purchases"
PURCHASES_SQL = ("SELECT customer_id, invoice_date, bool_or(coalesce(quantity > 0, false) "
                 "AND NOT coalesce(is_return, false)) AS bought FROM clean.invoices "
                 "GROUP BY customer_id, invoice_date")
PAYMENT_EVENTS = "features.payment_events"
PAYMENT_EVENTS_SQL = "SELECT customer_email, created_at, status FROM clean.payments"


def required_table(conn: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """The whole table; a failure naming the asset to materialise first when it does not
    exist yet (``clean.leads`` is the table of ``clean/leads``)."""
    frame = read_table(conn, table)
    if frame is None:
        raise dg.Failure(f"{table} does not exist yet: materialise {table.replace('.', '/')} "
                         "first")
    return frame


def write_feature_table(conn: duckdb.DuckDBPyConnection, warehouse: DuckDBResource,
                        table: str, frame: pd.DataFrame) -> None:
    """Replace the table, then publish its snapshot: models and drift reports read the
    snapshot (``resources.published_snapshots``), so they never wait for the writer pool."""
    write_table(conn, table, frame)
    publish_snapshot(conn, table, snapshot_dir(warehouse.database))


def _with_payments(config: LeadFeaturesConfig, warehouse: DuckDBResource,
                   settings: SettingsResource, leads_table: str, build, target: str
                   ) -> tuple[pd.DataFrame, int]:
    """``build(leads, payments, window_days=...)`` of the leads in ``leads_table`` and the
    clean payments (None before any landed), within the lead profile's window; written to
    ``target`` and published. The frame and the window's days."""
    with warehouse.get_connection() as conn:
        leads = required_table(conn, leads_table)
        payments = read_table(conn, "clean.payments")
        days = config.days(active_profile(settings, "leads", conn))
        frame = build(leads, payments, window_days=days)
        write_feature_table(conn, warehouse, target, frame)
    return frame, days


# -- assets --------------------------------------------------------------------------------------

# a feature table written to the warehouse (one writer at a time) and published
_WRITES_WAREHOUSE: dict = dict(group_name=GROUP, kinds=KINDS | {"pandas"}, pool=WAREHOUSE_POOL)


@dg.asset(
    key=["features", "lead_features"],
    deps=[dg.AssetKey(["clean", "leads"]), dg.AssetKey(["clean", "payments"])],
    **_WRITES_WAREHOUSE,
)
def lead_features_asset(config: LeadFeaturesConfig, warehouse: DuckDBResource,
                        settings: SettingsResource) -> dg.MaterializeResult:
    """Every clean lead with its conversion label and arrival-time features.

    The label is the profile's own where the export has one; otherwise a succeeded payment
    with the lead's email within the window. Leads whose window is still open have no label
    yet (``label_source = 'open'``): they are the leads batch scoring ranks.
    """
    frame, days = _with_payments(config, warehouse, settings, "clean.leads", lead_features,
                                 "features.lead_features")
    sources = frame["label_source"].value_counts().to_dict()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "converted": int(frame["converted"].fillna(False).astype(bool).sum()),
        "labelled_by_profile": int(sources.get("profile", 0)),
        "labelled_by_payments": int(sources.get("payments", 0)),
        "open_leads": int(sources.get("open", 0)),
        "window_days": days,
        "preview": _preview(frame),
    })


@dg.asset(
    key=["features", "plan_labels"],
    deps=[dg.AssetKey(["features", "lead_features"]), dg.AssetKey(["clean", "payments"])],
    **_WRITES_WAREHOUSE,
)
def plan_labels_asset(config: LeadFeaturesConfig, warehouse: DuckDBResource,
                      settings: SettingsResource) -> dg.MaterializeResult:
    """Converted leads with the plan of their first succeeded payment (the plan model's rows)."""
    frame, _ = _with_payments(config, warehouse, settings, "features.lead_features", plan_label,
                              "features.plan_labels")
    counts = frame["plan"].value_counts()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "plans": dg.MetadataValue.md(markdown_table(
            counts.rename_axis("plan").reset_index(name="leads"))),
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["features", "customer_activity"], skippable=True,
                     deps=[dg.AssetKey(["clean", "invoices"])], group_name=GROUP,
                     kinds=KINDS | {"pandas"},
                     description="Activity features and churn label per customer and cutoff "
                                 "(several cutoffs stacked; the last is held out)."),
        dg.AssetSpec(["features", "customer_activity_latest"], skippable=True,
                     deps=[dg.AssetKey(["clean", "invoices"])], group_name=GROUP,
                     kinds=KINDS | {"pandas"},
                     description="Activity features of every customer as of the end of the "
                                 "invoice data: what churn scoring and the API use."),
    ],
    pool=WAREHOUSE_POOL,
)
def customer_activity_assets(context: dg.AssetExecutionContext, config: ActivityFeaturesConfig,
                             warehouse: DuckDBResource):
    """Point-in-time customer activity from invoice lines.

    Features at a cutoff use only lines strictly before it; the churn label looks only at the
    horizon after it. Training stacks several cutoffs so the model sees more than one moment.
    The latest table describes every customer as of the day after the last invoice line.
    """
    with warehouse.get_connection() as conn:
        invoices = read_table(conn, "clean.invoices")
        if invoices is None or invoices.empty:
            # A business without invoice exports: nothing to compute, and nothing downstream
            # (the activity model, its scores) to run; the snapshot side goes on.
            yield from skipped(context, ["features", "customer_activity"],
                               ["features", "customer_activity_latest"],
                               reason="no invoice lines have landed (inbox/invoices is empty "
                                      "or every line was set aside)")
            return
        if config.cutoffs:
            cutoffs = sorted(pd.Timestamp(c) for c in config.cutoffs)
        else:
            cutoffs = churn_cutoffs(invoices, horizon_days=config.horizon(),
                                    count=config.cutoff_count, step_days=config.cutoff_step_days)
        training = activity_training_set(invoices, cutoffs, horizon_days=config.horizon())
        end = pd.to_datetime(invoices["invoice_date"]).max().normalize() + DAY
        latest = activity_features(invoices, end, horizon_days=config.horizon())
        write_feature_table(conn, warehouse, "features.customer_activity", training)
        write_feature_table(conn, warehouse, "features.customer_activity_latest", latest)
        publish_snapshot(conn, PURCHASES, snapshot_dir(warehouse.database), PURCHASES_SQL)
    per_cutoff = training.groupby("cutoff").agg(
        customers=("customer_id", "size"),
        churned=("churned", lambda s: int(s.fillna(False).astype(bool).sum())))
    yield dg.MaterializeResult(asset_key=["features", "customer_activity"], metadata={
        "dagster/row_count": len(training),
        "cutoffs": ", ".join(c.date().isoformat() for c in cutoffs),
        "horizon_days": config.horizon(),
        "per_cutoff": dg.MetadataValue.md(markdown_table(per_cutoff.reset_index())),
        "features": ", ".join(ACTIVITY_FEATURES),
    })
    yield dg.MaterializeResult(asset_key=["features", "customer_activity_latest"], metadata={
        "dagster/row_count": len(latest),
        "as_of": end.date().isoformat(),
        "preview": _preview(latest),
    })


@dg.asset(
    key=["features", "customer_snapshot"],
    deps=[dg.AssetKey(["clean", "customers"]), dg.AssetKey(["clean", "payments"])],
    **_WRITES_WAREHOUSE,
)
def customer_snapshot_asset(warehouse: DuckDBResource,
                            settings: SettingsResource) -> dg.MaterializeResult:
    """Clean customer snapshots joined by email with their payment history aggregates.

    A customer whose amount paid (or refunded) is in several currencies, or in another than
    the feature's (the plan catalogue's declared currency, else the one every customer's
    amount is in), has that feature missing, and a row in
    ``quarantine.customer_payment_amounts`` naming the customer, the file and row, the field,
    each currency's amount and the rule (``features.snapshot``)."""
    currency = PlanCatalogue.load(settings.get().plan_catalogue_path).currency
    with warehouse.get_connection() as conn:
        customers = required_table(conn, "clean.customers")
        payments = read_table(conn, "clean.payments")
        frame = snapshot_features(customers, payments, currency)
        set_aside = money_set_aside(frame, currency)
        write_feature_table(conn, warehouse, "features.customer_snapshot", frame)
        write_table(conn, MONEY_SET_ASIDE, set_aside)
        if payments is not None:
            publish_snapshot(conn, PAYMENT_EVENTS, snapshot_dir(warehouse.database),
                             PAYMENT_EVENTS_SQL)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "matched_to_payments": int(frame["payments_matched"].sum()),
        "churned": int(frame["churned"].fillna(False).astype(bool).sum()),
        "payment_features": ", ".join(PAYMENT_FEATURES),
        # amounts in several currencies are never added up nor compared: missing, set aside
        "customers_paying_in_several_currencies": int(set_aside.loc[
            set_aside["rule"] == SEVERAL_CURRENCIES, "customer_id"].nunique()),
        "customers_with_amounts_set_aside": int(set_aside["customer_id"].nunique()),
        "amounts_set_aside": dg.MetadataValue.md(markdown_table(
            set_aside[["customer_id", "field", "value"]].head(10))),
    })


feature_assets = [lead_features_asset, plan_labels_asset, customer_activity_assets,
                  customer_snapshot_asset]
