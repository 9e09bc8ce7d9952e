"""The raw layer: one asset per source, one dynamic partition per landed file.

``raw/<source>`` reads the partition's file from the landing zone, and replaces that
partition's rows in ``raw.<source>`` (delete + insert in one transaction, so a re-run never
duplicates rows) with the lineage columns added. A file that cannot be read is copied to
quarantine with its reason and fails only its own partition.
"""


from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import Alert, AlertChannel
from leadscore_assets.ingest.landing import LandingZone, partition_key
from leadscore_assets.ingest.readers import Export, UnreadableFile, read_export
from leadscore_assets.resources import WAREHOUSE_POOL
from leadscore_core.settings import INGEST_SOURCES
from leadscore_core.warehouse import (
    PER_FILE_COLUMNS,
    ensure_raw_table,
    publish_partitions,
    raw_storage,
    snapshot_dir,
)

PREVIEW_ROWS = 5
PROFILED_SOURCES = ("leads", "customers")
PREVIEW_CHARS = 40

PARTITIONS: dict[str, dg.DynamicPartitionsDefinition] = {
    source: dg.DynamicPartitionsDefinition(name=f"raw_{source}_files")
    for source in INGEST_SOURCES
}

DESCRIPTIONS = {
    "leads": "Lead exports (web forms, CRMs) as landed: the profile's id, created time, email "
             "and label columns as text, and every column of the row as JSON.",
    "payments": "Stripe charges and payment intents as landed from API JSON (list, list page, "
                "mapping, JSON Lines; events unwrapped) or the dashboard's payments CSV, with "
                "the original object kept as JSON.",
    "invoices": "Invoice lines in the Online Retail layout as landed: text exactly as in the "
                "file (UTF-8 or Windows-1252, ISO or M/D/YYYY dates), with the encoding used.",
    "customers": "Customer account snapshots as landed: the profile's id, created time, email "
                 "and churn label as text, and every column of the row as JSON.",
    "predictions": "Every prediction the API served, from the sealed files of its prediction "
                   "log: id, time, model version, endpoint, inputs and outputs; a line that is "
                   "not an entry keeps its place with the reason in _malformed.",
}
KINDS = {"leads": "csv", "payments": "json", "invoices": "csv", "customers": "csv",
         "predictions": "json"}


# Raw tables that readers without the writer pool (drift reports, performance) read as
# published snapshots: one Parquet part per landed file, so a landing writes only its own.
PUBLISHED_RAW = ("predictions",)
# DuckDB's default rows per row group (its storage unit): inserts are fed in chunks of it.
DUCKDB_ROW_GROUP_ROWS = 122_880


def write_raw(conn: duckdb.DuckDBPyConnection, source: str, export: Export, *, partition: str,
              file_name: str, sha256: str, ingested_at: datetime | None = None) -> int:
    """Replace ``partition``'s rows of ``raw.<source>`` with ``export``; returns rows replaced.

    The file's lineage and its per-file reading columns go in one row of the files table, its
    rows (with that row's id) in the rows table (:func:`leadscore_core.warehouse.raw_storage`).
    """
    ensure_raw_table(conn, source)
    rows, files = raw_storage(source)
    ingested_at = (ingested_at or datetime.now(UTC)).replace(tzinfo=None)
    per_file = {"_partition": partition, "_source_file": file_name, "_file_sha256": sha256,
                "_ingested_at": ingested_at}
    for name in export.table.column_names:
        if name in PER_FILE_COLUMNS:
            per_file[name] = file_value(export.table.column(name), name)
    body = export.table.drop_columns([n for n in export.table.column_names if n in per_file])
    # another column of one value (a profile's name) is one parameter, not a text per row
    constants = constant_columns(body)
    view = f"_landing_{source}"
    conn.register(view, row_group_chunks(body.drop_columns(list(constants))))
    given = "".join(f', ? AS "{name}"' for name in constants)
    # DuckDB's own thread count (one per core): a parallel insert spends more CPU merging
    # its row groups, but lands sooner (541,909 Online Retail lines on 2 cores: 0.37 s
    # against 0.46 s with one thread, bench/bench_ingest.py), and landing is what a user
    # waits for; the warehouse pool already keeps writers from running side by side.
    try:
        conn.execute("BEGIN TRANSACTION")
        replaced = conn.execute(
            f"DELETE FROM {rows} WHERE _file IN (SELECT _file FROM {files} "
            "WHERE _partition = ?)", [partition]).fetchone()[0]
        conn.execute(f"DELETE FROM {files} WHERE _partition = ?", [partition])
        file_id = conn.execute(f"SELECT coalesce(max(_file), 0) + 1 FROM {files}").fetchone()[0]
        conn.execute(f"INSERT INTO {files} (_file, {', '.join(per_file)}) VALUES "
                     f"(?{', ?' * len(per_file)})", [file_id, *per_file.values()])
        conn.execute(f"INSERT INTO {rows} BY NAME SELECT *{given}, ?::INTEGER AS _file "
                     f"FROM {view}", [*constants.values(), file_id])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister(view)
    return int(replaced)


