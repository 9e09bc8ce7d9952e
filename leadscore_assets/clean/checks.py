"""Checks on the clean layer: schema, completeness, references and export sizes.

Blocking (ERROR: a failure stops everything downstream in the run and in automation), because
models learn from these tables: the pandera schema of each clean table, and the identity
``raw rows = clean + quarantined + removed``. Warnings: whether payments and invoices refer
to leads and customers we know, and whether the newest export is far smaller or larger than
the files before it.

A failed evaluation sends one alert from the check itself (key: run, asset, check), so each
failure is told once, with the run's link, without a sensor re-reading the event log.
"""

from collections.abc import Sequence
from datetime import timedelta
from statistics import median
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import Alert, AlertChannel
from leadscore_assets.clean.assets import REMOVED_TABLE
from leadscore_assets.schemas import MODELS, read_table, validate
from leadscore_core.settings import SOURCES
from leadscore_core.warehouse import ensure_raw_table

SCHEMA = "schema"
ACCOUNTED = "raw_rows_accounted_for"
PAYMENT_EMAILS = "succeeded_payment_emails_match_leads"
INVOICE_CUSTOMERS = "invoice_customers_exist"
EXPORT_SIZE = "newest_export_row_count"

MIN_EMAIL_MATCH = 0.5  # below this, payments and leads no longer describe the same people
MIN_CUSTOMER_MATCH = 0.95
EXPORT_SIZE_FACTOR = 5.0  # newest file within [median / 5, median * 5] of earlier files
EXPORT_SIZE_HISTORY = 2  # earlier files needed before a size is judged
SAMPLE_ROWS = 5

# Exports arrive daily: a raw source with no new file for a day warns, for two days fails.
RAW_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=2),
                                               warn_window=timedelta(days=1))


def _key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["clean", source])


def _exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? "
                             "AND table_name = ?", [schema, name]).fetchone()[0])


