"""The clean layer: one asset per source, rebuilt from every landed file of its raw table.

Each asset reads ``raw.<source>`` (all partitions: a record exported twice is resolved
across files), applies the source's rules, and replaces in one transaction the clean table,
the quarantine table and the source's removal counts (``quarantine.removed_rows``), so the
three always describe the same raw rows. A file with quarantined rows is alerted once.
"""

import json
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import Alert, AlertChannel
from leadscore_assets.clean import invoices, payments, records
from leadscore_assets.clean.rules import QUARANTINE_SQL, CleanResult
from leadscore_assets.resources import WAREHOUSE_POOL, SettingsResource
from leadscore_assets.schemas import read_table
from leadscore_core.money import currency_counts, publish_payment_currencies
from leadscore_core.plans import PlanCatalogue
from leadscore_core.profiles import load_profiles
from leadscore_core.settings import SOURCES, Settings
from leadscore_core.warehouse import (
    PER_FILE_COLUMNS,
    ensure_raw_table,
    ensure_schemas,
    raw_column_types,
    raw_storage,
)

GROUP = "clean"
REMOVED_TABLE = "quarantine.removed_rows"
PREVIEW_ROWS = 5

# Rebuild once a new file has landed (raw partitions arrive one file at a time); a file that
# failed to land is a missing partition, which must not hold back the others.
CLEAN_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.any_deps_in_progress()
).with_label("after a new raw file")

DESCRIPTIONS = {
    "leads": "One row per lead (its latest version), typed by the active lead profile: "
             "placeholders null, categories normalised, email lower-case, label as boolean.",
    "customers": "One row per customer, typed by the active customer profile (repairs such as "
                 "Telco's blank TotalCharges at tenure 0 applied), churn label as boolean.",
    "payments": "One row per payment attempt: amounts in the currency's major unit (ISO "
                "exponent), UTC time, status, refunds, customer and the plan bought.",
    "invoices": "Invoice lines typed and ruled: duplicates, blank descriptions, refunds, bad "
                "debt and non-positive prices set aside; cancellations kept as returns.",
}


def read_raw(conn: duckdb.DuckDBPyConnection, source: str) -> pd.DataFrame:
    """``raw.<source>`` as a frame. Invoices (millions of lines) come as Arrow-backed text,
    and their per-file columns as categories rebuilt from each row's file id: the per-file
    text (file name, hash, decided formats) never crosses over row by row, which is what
    keeps cleaning a 2M-line export within a fraction of the memory. The invoice fields
    come as categories too (a few thousand distinct values each): encoded batch by batch
    as they stream out of DuckDB, so no field is ever held as one string per line."""
    table = ensure_raw_table(conn, source)
    if source != "invoices":
        return read_table(conn, table)
    rows, files_table = raw_storage(source)
    per_file = [c for c in PER_FILE_COLUMNS if c in raw_column_types(source)]
    files = conn.execute(f"SELECT _file, {', '.join(per_file)} FROM {files_table} "
                         "ORDER BY _partition, _file").fetchall()
    others = [c for c in raw_column_types(source) if c not in PER_FILE_COLUMNS]
    listed = ", ".join(f'"{c}"' for c in others)
    reader = conn.sql(f"SELECT {listed}, _file FROM {rows}").to_arrow_reader()
    arrow = dictionary_encoded(reader, invoices.RAW_FIELDS)
    text = pd.StringDtype("pyarrow")
    frame = arrow.to_pandas(types_mapper={pa.string(): text, pa.large_string(): text}.get,
                            self_destruct=True, split_blocks=True)
    del arrow
    pa.default_memory_pool().release_unused()
    ids = frame.pop("_file").to_numpy()
    at_file = np.zeros(max((row[0] for row in files), default=0) + 1, dtype=np.int64)
    at_file[[row[0] for row in files]] = np.arange(len(files))
    codes = at_file[ids]  # each row's file, as its place in ``files``
    landed = np.array([row[1 + per_file.index("_ingested_at")] for row in files],
                      dtype="datetime64[us]")
    frame.insert(frame.columns.get_loc("_row_number") + 1, "_ingested_at", landed[codes])
    for at, name in enumerate(per_file):
        if name == "_ingested_at":
            continue
        which, values = pd.factorize(pd.Series([row[1 + at] for row in files], dtype=object))
        frame[name] = pd.Categorical.from_codes(which[codes], categories=values)
    return frame


