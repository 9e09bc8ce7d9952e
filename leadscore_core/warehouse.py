"""Warehouse layout (schemas, the raw tables every stage agrees on) and the table helpers.

The warehouse is one DuckDB file with one schema per stage (``raw``, ``clean``,
``quarantine``, ``features``, ``scores``, ``monitoring``). Asset keys mirror table paths:
the asset ``raw/invoices`` is the table ``raw.invoices``.

The raw layer is lossless: every value is text exactly as it was in the file, plus lineage
columns saying where the row came from. Leads and customers differ by company, so their
raw tables hold the fields the source profile identifies (id, created time, email, label)
and the whole row as JSON (``record``); typing per profile is the cleaning stage's job.

``raw.<source>`` is a view with every column of ``RAW_DDL``. What holds one value per file
(its partition, name, hash, landing time, encoding, decided formats: ``PER_FILE_COLUMNS``) is
stored once per file in ``raw.<source>_files``, keyed by a small id ``_file`` that each row
of ``raw.<source>_rows`` holds: a landing writes the file's text, not the same file name and
hash again on each of its million lines.

No Dagster imports here.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

SCHEMAS = ("raw", "clean", "quarantine", "features", "scores", "monitoring")

# Lineage columns on every raw row.
LINEAGE_DDL = """
    _partition     VARCHAR NOT NULL,  -- dynamic partition key of the file
    _source_file   VARCHAR NOT NULL,  -- file name in the inbox
    _file_sha256   VARCHAR NOT NULL,  -- SHA-256 of the file's bytes
    _row_number    BIGINT  NOT NULL,  -- 1-based record number in the file (header excluded)
    _ingested_at   TIMESTAMP NOT NULL
"""
# How to read a file's text, on every raw row of text sources (null for JSON objects).
READING_DDL = """
    _formats     JSON,  -- decided per file: number field -> decimal/thousands, date -> order
    _malformed   JSON,  -- a record that did not fit the header: line, rule, reason, fields
