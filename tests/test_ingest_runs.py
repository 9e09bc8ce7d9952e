"""Real Dagster runs of the raw assets: damaged files, quarantine, re-runs, lineage."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import AlertChannel
from leadscore_assets.ingest.assets import PARTITIONS, RAW_ASSETS, land_file
from leadscore_assets.ingest.landing import LandingZone, partition_key
from leadscore_assets.ingest.sensors import INBOX_SENSORS

LEADS = ("submitted_at,email,name,company,business_type,business_size,utm_source\n"
         "2024-01-02 10:00:00,ann@example.com,Ann,Acme,Dental,1-10,google\n"
         "2024-01-03 11:00:00,bob@example.com,Bob,Beta,Legal,11-50,bing\n"
         "2024-01-04 12:00:00,cy@example.com,Cy,Gamma,Fitness,1-10,\n")
CHARGES = [{"id": f"ch_{i}", "object": "charge", "amount": 15000, "currency": "usd",
            "status": "succeeded", "receipt_email": f"c{i}@example.com", "created": 1700000000}
           for i in range(3)]
OLD = 1_600_000_000


def failure_of(result: dg.ExecuteInProcessResult) -> tuple[str, dict]:
    """Description and metadata of the run's one ``dg.Failure``."""
    [event] = [e for e in result.all_events if e.is_step_failure]
    data = event.step_failure_data.user_failure_data
    return data.description, {k: v.value for k, v in data.metadata.items()}