def dictionary_encoded(reader: pa.RecordBatchReader, columns: list[str]) -> pa.Table:
    """The batches of ``reader`` as one table, ``columns`` dictionary-encoded (one
    dictionary per column across batches: pandas reads them as categories)."""
    names = reader.schema.names
    schema = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type))
                        if f.name in columns else f for f in reader.schema])
    # every array is a new one (the others copied): a batch's buffers come from the reader
    # as one allocation, which any array still pointing into it would keep whole
    batches = [pa.RecordBatch.from_arrays(
        [pc.dictionary_encode(array) if name in columns else pa.concat_arrays([array])
         for name, array in zip(names, batch.columns, strict=True)], schema=schema)
        for batch in reader]
    return pa.Table.from_batches(batches, schema=schema).unify_dictionaries()


def clean_source(source: str, raw: pd.DataFrame, settings: Settings) -> tuple[
        CleanResult, dict[str, str], dict[str, Any]]:
    """Clean one source's raw rows: (result, clean table column types, extra metadata)."""
    if source == "invoices":
        return invoices.clean_invoices(raw), invoices.CLEAN_SQL, {}
    if source == "payments":
        catalogue = PlanCatalogue.load(settings.plan_catalogue_path)
        return payments.clean_payments(raw, catalogue), payments.CLEAN_SQL, {}
    latest = latest_profile(raw)
    name = settings.profile_name(source, latest)
    pinned = settings.lead_profile if source == "leads" else settings.customer_profile
    profiles = load_profiles(settings.user_profiles_dir)
    if name not in profiles:
        raise dg.Failure(description=f"clean/{source}: active profile {name!r} is not among "
                                     f"the profiles ({', '.join(sorted(profiles))})")
    result, resolved = records.clean_records(raw, source, profiles[name])
    why = (f"pinned by LEADSCORE_{'LEAD' if source == 'leads' else 'CUSTOMER'}_PROFILE"
           if pinned else "the latest landed file's" if latest else "the default (no data)")
    return result, records.clean_sql(source, resolved), {"profile": name, "profile_chosen": why}


def latest_profile(raw: pd.DataFrame) -> str | None:
    """The profile of the most recently landed file of a profiled source (None: no rows).

    Several profiles of one source: the latest data's profile wins, the other profiles'
    rows stay in raw (``other_profile``) for when their profile is chosen again; a setting
    pins one (``Settings.profile_name``)."""
    if raw.empty or "profile" not in raw.columns:
        return None
    order = [c for c in ("_ingested_at", "_row_number") if c in raw.columns]
    return str(raw.sort_values(order, kind="stable")["profile"].iloc[-1])


def publish(conn: duckdb.DuckDBPyConnection, source: str, result: CleanResult,
            columns: dict[str, str]) -> None:
    """Replace the clean table, quarantine and removal counts of ``source`` atomically."""
    ensure_schemas(conn)
    removed = pd.DataFrame({"source": source, "rule": list(result.removed),
                            "rows": [int(v) for v in result.removed.values()]},
                           columns=["source", "rule", "rows"])
    conn.register("_clean_frame", result.clean)
    conn.register("_quarantine_frame", result.quarantine)
    conn.register("_removed_frame", removed)
    try:
        conn.execute("BEGIN TRANSACTION")
        conn.execute(f"CREATE OR REPLACE TABLE clean.{source} AS SELECT "
                     + ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns.items())
                     + " FROM _clean_frame")
        conn.execute(f"CREATE OR REPLACE TABLE quarantine.{source} AS SELECT "
                     + ", ".join(f'CAST("{c}" AS {t}) AS "{c}"'
                                 for c, t in QUARANTINE_SQL.items())
                     + " FROM _quarantine_frame")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {REMOVED_TABLE} "
                     "(source VARCHAR, rule VARCHAR, rows BIGINT)")
        conn.execute(f"DELETE FROM {REMOVED_TABLE} WHERE source = ?", [source])
        conn.execute(f"INSERT INTO {REMOVED_TABLE} SELECT source, rule, rows FROM _removed_frame")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        for view in ("_clean_frame", "_quarantine_frame", "_removed_frame"):
            conn.unregister(view)