"""
LINEAGE_COLUMNS = ("_partition", "_source_file", "_file_sha256", "_row_number", "_ingested_at")
# Columns of a raw table that hold one value per file (see the module doc).
PER_FILE_COLUMNS = ("_partition", "_source_file", "_file_sha256", "_ingested_at", "_encoding",
                    "_formats")

RAW_DDL: dict[str, str] = {
    "leads": f"""
        profile     VARCHAR NOT NULL,  -- source profile that recognised the header
        record_id   VARCHAR,           -- the profile's id column, as text
        created_at  VARCHAR,
        email       VARCHAR,
        label       VARCHAR,
        record      JSON NOT NULL,     -- every column of the row, as text
        {READING_DDL}
        {LINEAGE_DDL}
    """,
    "customers": f"""
        profile     VARCHAR NOT NULL,
        record_id   VARCHAR,
        created_at  VARCHAR,
        email       VARCHAR,
        label       VARCHAR,
        record      JSON NOT NULL,
        {READING_DDL}
        {LINEAGE_DDL}
    """,
    # Stripe: one row per charge or payment_intent (events are unwrapped). Amounts are text
    # as exported: minor units (integers) from the API's JSON, major units ("150.00") from
    # the dashboard's CSV; ``amount_unit`` says which.
    "payments": f"""
        object_type      VARCHAR NOT NULL,  -- charge | payment_intent | refund | dispute
        payment_id       VARCHAR,
        created          VARCHAR,           -- Unix s (JSON); 'YYYY-MM-DD HH:MM[:SS]' UTC (CSV)
        amount           VARCHAR,
        amount_refunded  VARCHAR,
        amount_unit      VARCHAR NOT NULL,  -- minor | major
        currency         VARCHAR,
        status           VARCHAR,
        refunded         VARCHAR,
        disputed         VARCHAR,
        captured         VARCHAR,           -- a charge's captured flag (false: authorised only)
        charge           VARCHAR,           -- the charge a refund or dispute belongs to
        failure_code     VARCHAR,
        customer_id      VARCHAR,
        customer_email   VARCHAR,
        payment_intent   VARCHAR,           -- a charge's payment intent id
        description      VARCHAR,
        event_id         VARCHAR,           -- set when the object came wrapped in an event
        raw_format       VARCHAR NOT NULL,  -- json_array|json_list_page|json_mapping|jsonl|csv
        raw_object       JSON NOT NULL,     -- the original object (or CSV row), untouched
        {READING_DDL}
        {LINEAGE_DDL}
    """,
    "invoices": f"""
        invoice_no    VARCHAR,
        stock_code    VARCHAR,
        description   VARCHAR,
        quantity      VARCHAR,
        invoice_date  VARCHAR,
        unit_price    VARCHAR,
        customer_id   VARCHAR,
        country       VARCHAR,
        _encoding     VARCHAR NOT NULL,  -- encoding the file was decoded with
        {READING_DDL}
        {LINEAGE_DDL}
    """,
    # The API's prediction log (``leadscore_core.predlog``): one row per served prediction.
    # A prediction is known by its own id and time, whichever file brought it.
    "predictions": f"""
        prediction_id  VARCHAR,  -- the entry's id, unique per prediction
        predicted_at   VARCHAR,  -- when it was served: ISO 8601 with offset, as written
        model          VARCHAR,  -- registered model name as served
        version        VARCHAR,
        endpoint       VARCHAR,
        inputs         JSON,
        outputs        JSON,
        _malformed     JSON,     -- a line that is not an entry: line, rule, reason
        {LINEAGE_DDL}
    """,
}

# Invoice export header (UCI Online Retail layout) -> raw column.
INVOICE_COLUMNS = {
    "InvoiceNo": "invoice_no",
    "StockCode": "stock_code",
    "Description": "description",
    "Quantity": "quantity",
    "InvoiceDate": "invoice_date",
    "UnitPrice": "unit_price",
    "CustomerID": "customer_id",
    "Country": "country",
}


def ensure_schemas(conn: duckdb.DuckDBPyConnection) -> None:
    for schema in SCHEMAS:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")


def raw_storage(source: str) -> tuple[str, str]:
    """(rows table, files table) behind the view ``raw.<source>`` (see the module doc)."""
    return f"raw.{source}_rows", f"raw.{source}_files"


def ensure_raw_table(conn: duckdb.DuckDBPyConnection, source: str) -> str:
    """``raw.<source>`` (the view; its tables made when missing); returns its name.

    A warehouse made before a column existed gets it (null for the rows already there); one
    whose ``raw.<source>`` is a table of every column per row has it moved into the two tables,
    one file row per distinct set of per-file values, the rows in their order."""
    ensure_schemas(conn)
    view = f"raw.{source}"
    rows, files = raw_storage(source)
    kind = _relation_kind(conn, view)
    if kind == "BASE TABLE":
        _add_missing_columns(conn, view, raw_column_types(source))
    columns = _raw_column_defs(source)
    file_defs = {n: d for n, d in columns.items() if n in PER_FILE_COLUMNS}
    row_defs = {n: d for n, d in columns.items() if n not in PER_FILE_COLUMNS}
    made = kind == "BASE TABLE" or kind is None
    # one file row per id (two landings taking the same id fail instead of sharing it)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {files} (_file INTEGER PRIMARY KEY, "
                 + ", ".join(f"{n} {d}" for n, d in file_defs.items()) + ")")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {rows} ("
                 + ", ".join(f"{n} {d}" for n, d in row_defs.items())
                 + ", _file INTEGER NOT NULL)")
    made |= _add_missing_columns(conn, files, {n: columns[n].split()[0] for n in file_defs})
    made |= _add_missing_columns(conn, rows, {n: columns[n].split()[0] for n in row_defs})
    if kind == "BASE TABLE":
        _move_into_storage(conn, source, list(file_defs), list(row_defs))
    if made:
        # every row shows, a row without its file too (with null lineage, which the checks
        # see), never dropped by the join
        listed = ", ".join(f"{'f' if n in file_defs else 'r'}.{n}" for n in columns)
        conn.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {listed} "
                     f"FROM {rows} r LEFT JOIN {files} f USING (_file)")
    return view


def _relation_kind(conn: duckdb.DuckDBPyConnection, table: str) -> str | None:
    schema, name = table.split(".")
    found = conn.execute("SELECT table_type FROM information_schema.tables "
                         "WHERE table_schema = ? AND table_name = ?", [schema, name]).fetchall()
    return found[0][0] if found else None


def _add_missing_columns(conn: duckdb.DuckDBPyConnection, table: str,
                         types: dict[str, str]) -> bool:
    schema, name = table.split(".")
    have = {column for (column,) in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
        [schema, name]).fetchall()}
    missing = [column for column in types if column not in have]
    for column in missing:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {types[column]}")
    return bool(missing)


def _move_into_storage(conn: duckdb.DuckDBPyConnection, source: str, file_columns: list[str],
                       row_columns: list[str]) -> None:
    """A ``raw.<source>`` table of the layout with every column on each row, moved into its
    rows and files tables (in one transaction; nothing is dropped that was not copied)."""
    old, (rows, files) = f"raw.{source}", raw_storage(source)
    per_file = ", ".join(file_columns)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(
            f"INSERT INTO {files} (_file, {per_file}) SELECT row_number() OVER "
            f"(ORDER BY first_row)::INTEGER, {per_file} FROM (SELECT {per_file}, "
            f"min(rowid) AS first_row FROM {old} GROUP BY ALL)")
        matched = " AND ".join(f"o.{c} IS NOT DISTINCT FROM f.{c}" for c in file_columns)
        conn.execute(
            f"INSERT INTO {rows} ({', '.join(row_columns)}, _file) SELECT "
            + ", ".join(f"o.{c}" for c in row_columns)
            + f", f._file FROM {old} o JOIN {files} f ON {matched} ORDER BY o.rowid")
        conn.execute(f"DROP TABLE {old}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def raw_column_types(source: str) -> dict[str, str]:
    """Column -> type of ``raw.<source>``, from its DDL."""
    return {name: definition.split()[0] for name, definition in _raw_column_defs(source).items()}


def _raw_column_defs(source: str) -> dict[str, str]:
    """Column -> its definition (type and constraint) in ``RAW_DDL``."""
    return {name: " ".join(definition.split()) for name, definition in re.findall(
        r"^\s*(\w+)\s+((?:VARCHAR|JSON|BIGINT|TIMESTAMP)\b(?:\s+NOT NULL)?)", RAW_DDL[source],
        re.M)}


def table_row_counts(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]]:
    """(schema, table, rows) for every table of the warehouse (a raw table as its view, not
    as the two tables that store it)."""
    relations = conn.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() UNION ALL "
        "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
        "ORDER BY schema_name, table_name").fetchall()
    storage = {table for schema, name in relations if schema == "raw" and name in RAW_DDL
               for table in raw_storage(name)}
    tables = [(schema, name) for schema, name in relations if f"{schema}.{name}" not in storage]
    return [
        (schema, table, conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0])
        for schema, table in tables
    ]


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    """A table of the warehouse, or a published snapshot (a view) of a snapshot reader."""
    schema, name = table.split(".")
    # fetchall: a half-fetched result would keep the connection busy for the next query
    return conn.execute(
        "SELECT count(*) FROM (SELECT schema_name, table_name FROM duckdb_tables() "
        "UNION ALL SELECT schema_name, view_name FROM duckdb_views()) "
        "WHERE schema_name = ? AND table_name = ?",
        [schema, name]).fetchall()[0][0] > 0


# -- published snapshots ------------------------------------------------------------------------
#
# DuckDB lets one process open the file while it writes, so a reader that opened the warehouse
# would have to wait in the single-writer pool for as long as it reads: a model's whole
# training, a drift report. Instead the stage that writes a table others only read publishes
# a Parquet copy of it beside the warehouse (written to a new file and renamed into place), and
# the readers query the copies through an in-memory DuckDB, without the pool and without the
# warehouse's lock.

SNAPSHOTS = "snapshots"


def snapshot_dir(database: str | Path) -> Path:
    """Where the warehouse at ``database`` publishes its snapshots: ``snapshots/`` beside it."""
    return Path(database).resolve().parent / SNAPSHOTS


def snapshot_path(directory: Path, table: str) -> Path:
    """Where ``table``'s published copy lives: ``<directory>/<schema>.<name>.parquet`` (the
    readers beyond Dagster, such as the API's pages, find it here)."""
    schema, name = table.split(".")
    return Path(directory) / f"{schema}.{name}.parquet"