def file_value(column: pa.ChunkedArray, name: str) -> str | None:
    """The one value a reader gave a per-file column (a one-entry dictionary, as readers write
    it; or null on every row). Any other column is a reader's mistake, refused here."""
    if pa.types.is_dictionary(column.type) and not column.null_count:
        values = {v for chunk in column.chunks for v in chunk.dictionary.to_pylist()}
        if len(values) == 1:
            return values.pop()
    elif column.null_count == len(column):
        return None
    raise ValueError(f"{name} must hold one value per file, as a one-entry dictionary")


def row_group_chunks(table: pa.Table) -> pa.Table:
    """``table`` cut into chunks of DuckDB's row-group size (the last one shorter).

    DuckDB's ordered parallel insert writes each Arrow chunk as its own batch of row groups
    and merges batches smaller than a row group afterwards: the CSV reader's 1 MB blocks
    (about 12,000 Online Retail lines each) cost that merge on every landing (541,909 lines:
    1.5 against 1.1 CPU seconds for the insert, bench/bench_ingest.py). One copy of the
    text buys it back; a table already in one chunk per column is handed over as it is.
    """
    if not table.num_rows or all(column.num_chunks <= 1 for column in table.columns):
        return table
    return pa.concat_tables([table.slice(start, DUCKDB_ROW_GROUP_ROWS).combine_chunks()
                             for start in range(0, table.num_rows, DUCKDB_ROW_GROUP_ROWS)])


def constant_columns(table: pa.Table) -> dict[str, str]:
    """Columns that hold one text on every row as a one-entry dictionary (how readers write
    a per-file value), with that text."""
    out = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        chunks = [chunk for chunk in column.chunks if len(chunk)]
        if (not chunks or column.null_count or not pa.types.is_dictionary(column.type)
                or not pa.types.is_string(column.type.value_type)):
            continue
        values = {value for chunk in chunks for value in chunk.dictionary.to_pylist()}
        if len(values) == 1 and None not in values and all(
                len(chunk.dictionary) == 1 for chunk in chunks):
            out[name] = values.pop()
    return out


def land_partition(context: dg.AssetExecutionContext, source: str, landing: LandingZone,
                   warehouse: DuckDBResource,
                   alerts: AlertChannel | None = None) -> dg.MaterializeResult:
    key = context.partition_key
    name = landing.find(source, key)
    if name is None:
        raise dg.Failure(
            description=f"{key}: the file is no longer in {landing.inbox(source)}",
            metadata={"partition": key})
    sha = landing.sha256(source, name)
    if partition_key(name, sha) != key:
        raise dg.Failure(
            description=f"{name}: its content changed after it was registered as {key} "
                        f"(now sha256 {sha[:10]}); the new content lands as its own partition",
            metadata={"file": name, "sha256": sha})
    try:
        profiles = landing.profiles() if source in PROFILED_SOURCES else {}
        export = read_export(source, landing.local_path(source, name), profiles,
                             landing.declared_formats(source))
    except UnreadableFile as exc:
        reason = str(exc)
        copy = landing.quarantine(source, name, reason)
        context.log.error(f"{source}: quarantined {name}: {reason}")
        raise dg.Failure(
            description=reason,
            metadata={"file": name, "reason": reason, "sha256": sha,
                      "quarantined_path": dg.MetadataValue.path(str(copy))},
        ) from exc
    with warehouse.get_connection() as conn:
        replaced = write_raw(conn, source, export, partition=key, file_name=name, sha256=sha)
        if source in PUBLISHED_RAW:
            # monitoring reads the served predictions from these parts, not the warehouse
            publish_partitions(conn, f"raw.{source}", snapshot_dir(warehouse.database), key)
    landing.ledger().record(source, sha, key, name, export.rows)
    context.log.info(f"{source}: landed {export.rows:,} rows from {name}"
                     + (f" (replaced {replaced:,})" if replaced else ""))
    meta = _metadata(source, name, sha, export, replaced)
    if source == "payments" and not export.stats.get("payments"):
        warning = (f"{name}: no payment in this file (kept {export.stats.get('kept') or {}}, "
                   f"skipped {export.stats.get('skipped') or {}}): nothing for the models")
        context.log.warning(warning)
        meta["warning"] = dg.MetadataValue.text(warning)
        if alerts is not None:
            alerts.send(Alert(key=f"nothing_landed/{source}/{sha}", kind="nothing_landed",
                              severity="warning", title=warning, asset=f"raw/{source}",
                              file=name, counts=dict(export.stats.get("skipped") or {}),
                              run_id=context.run.run_id))
    return dg.MaterializeResult(metadata=meta)