def landed_files(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per landed file (name and content hash) of a raw frame."""
    return raw[["_source_file", "_file_sha256"]].drop_duplicates("_source_file").astype(str)


def alert_quarantined_files(context: dg.AssetExecutionContext, alerts: AlertChannel,
                            source: str, raw: pd.DataFrame, result: CleanResult) -> int:
    """One alert per landed file (by content hash) that has quarantined rows."""
    if result.quarantine.empty:
        return 0
    shas = raw.drop_duplicates("_source_file").set_index("_source_file")["_file_sha256"]
    sent = 0
    for file, rows in result.quarantine.groupby("_source_file"):
        counts = {str(k): int(v) for k, v in rows["rule"].value_counts().items()}
        first = rows.iloc[0]
        sent += alerts.send(Alert(
            key=f"quarantine/{source}/{shas.get(file, file)}",
            kind="rows_quarantined", severity="warning",
            title=f"{sum(counts.values()):,} row(s) of {file} quarantined by clean/{source}",
            asset=f"clean/{source}", file=str(file), counts=counts, run_id=context.run.run_id,
            detail=f"first: row {first['_row_number']}, rule {first['rule']}, field "
                   f"{first['field']} = {first['value']!r}; see quarantine.{source}",
        ))
    return sent


def metadata(source: str, result: CleanResult, raw: pd.DataFrame,
             extra: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(len(result.clean)),
        "rows_in": dg.MetadataValue.int(result.rows_in),
        "rows_out": dg.MetadataValue.int(len(result.clean)),
        "rows_quarantined": dg.MetadataValue.int(len(result.quarantine)),
        "rows_removed": dg.MetadataValue.int(sum(result.removed.values())),
        "rule_counts": dg.MetadataValue.json(result.rule_counts),
        "files": dg.MetadataValue.int(int(raw["_source_file"].nunique()) if len(raw) else 0),
        "table": dg.MetadataValue.text(f"clean.{source}"),
        "preview": dg.MetadataValue.md(result.clean.head(PREVIEW_ROWS).to_markdown(index=False)),
    }
    for rule, count in result.rule_counts.items():
        meta[f"rule/{rule}"] = dg.MetadataValue.int(count)
    for name, count in result.repaired.items():
        meta[f"repaired/{name.removeprefix('repaired:')}"] = dg.MetadataValue.int(count)
    meta.update({k: dg.MetadataValue.text(str(v)) for k, v in extra.items()})
    return meta


def _clean_asset(source: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["clean", source],
        deps=[dg.AssetKey(["raw", source])],
        description=DESCRIPTIONS[source],
        group_name=GROUP,
        kinds={"duckdb", "pandas"},
        pool=WAREHOUSE_POOL,
        tags={"leadscore/source": source},
        automation_condition=CLEAN_AUTOMATION,
    )
    def clean_table(context: dg.AssetExecutionContext, warehouse: DuckDBResource,
                    settings: SettingsResource, alerts: AlertChannel) -> dg.MaterializeResult:
        with warehouse.get_connection() as conn:
            raw = read_raw(conn, source)
            result, columns, extra = clean_source(source, raw, settings.get())
            raw = landed_files(raw)  # all the rest needs; the raw rows are freed before writing
            publish(conn, source, result, columns)
        if source == "payments":
            # what the prices and payment amounts the service shows are in (leadscore_core.money)
            currencies = currency_counts(result.clean["currency"], result.clean["plan"])
            publish_payment_currencies(currencies, settings.get().serving_snapshot)
            extra = {**extra, "currencies": json.dumps(
                {k: currencies[k] for k in ("landed", "matched")}, sort_keys=True)}
        context.log.info(f"clean/{source}: {result.rows_in:,} raw rows -> "
                         f"{len(result.clean):,} clean, {len(result.quarantine):,} quarantined, "
                         f"{sum(result.removed.values()):,} removed {result.rule_counts}")
        alert_quarantined_files(context, alerts, source, raw, result)
        return dg.MaterializeResult(metadata=metadata(source, result, raw, extra))

    return clean_table


CLEAN_ASSETS: dict[str, dg.AssetsDefinition] = {s: _clean_asset(s) for s in SOURCES}