def publish_snapshot(conn: duckdb.DuckDBPyConnection, table: str, directory: Path,
                     query: str | None = None) -> Path:
    """Write ``table`` (or what ``query`` selects, published under that name) to
    ``<directory>/<schema>.<name>.parquet`` atomically: a reader sees the old copy or the new
    one, never half of one."""
    directory.mkdir(parents=True, exist_ok=True)
    return _copy_atomic(conn, query or f"SELECT * FROM {table}",
                        snapshot_path(directory, table))


# A table that only grows (the prediction log's raw rows, the history of the performance
# estimates) is published as a folder of parts, ``<directory>/<schema>.<name>/<part>.parquet``:
# each write adds (or replaces) one part instead of rewriting the whole table, and a reader
# reads every part of the folder.


def part_dir(directory: Path, table: str) -> Path:
    schema, name = table.split(".")
    return Path(directory) / f"{schema}.{name}"


def publish_part(conn: duckdb.DuckDBPyConnection, table: str, directory: Path, part: str,
                 query: str) -> Path:
    """Write what ``query`` selects as the part ``part`` of ``table``'s folder (atomically:
    a reader sees the part whole or not at all; a part of that name is replaced)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", part) or part.startswith("."):
        raise ValueError(f"part name {part!r}: letters, digits, '_', '-' and '.' only")
    folder = part_dir(directory, table)
    folder.mkdir(parents=True, exist_ok=True)
    return _copy_atomic(conn, query, folder / f"{part}.parquet")


def partition_part(partition: str) -> str:
    """The part name of a raw table's partition (its key can hold any character)."""
    return hashlib.sha256(partition.encode()).hexdigest()[:24]


