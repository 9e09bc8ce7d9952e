"""Warehouse candidates side by side: land and clean the full Online Retail file.

For each engine available in this Python environment: the DuckDB file (today's warehouse),
PostgreSQL (127.0.0.1:5432, a scratch database dropped afterwards), and DuckLake with its
catalog in PostgreSQL (when the running DuckDB can load the ``ducklake`` and ``postgres``
extensions from their PyPI wheels, ``duckdb-extension-ducklake`` /
``duckdb-extension-postgres-scanner``; nothing is downloaded). Each lands the file's
541,909 lines as text (the raw layer: every column VARCHAR plus lineage) and cleans them
(types, the Online Retail rules: cancellations kept as returns, non-positive prices and
blank descriptions set aside, exact duplicates removed), and reports wall time.

The file is read once with pyarrow (as landing does); the figures are the engines' own
time. The script imports nothing from the project, so it also runs under another DuckDB
(the DuckLake wheels exist for DuckDB 1.x only):

    uv run python bench/bench_warehouse.py [--data ../shared/data] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

COLUMNS = ["invoice_no", "stock_code", "description", "quantity", "invoice_date",
           "unit_price", "customer_id", "country"]

CLEAN_DUCKDB = """
CREATE TABLE clean_invoices AS
SELECT DISTINCT invoice_no, stock_code, description,
       CAST(quantity AS INTEGER) AS quantity,
       CAST(invoice_date AS TIMESTAMP) AS invoiced_at,
       CAST(unit_price AS DECIMAL(12, 3)) AS unit_price,
       CAST(CAST(nullif(customer_id, '') AS DOUBLE) AS BIGINT) AS customer_id,
       country, starts_with(invoice_no, 'C') AS is_return