def rows(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def zone(tmp_path: Path) -> tuple[LandingZone, DuckDBResource, Path]:
    root = tmp_path / "data"
    for source in ("leads", "payments", "invoices"):
        (root / "inbox" / source).mkdir(parents=True)
    warehouse = tmp_path / "warehouse.duckdb"
    return LandingZone(root=str(root), settle_seconds=0), DuckDBResource(
        database=str(warehouse)), warehouse


def put(landing: LandingZone, source: str, name: str, content: bytes | str) -> Path:
    path = landing.inbox(source) / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    os.utime(path, (OLD, OLD))
    return path


DAMAGED = {
    "payments": {
        "empty.json": b"",
        "cut.json": json.dumps(CHARGES).encode()[:-25],
        "scan.pdf": b"%PDF-1.7\n" + bytes(range(256)),
    },
    "leads": {
        "crm_export.csv": "Lead,When\nx,y\n",
    },
}
EXPECTED_REASON = {
    "empty.json": "empty file",
    "cut.json": "truncated JSON at line 1",
    "scan.pdf": "binary file",
    "crm_export.csv": "unknown header for leads",
}


def test_damaged_files_fail_alone_and_go_to_quarantine(zone) -> None:
    landing, warehouse, db = zone
    put(landing, "payments", "charges.json", json.dumps(CHARGES))
    put(landing, "leads", "leads.csv", LEADS)
    for source, files in DAMAGED.items():
        for name, content in files.items():
            put(landing, source, name, content)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in Path(landing.root).rglob("*") if p.is_file()}

    # what the daemon does: one sensor tick per source, then one run per request
    instance = dg.DagsterInstance.ephemeral()
    outcomes: dict[str, dg.ExecuteInProcessResult] = {}
    for source in ("payments", "leads"):
        with dg.build_sensor_context(resources={"landing": landing},
                                     instance=instance) as context:
            tick = INBOX_SENSORS[source](context)
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name,
                                            list(request.partition_keys))
        for request in tick.run_requests:
            outcomes[request.tags["leadscore/file"]] = dg.materialize(
                [RAW_ASSETS[source]], partition_key=request.partition_key,
                instance=instance, raise_on_error=False, tags=request.tags,
                resources={"landing": landing, "warehouse": warehouse,
                           "alerts": AlertChannel(log_path=f"{landing.root}/alerts.jsonl")})

    assert sorted(outcomes) == sorted(["charges.json", "leads.csv", *EXPECTED_REASON])
    assert outcomes["charges.json"].success and outcomes["leads.csv"].success
    for name, reason in EXPECTED_REASON.items():
        result = outcomes[name]
        assert not result.success, name
        description, metadata = failure_of(result)
        assert description.startswith(f"{name}: ") and reason in description
        source = next(s for s, files in DAMAGED.items() if name in files)
        copy = landing.quarantine_dir(source) / name
        assert metadata["file"] == name and metadata["quarantined_path"] == str(copy)
        assert copy.read_bytes() == (landing.inbox(source) / name).read_bytes()
        note = json.loads((landing.quarantine_dir(source) / f"{name}.reason.json").read_text())
        assert note["reason"] == description
        assert note["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()

    # the good files landed in full, traceable to their file
    assert rows(db, "SELECT _source_file, count(*) FROM raw.payments GROUP BY 1") == [
        ("charges.json", 3)]
    assert rows(db, "SELECT _source_file, count(*), min(_row_number), max(_row_number) "
                    "FROM raw.leads GROUP BY 1") == [("leads.csv", 3, 1, 3)]
    # no input file deleted or modified
    for path, sha in before.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, path


def test_rerunning_a_partition_replaces_its_rows(zone) -> None:
    landing, warehouse, db = zone
    path = put(landing, "leads", "leads.csv", LEADS)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    instance = dg.DagsterInstance.ephemeral()
    first = land_file("leads", "leads.csv", landing=landing, warehouse=warehouse,
                      instance=instance)
    put(landing, "leads", "more.csv", LEADS.replace("ann@", "zed@"))
    land_file("leads", "more.csv", landing=landing, warehouse=warehouse, instance=instance)
    second = land_file("leads", "leads.csv", landing=landing, warehouse=warehouse,
                       instance=instance)

    assert first.success and second.success
    key = partition_key("leads.csv", sha)
    assert rows(db, "SELECT _partition, count(*), count(DISTINCT _ingested_at) FROM raw.leads "
                    "GROUP BY 1 ORDER BY 1") == sorted([
        (key, 3, 1), (partition_key("more.csv", landing.sha256("leads", "more.csv")), 3, 1)])
    assert rows(db, "SELECT DISTINCT _file_sha256 FROM raw.leads WHERE _source_file = "
                    "'leads.csv'") == [(sha,)]
    [materialization] = second.asset_materializations_for_node("raw__leads")
    assert materialization.metadata["rows_replaced"].value == 3
    assert materialization.metadata["rows_landed"].value == 3
    assert materialization.partition == key
    assert "| profile |" in materialization.metadata["preview"].value


def test_a_file_changed_after_it_was_registered_fails_its_partition(zone) -> None:
    landing, warehouse, db = zone
    path = put(landing, "leads", "leads.csv", LEADS)
    key = partition_key("leads.csv", landing.sha256("leads", "leads.csv"))
    path.write_text(LEADS + "2024-01-05 12:00:00,dee@example.com,Dee,D,Legal,1-10,x\n")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PARTITIONS["leads"].name, [key])
    result = dg.materialize([RAW_ASSETS["leads"]], partition_key=key, instance=instance,
                            raise_on_error=False,
                            resources={"landing": landing, "warehouse": warehouse,
                           "alerts": AlertChannel(log_path=f"{landing.root}/alerts.jsonl")})
    description, _ = failure_of(result)
    assert "leads.csv: its content changed" in description
    assert not db.exists() or rows(db, "SELECT count(*) FROM information_schema.tables "
                                       "WHERE table_name LIKE 'leads%'") == [(0,)]