def _count(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> int:
    return int(conn.execute(sql, params or []).fetchone()[0] or 0)


def report(context: dg.AssetCheckExecutionContext, alerts: AlertChannel, source: str,
           check: str, passed: bool, severity: dg.AssetCheckSeverity, title: str,
           counts: dict[str, int], metadata: dict[str, Any], file: str | None = None,
           ) -> dg.AssetCheckResult:
    """The check's result; a failure is also sent as one alert."""
    if not passed:
        run_id = context.run.run_id
        alerts.send(Alert(
            key=f"check/{run_id}/clean/{source}/{check}", kind="check_failed",
            severity="error" if severity == dg.AssetCheckSeverity.ERROR else "warning",
            title=f"check {check} failed on clean/{source}: {title}", asset=f"clean/{source}",
            check=check, file=file, counts=counts, run_id=run_id))
    return dg.AssetCheckResult(passed=passed, severity=severity, description=title,
                               metadata={**{k: dg.MetadataValue.int(v) for k, v in counts.items()},
                                         **metadata})


def _schema_check(source: str) -> dg.AssetChecksDefinition:
    model = MODELS[source]

    @dg.asset_check(asset=_key(source), name=SCHEMA, blocking=True,
                    description=f"clean.{source} satisfies {model.__name__}: types, ranges, "
                                "allowed values, uniqueness (pandera).")
    def schema_check(context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource,
                     alerts: AlertChannel) -> dg.AssetCheckResult:
        with warehouse.get_connection() as conn:
            frame = read_table(conn, f"clean.{source}")
        outcome = validate(model, frame, SAMPLE_ROWS)
        sample = outcome.sample.head(SAMPLE_ROWS)
        return report(
            context, alerts, source, SCHEMA, outcome.passed, dg.AssetCheckSeverity.ERROR,
            f"{outcome.failing_rows:,} of {outcome.rows:,} rows fail {model.__name__}",
            {"rows": outcome.rows, "failing_rows": outcome.failing_rows},
            {"failures_by_check": dg.MetadataValue.json(outcome.failures_by_check),
             "failing_sample": dg.MetadataValue.md(
                 sample.to_markdown(index=False) if len(sample) else "_none_")})

    return schema_check


def _accounted_check(source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=_key(source), name=ACCOUNTED, blocking=True,
                    description=f"Every row of raw.{source} is in clean.{source}, in "
                                f"quarantine.{source}, or removed by a named rule.")
    def accounted_check(context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource,
                        alerts: AlertChannel) -> dg.AssetCheckResult:
        with warehouse.get_connection() as conn:
            raw = _count(conn, f"SELECT count(*) FROM {ensure_raw_table(conn, source)}")
            clean = _count(conn, f"SELECT count(*) FROM clean.{source}")
            quarantined = _count(conn, f"SELECT count(*) FROM quarantine.{source}")
            removed = _count(conn, f"SELECT sum(rows) FROM {REMOVED_TABLE} WHERE source = ?",
                             [source])
        missing = raw - clean - quarantined - removed
        return report(
            context, alerts, source, ACCOUNTED, missing == 0, dg.AssetCheckSeverity.ERROR,
            f"raw {raw:,} = clean {clean:,} + quarantined {quarantined:,} + removed "
            f"{removed:,}" + ("" if missing == 0 else f" (off by {missing:,})"),
            {"raw_rows": raw, "clean_rows": clean, "quarantined_rows": quarantined,
             "removed_rows": removed, "unaccounted_rows": missing}, {})

    return accounted_check


def _export_size_check(source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=_key(source), name=EXPORT_SIZE,
                    description=f"The newest file of raw.{source} is not far smaller or larger "
                                f"(x{EXPORT_SIZE_FACTOR:g}) than the median of earlier files.")
    def export_size_check(context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource,
                          alerts: AlertChannel) -> dg.AssetCheckResult:
        with warehouse.get_connection() as conn:
            files = conn.execute(
                f"SELECT _source_file, count(*) AS n, min(_ingested_at) AS first_seen "
                f"FROM {ensure_raw_table(conn, source)} GROUP BY _partition, _source_file "
                "ORDER BY first_seen, _source_file").fetchall()
        if len(files) <= EXPORT_SIZE_HISTORY:
            return dg.AssetCheckResult(
                passed=True, severity=dg.AssetCheckSeverity.WARN,
                description=f"{len(files)} file(s): too few to judge a new export's size",
                metadata={"files": len(files)})
        name, newest, _ = files[-1]
        usual = float(median(n for _, n, _ in files[:-1]))
        ratio = newest / usual if usual else float("inf")
        passed = 1 / EXPORT_SIZE_FACTOR <= ratio <= EXPORT_SIZE_FACTOR
        return report(
            context, alerts, source, EXPORT_SIZE, passed, dg.AssetCheckSeverity.WARN,
            f"{name}: {newest:,} rows, {ratio:.2f}x the median of {len(files) - 1} earlier "
            f"file(s) ({usual:,.0f})",
            {"newest_rows": int(newest), "median_rows": int(usual), "files": len(files)},
            {"newest_file": dg.MetadataValue.text(str(name)),
             "ratio": dg.MetadataValue.float(round(ratio, 4))}, file=str(name))

    return export_size_check


def _share_check(source: str, name: str, other: str, description: str, minimum: float,
                 measure_sql: str, what: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=_key(source), name=name, description=description,
                    additional_deps=[_key(other)])
    def share_check(context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource,
                    alerts: AlertChannel) -> dg.AssetCheckResult:
        with warehouse.get_connection() as conn:
            if not _exists(conn, f"clean.{other}") or not _count(
                    conn, f"SELECT count(*) FROM clean.{other}"):
                return dg.AssetCheckResult(
                    passed=True, severity=dg.AssetCheckSeverity.WARN,
                    description=f"clean.{other} is empty: nothing to compare with",
                    metadata={"compared": 0})
            matched, total = (int(n) for n in conn.execute(measure_sql).fetchone())
        share = matched / total if total else 1.0
        return report(
            context, alerts, source, name, share >= minimum, dg.AssetCheckSeverity.WARN,
            f"{matched:,} of {total:,} {what} ({share:.1%}; at least {minimum:.0%} expected)",
            {"matched": matched, "compared": total},
            {"share": dg.MetadataValue.float(round(share, 4))})

    return share_check


# each counts (matched, compared) for a share check
PAYMENT_EMAILS_SQL = (
    "SELECT count(*) FILTER (WHERE customer_email IN (SELECT email FROM clean.leads "
    "WHERE email IS NOT NULL)), count(*) FROM clean.payments "
    "WHERE status = 'succeeded' AND customer_email IS NOT NULL")
INVOICE_CUSTOMERS_SQL = (
    "WITH ids AS (SELECT DISTINCT customer_id FROM clean.invoices "
    "WHERE customer_id IS NOT NULL) SELECT count(*) FILTER (WHERE customer_id IN "
    "(SELECT customer_id FROM clean.customers)), count(*) FROM ids")


SCHEMA_CHECKS = [_schema_check(s) for s in SOURCES]
ACCOUNTED_CHECKS = [_accounted_check(s) for s in SOURCES]
EXPORT_SIZE_CHECKS = [_export_size_check(s) for s in SOURCES]
REFERENCE_CHECKS = [
    _share_check("payments", PAYMENT_EMAILS, "leads",
                 "Share of succeeded payments whose email is a known lead's.",
                 MIN_EMAIL_MATCH, PAYMENT_EMAILS_SQL, "succeeded payments' emails match a lead"),
    _share_check("invoices", INVOICE_CUSTOMERS, "customers",
                 "Share of invoice customers present in the customer snapshot.",
                 MIN_CUSTOMER_MATCH, INVOICE_CUSTOMERS_SQL, "invoice customers are known"),
]
CLEAN_CHECKS = [*SCHEMA_CHECKS, *ACCOUNTED_CHECKS, *EXPORT_SIZE_CHECKS, *REFERENCE_CHECKS]



def with_raw_freshness(assets: Sequence[dg.AssetsDefinition | dg.AssetSpec],
                       policy: dg.FreshnessPolicy = RAW_FRESHNESS) -> list:
    """``assets`` with ``policy`` on every ``raw/*`` asset (the sources people deliver)."""
    return list(dg.map_asset_specs(
        lambda spec: spec.replace_attributes(freshness_policy=policy)
        if spec.key.path[0] == "raw" else spec, assets))