def _metadata(source: str, name: str, sha: str, export: Export,
              replaced: int) -> dict[str, Any]:
    stats = export.stats
    meta: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(export.rows),
        "rows_landed": dg.MetadataValue.int(export.rows),
        "rows_replaced": dg.MetadataValue.int(replaced),
        "file": dg.MetadataValue.text(name),
        "sha256": dg.MetadataValue.text(sha),
        "table": dg.MetadataValue.text(f"raw.{source}"),
        "format": dg.MetadataValue.text(str(stats.get("format"))),
        "encoding": dg.MetadataValue.text(str(stats.get("encoding"))),
        "gzip": dg.MetadataValue.bool(bool(stats.get("compressed"))),
        "preview": dg.MetadataValue.md(markdown_preview(export)),
    }
    if stats.get("ignored_columns"):
        # raw.invoices has a fixed layout: say which extra columns of the file it could not hold
        meta["ignored_columns"] = dg.MetadataValue.json(stats["ignored_columns"])
    if "profile" in stats:
        meta["profile"] = dg.MetadataValue.text(stats["profile"])
    if stats.get("formats"):
        meta["formats"] = dg.MetadataValue.json(stats["formats"])
    for key in ("delimiter", "bom", "line_endings"):
        if key in stats:
            meta[key] = dg.MetadataValue.text(str(stats[key]))
    if stats.get("malformed_rows"):
        meta["malformed_rows"] = dg.MetadataValue.int(int(stats["malformed_rows"]))
    if source == "payments":
        meta["objects_kept"] = dg.MetadataValue.json(stats.get("kept", {}))
        meta["objects_skipped"] = dg.MetadataValue.json(stats.get("skipped", {}))
    return meta


def markdown_preview(export: Export, rows: int = PREVIEW_ROWS) -> str:
    head = export.table.slice(0, rows).to_pylist()
    if not head:
        return "_no rows_"
    columns = list(head[0])

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        if len(text) > PREVIEW_CHARS:
            text = text[:PREVIEW_CHARS - 1] + "…"
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in head]
    return "\n".join(lines)


def _raw_asset(source: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", source],
        description=DESCRIPTIONS[source],
        partitions_def=PARTITIONS[source],
        group_name="ingest",
        kinds={"duckdb", KINDS[source]},
        pool=WAREHOUSE_POOL,
        tags={"leadscore/source": source},
    )
    def raw_table(context: dg.AssetExecutionContext, landing: LandingZone,
                  warehouse: DuckDBResource, alerts: AlertChannel) -> dg.MaterializeResult:
        return land_partition(context, source, landing, warehouse, alerts)

    return raw_table


RAW_ASSETS: dict[str, dg.AssetsDefinition] = {
    source: _raw_asset(source) for source in INGEST_SOURCES}


def land_file(source: str, name: str, *, landing: LandingZone, warehouse: DuckDBResource,
              instance: dg.DagsterInstance | None = None,
              alerts: AlertChannel | None = None,
              run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    """Materialise one inbox file's partition in-process (tests, the CLI)."""
    alerts = alerts or AlertChannel(log_path=str(Path(landing.root) / "alerts.jsonl"))
    key = partition_key(name, landing.sha256(source, name))
    instance = instance or dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PARTITIONS[source].name, [key])
    return dg.materialize(
        [RAW_ASSETS[source]], partition_key=key, instance=instance, raise_on_error=False,
        run_config=run_config,
        resources={"landing": landing, "warehouse": warehouse, "alerts": alerts},
    )