def test_gzipped_invoices_land_with_lineage(zone) -> None:
    landing, warehouse, db = zone
    body = ("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
            "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,"
            "17850.0,United Kingdom\n")
    put(landing, "invoices", "retail.csv.gz", gzip.compress(body.encode()))
    result = land_file("invoices", "retail.csv.gz", landing=landing, warehouse=warehouse)
    assert result.success
    [(source_file, encoding, row_number, customer)] = rows(
        db, "SELECT _source_file, _encoding, _row_number, customer_id FROM raw.invoices")
    assert (source_file, encoding, row_number, customer) == (
        "retail.csv.gz", "utf-8", 1, "17850.0")
    [materialization] = result.asset_materializations_for_node("raw__invoices")
    assert materialization.metadata["gzip"].value is True


def test_a_name_dagster_refuses_in_keys_still_lands(zone) -> None:
    landing, warehouse, db = zone
    put(landing, "leads", "leads...final.csv", LEADS)
    result = land_file("leads", "leads...final.csv", landing=landing, warehouse=warehouse)
    assert result.success
    [(partition, source_file)] = rows(db, "SELECT DISTINCT _partition, _source_file "
                                          "FROM raw.leads")
    assert partition.startswith("leads_final.csv@") and source_file == "leads...final.csv"


def test_a_stripe_file_without_payments_lands_with_a_warning_and_an_alert(zone) -> None:
    landing, warehouse, _ = zone
    put(landing, "payments", "customers.json", json.dumps(
        {"object": "list", "data": [{"id": "cus_1", "object": "customer"},
                                    {"id": "prod_1", "object": "product"}]}))
    result = land_file("payments", "customers.json", landing=landing, warehouse=warehouse)
    assert result.success
    [event] = result.asset_materializations_for_node("raw__payments")
    assert "customers.json: no payment in this file" in event.metadata["warning"].value
    assert event.metadata["objects_skipped"].value == {"customer": 1, "product": 1}
    [alert] = [json.loads(line) for line in
               (Path(landing.root) / "alerts.jsonl").read_text().splitlines()]
    assert (alert["kind"], alert["severity"], alert["file"]) == (
        "nothing_landed", "warning", "customers.json")


def test_an_export_in_many_small_chunks_lands_every_row_as_read(tmp_path) -> None:
    """The insert is fed in DuckDB row-group chunks: same rows, same values, same order."""
    import pyarrow as pa

    from leadscore_assets.ingest.assets import DUCKDB_ROW_GROUP_ROWS, row_group_chunks, write_raw
    from leadscore_assets.ingest.readers import Export, raw_columns

    n = 2 * DUCKDB_ROW_GROUP_ROWS + 1234
    numbers = [str(i) for i in range(n)]
    column = pa.chunked_array([numbers[i:i + 10_000] for i in range(0, n, 10_000)], pa.string())
    table = pa.table({name: column if name != "_row_number" else
                      pa.chunked_array([list(range(1, n + 1))], pa.int64())
                      for name in raw_columns("invoices")})
    table = table.set_column(table.column_names.index("_malformed"), "_malformed",
                             pa.nulls(n, pa.string()))
    for name, value in (("_encoding", "utf-8"), ("_formats", "{}")):  # one per file
        table = table.set_column(table.column_names.index(name), name,
                                 pa.array([value] * n).dictionary_encode())
    aligned = row_group_chunks(table)
    assert aligned.equals(table)
    assert [len(c) for c in aligned.column("invoice_no").chunks] == [
        DUCKDB_ROW_GROUP_ROWS, DUCKDB_ROW_GROUP_ROWS, 1234]
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        write_raw(conn, "invoices", Export("invoices", table), partition="p",
                  file_name="f.csv", sha256="0" * 64)
        landed = conn.execute("SELECT _row_number, invoice_no, country FROM raw.invoices "
                              "ORDER BY _row_number").fetchall()
    assert landed == [(i + 1, str(i), str(i)) for i in range(n)]


def _invoice_export(lines: list[str], encoding: str = "utf-8"):
    import pyarrow as pa

    from leadscore_assets.ingest.readers import Export, raw_columns

    n = len(lines)
    text = {"_encoding": pa.array([encoding] * n).dictionary_encode(),
            "_formats": pa.array(['{"quantity": {"decimal": "."}}'] * n).dictionary_encode(),
            "_malformed": pa.nulls(n, pa.string()),
            "_row_number": pa.array(range(1, n + 1), pa.int64())}
    return Export("invoices", pa.table({name: text.get(name, pa.array(lines, pa.string()))
                                        for name in raw_columns("invoices")}))