FROM raw_invoices
WHERE CAST(unit_price AS DECIMAL(12, 3)) > 0 AND nullif(trim(description), '') IS NOT NULL
"""
QUARANTINE_DUCKDB = """
CREATE TABLE quarantine_invoices AS SELECT * FROM raw_invoices
WHERE NOT (CAST(unit_price AS DECIMAL(12, 3)) > 0 AND nullif(trim(description), '') IS NOT NULL)
"""
# the same statements in PostgreSQL's type names
CLEAN_PG = CLEAN_DUCKDB.replace("DECIMAL", "NUMERIC").replace("AS DOUBLE)", "AS DOUBLE PRECISION)")
QUARANTINE_PG = QUARANTINE_DUCKDB.replace("DECIMAL", "NUMERIC")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def read(path: Path) -> pa.Table:
    options = pacsv.ConvertOptions(column_types={c: pa.string() for c in
                                                 ["InvoiceNo", "StockCode", "Description",
                                                  "Quantity", "InvoiceDate", "UnitPrice",
                                                  "CustomerID", "Country"]})
    table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding="latin-1"),
                           convert_options=options)
    table = table.rename_columns(COLUMNS)
    n = table.num_rows
    return table.append_column("_source_file", pa.array([path.name] * n)).append_column(
        "_row_number", pa.array(range(1, n + 1), pa.int64()))


def counts(conn) -> tuple[int, int, int]:
    def one(sql):
        cur = conn.execute(sql) if hasattr(conn, "execute") else None
        return cur.fetchone()[0]
    return (one("SELECT count(*) FROM raw_invoices"), one("SELECT count(*) FROM clean_invoices"),
            one("SELECT count(*) FROM quarantine_invoices"))


def bench_duckdb_file(table: pa.Table, folder: Path) -> dict:
    path = folder / f"bench_{uuid.uuid4().hex[:8]}.duckdb"
    conn = duckdb.connect(str(path))
    try:
        return _duckdb_steps(conn, table, "DuckDB file")
    finally:
        conn.close()
        path.unlink(missing_ok=True)


def _duckdb_steps(conn, table: pa.Table, name: str) -> dict:
    # DuckDB runs in this process: its CPU seconds (all its threads) are this process's
    t0, c0 = time.perf_counter(), time.process_time()
    conn.register("landing", table)
    conn.execute("CREATE TABLE raw_invoices AS SELECT * FROM landing")
    conn.unregister("landing")
    t1, c1 = time.perf_counter(), time.process_time()
    conn.execute(CLEAN_DUCKDB)
    conn.execute(QUARANTINE_DUCKDB)
    t2, c2 = time.perf_counter(), time.process_time()
    raw, clean, quarantined = counts(conn)
    return {"engine": name, "land_s": t1 - t0, "clean_s": t2 - t1, "land_cpu": c1 - c0,
            "clean_cpu": c2 - c1, "raw": raw, "clean": clean, "quarantined": quarantined}


def _ext_path(package: str) -> str | None:
    try:
        module = __import__(package)
    except ImportError:
        return None
    found = sorted(Path(module.__file__).parent.glob("extensions/*/*.duckdb_extension"))
    return str(found[-1]) if found else None


def bench_ducklake(table: pa.Table, folder: Path) -> dict:
    lake = _ext_path("duckdb_extension_ducklake")
    pg = _ext_path("duckdb_extension_postgres_scanner")
    if not lake or not pg:
        return {"engine": "DuckLake (PostgreSQL catalog)",
                "skipped": "duckdb-extension-ducklake / -postgres-scanner not installed"}
    conn = duckdb.connect()
    try:
        conn.execute(f"LOAD '{pg}'")
        conn.execute(f"LOAD '{lake}'")
    except duckdb.Error as exc:
        return {"engine": "DuckLake (PostgreSQL catalog)", "skipped": str(exc).splitlines()[0]}
    db = _scratch_db()
    data = folder / f"lake_{uuid.uuid4().hex[:8]}"
    try:
        conn.execute(f"ATTACH 'ducklake:postgres:dbname={db} host=127.0.0.1 user=postgres' "
                     f"AS lake (DATA_PATH '{data}/')")
        conn.execute("USE lake")
        return _duckdb_steps(conn, table, "DuckLake (PostgreSQL catalog)")
    finally:
        conn.close()
        _drop_db(db)
        import shutil
        shutil.rmtree(data, ignore_errors=True)


def _scratch_db() -> str:
    import psycopg2
    name = f"leadscore_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return name


def _drop_db(name: str) -> None:
    import psycopg2
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


class _PgConn:
    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql):
        cur = self.conn.cursor()
        cur.execute(sql)
        return cur


def bench_postgres(table: pa.Table) -> dict:
    import psycopg2
    db = _scratch_db()
    conn = psycopg2.connect(f"postgresql://postgres@127.0.0.1:5432/{db}")
    try:
        cols = ", ".join(f"{c} TEXT" for c in [*COLUMNS, "_source_file"])
        t0 = time.perf_counter()
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
        buffer.seek(0)
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE raw_invoices ({cols}, _row_number BIGINT)")
        cur.copy_expert("COPY raw_invoices FROM STDIN WITH (FORMAT csv)", buffer)
        conn.commit()
        t1 = time.perf_counter()
        cur.execute(CLEAN_PG)
        cur.execute(QUARANTINE_PG)
        conn.commit()
        t2 = time.perf_counter()
        raw, clean, quarantined = counts(_PgConn(conn))
        return {"engine": "PostgreSQL 15", "land_s": t1 - t0, "clean_s": t2 - t1, "raw": raw,
                "clean": clean, "quarantined": quarantined}
    finally:
        conn.close()
        _drop_db(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path("/tmp"))
    parser.add_argument("--repeat", type=int, default=1, help="runs of each engine")
    args = parser.parse_args()
    path = args.data / "online_retail_uci.csv.gz"
    if not path.exists():
        print(f"skipped: {path} not found")
        return
    t = time.perf_counter()
    table = read(path)
    print(f"read {table.num_rows:,} lines with pyarrow in {time.perf_counter() - t:.2f} s "
          f"(duckdb {duckdb.__version__})")
    # CPU: DuckDB's in this process; PostgreSQL's is the server's, not measured here
    print(f"{'engine':<32}{'land s':>8}{'(CPU)':>7}{'clean s':>9}{'(CPU)':>7}{'raw':>10}"
          f"{'clean':>10}{'quar.':>8}")
    for _ in range(args.repeat):
        for r in (bench_duckdb_file(table, args.work), bench_postgres(table),
                  bench_ducklake(table, args.work)):
            if "skipped" in r:
                print(f"{r['engine']:<32} skipped: {r['skipped']}")
                continue
            cpu = [f"{r[k]:>7.2f}" if k in r else f"{'-':>7}" for k in ("land_cpu", "clean_cpu")]
            print(f"{r['engine']:<32}{r['land_s']:>8.2f}{cpu[0]}{r['clean_s']:>9.2f}{cpu[1]}"
                  f"{r['raw']:>10,}{r['clean']:>10,}{r['quarantined']:>8,}")
    print("load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