def publish_partitions(conn: duckdb.DuckDBPyConnection, table: str, directory: Path,
                       partition: str) -> list[Path]:
    """Publish ``partition``'s rows of a raw table as its part, and bring the folder in line
    with the table: a part is written for any partition that has none (a landing that stopped
    between its commit and its part, a table published whole before), a part of a partition
    the table no longer holds is removed, and so is a whole-table copy of it."""
    folder = part_dir(directory, table)
    have = {p.stem for p in folder.glob("*.parquet")} if folder.is_dir() else set()
    partitions = {partition_part(k): k for (k,) in conn.execute(
        f"SELECT DISTINCT _partition FROM {table}").fetchall()}
    todo = {n: k for n, k in partitions.items() if n not in have or k == partition}
    written = [publish_part(conn, table, directory, name,
                            f"SELECT * FROM {table} WHERE _partition = '{_sql_text(key)}'")
               for name, key in sorted(todo.items())]
    for name in have - set(partitions):
        (folder / f"{name}.parquet").unlink(missing_ok=True)
    (Path(directory) / f"{folder.name}.parquet").unlink(missing_ok=True)
    return written


def _copy_atomic(conn: duckdb.DuckDBPyConnection, select: str, target: Path) -> Path:
    partial = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex}.partial")
    try:
        conn.execute(f"COPY ({select}) TO '{_sql_text(partial)}' (FORMAT parquet)")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def published_sources(directory: Path) -> dict[str, str]:
    """Table name -> what ``read_parquet`` reads for it: the whole-table copies and the
    folders of parts (a folder wins over a copy of the same name; an empty one is absent)."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    found = {p.stem: _sql_text(p) for p in directory.glob("*.parquet")}
    for folder in directory.iterdir():
        if folder.is_dir() and "." in folder.name and any(folder.glob("*.parquet")):
            found[folder.name] = _sql_text(folder / "*.parquet")
    return dict(sorted(found.items()))


@contextmanager
def snapshot_reader(directory: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB where every published snapshot is a view under its table's name
    (``features.lead_features``), so readers query them as they would the warehouse."""
    conn = duckdb.connect()
    try:
        for table, source in published_sources(directory).items():
            schema, name = table.split(".", 1)
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(f'CREATE VIEW "{schema}"."{name}" AS '
                         f"SELECT * FROM read_parquet('{source}', union_by_name = true)")
        yield conn
    finally:
        conn.close()


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def read_table(conn: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame | None:
    """The whole table as a DataFrame, or None when it does not exist yet."""
    if not table_exists(conn, table):
        return None
    return conn.sql(f"SELECT * FROM {table}").df()


def write_table(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Replace ``table`` with ``frame`` (one transaction, so readers never see half a table)."""
    ensure_schemas(conn)
    view = f"_frame_{table.replace('.', '_')}"
    conn.register(view, frame)
    try:
        conn.execute("BEGIN")
        conn.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {view}")
        conn.execute("COMMIT")
    finally:
        conn.unregister(view)
    return len(frame)