def test_a_raw_table_of_every_column_per_row_moves_into_files_and_rows(tmp_path) -> None:
    """A warehouse whose raw.invoices holds the file's lineage on every row (and lacks a
    column added since) reads the same after the move, row for row, and lands again."""
    from datetime import datetime

    from leadscore_assets.ingest.assets import write_raw
    from leadscore_core.warehouse import RAW_DDL, ensure_raw_table, table_row_counts

    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("CREATE SCHEMA raw")
        conn.execute("CREATE TABLE raw.invoices ("
                     + RAW_DDL["invoices"].replace("_formats     JSON,", "") + ")")
        conn.execute(
            "INSERT INTO raw.invoices (invoice_no, stock_code, description, quantity, "
            "invoice_date, unit_price, customer_id, country, _encoding, _malformed, _partition, "
            "_source_file, _file_sha256, _row_number, _ingested_at) "
            "SELECT 'n' || i, 's', 'd', i::VARCHAR, 't', '1.5', NULL, 'UK', "
            "CASE WHEN i % 3 = 0 THEN 'cp1252' ELSE 'utf-8' END, NULL, "
            "'p' || (i % 3 = 0)::INTEGER, 'f' || (i % 3 = 0)::INTEGER || '.csv', 'h', i, "
            "TIMESTAMP '2026-01-01' + to_days((i % 3 = 0)::INTEGER) FROM range(1, 10) t(i)")
        before = conn.execute("SELECT * FROM raw.invoices ORDER BY _row_number").fetchall()
        assert ensure_raw_table(conn, "invoices") == "raw.invoices"
        after = conn.execute("SELECT * EXCLUDE (_formats) FROM raw.invoices "
                             "ORDER BY _row_number").fetchall()
        assert after == before
        assert conn.execute("SELECT list(_row_number) FROM raw.invoices_rows").fetchone() == (
            list(range(1, 10)),)
        assert conn.execute("SELECT count(*), count(_formats) FROM raw.invoices").fetchone() \
            == (9, 0)
        assert conn.execute("SELECT _partition, _encoding, _ingested_at FROM "
                            "raw.invoices_files ORDER BY _file").fetchall() == [
            ("p0", "utf-8", datetime(2026, 1, 1)), ("p1", "cp1252", datetime(2026, 1, 2))]
        assert write_raw(conn, "invoices", _invoice_export(["a", "b"]), partition="p1",
                         file_name="f1.csv", sha256="h2") == 3
        assert conn.execute("SELECT _partition, count(*) FROM raw.invoices GROUP BY 1 "
                            "ORDER BY 1").fetchall() == [("p0", 6), ("p1", 2)]
        listed = {f"{schema}.{table}": n for schema, table, n in table_row_counts(conn)}
        assert listed == {"raw.invoices": 8}
        with pytest.raises(duckdb.ConstraintException):  # one file row per id
            conn.execute("INSERT INTO raw.invoices_files SELECT * FROM raw.invoices_files "
                         "LIMIT 1")


def test_a_per_file_column_with_two_values_is_refused(tmp_path) -> None:
    import pyarrow as pa

    from leadscore_assets.ingest.assets import write_raw

    export = _invoice_export(["a", "b"])
    export.table = export.table.set_column(
        export.table.column_names.index("_encoding"), "_encoding",
        pa.array(["utf-8", "cp1252"]).dictionary_encode())
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        with pytest.raises(ValueError, match="_encoding must hold one value per file"):
            write_raw(conn, "invoices", export, partition="p", file_name="f.csv", sha256="h")
        assert conn.execute("SELECT count(*) FROM raw.invoices_files").fetchone() == (0,)
