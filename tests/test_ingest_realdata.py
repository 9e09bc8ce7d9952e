"""The public data sets in ../shared/data land in full through real Dagster runs."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.landing import LandingZone

pytestmark = pytest.mark.realdata

REAL_FILES = {
    ("invoices", "online_retail_uci.csv.gz"): 541_909,
    ("customers", "telco_customer_churn.csv"): 7_043,
    ("leads", "xeducation_leads.csv"): 9_240,
    ("leads", "codepro_leadscoring.csv"): 24_991,
    ("payments", "stripe_payment_objects_subset.json"): 4,
}
RETAIL_SAMPLE_ROWS = 400


def kaggle_variant(sample: pd.DataFrame) -> bytes:
    """The widely circulated latin-1 copy: ``12/1/2010 8:26`` dates, integer ids, CRLF."""
    out = sample.copy()
    when = pd.to_datetime(out["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    assert (when.dt.second == 0).all(), "the M/D/YYYY H:MM variant has no seconds"
    out["InvoiceDate"] = [f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}" for t in when]
    out["CustomerID"] = out["CustomerID"].str.replace(r"\.0$", "", regex=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(out.columns)
    writer.writerows(out.itertuples(index=False))
    return buffer.getvalue().encode("cp1252")


def utf8_original(sample: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    sample.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


@pytest.fixture(scope="module")
def landed(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("realdata")
    landing = LandingZone(root=str(tmp / "data"))
    warehouse = DuckDBResource(database=str(tmp / "warehouse.duckdb"))
    for source, name in REAL_FILES:
        landing.inbox(source).mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / name, landing.inbox(source) / name)

    with gzip.open(shared_data / "online_retail_uci.csv.gz", "rt", encoding="utf-8") as handle:
        retail = pd.read_csv(handle, dtype=str, keep_default_na=False)
    non_ascii = retail["Description"].str.contains(r"[^\x00-\x7f]") | retail[
        "Country"].str.contains(r"[^\x00-\x7f]")
    sample = pd.concat([retail.head(RETAIL_SAMPLE_ROWS), retail[non_ascii],
                        retail[retail["Description"].str.contains('"')].head(20)])
    assert non_ascii.sum() > 0
    (landing.inbox("invoices") / "sample_utf8.csv").write_bytes(utf8_original(sample))
    (landing.inbox("invoices") / "sample_kaggle_latin1.csv").write_bytes(kaggle_variant(sample))

    instance = dg.DagsterInstance.ephemeral()
    results = {}
    for source, name in [*REAL_FILES, ("invoices", "sample_utf8.csv"),
                         ("invoices", "sample_kaggle_latin1.csv")]:
        results[name] = land_file(source, name, landing=landing, warehouse=warehouse,
                                  instance=instance)
    return results, Path(warehouse.database)


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize(("source", "name"), list(REAL_FILES))
def test_each_real_file_lands_with_its_exact_row_count(landed, source: str, name: str) -> None:
    results, db = landed
    assert results[name].success
    expected = REAL_FILES[(source, name)]
    [(count, first, last)] = query(
        db, f"SELECT count(*), min(_row_number), max(_row_number) FROM raw.{source} "
            f"WHERE _source_file = '{name}'")
    assert count == expected
    [materialization] = results[name].asset_materializations_for_node(f"raw__{source}")
    assert materialization.metadata["dagster/row_count"].value == expected
    if source != "payments":
        assert (first, last) == (1, expected)


def test_profiles_are_detected_from_real_headers(landed) -> None:
    _, db = landed
    assert query(db, "SELECT _source_file, profile, count(*) FROM raw.leads GROUP BY ALL "
                     "ORDER BY 1") == [("codepro_leadscoring.csv", "codepro", 24_991),
                                       ("xeducation_leads.csv", "xeducation", 9_240)]
    # the unnamed index column of CodePro keeps its empty name and identifies the lead
    [(record_id, record)] = query(db, "SELECT record_id, record FROM raw.leads WHERE "
                                      "profile = 'codepro' AND _row_number = 1")
    assert json.loads(record)[""] == record_id
    # Telco: 11 TotalCharges that are a single space stay a single space
    [(spaces,)] = query(db, "SELECT count(*) FROM raw.customers "
                            "WHERE record->>'TotalCharges' = ' '")
    assert spaces == 11


def test_stripe_fixture_lands_its_payments_refund_and_dispute(landed, shared_data: Path) -> None:
    results, db = landed
    landed_rows = query(db, "SELECT object_type, payment_id, amount, amount_unit, raw_format, "
                            "event_id FROM raw.payments ORDER BY 1")
    fixture = json.loads((shared_data / "stripe_payment_objects_subset.json").read_text())
    assert landed_rows == [
        ("charge", fixture["charge"]["id"], str(fixture["charge"]["amount"]), "minor",
         "json_mapping", None),
        ("dispute", fixture["dispute"]["id"], str(fixture["dispute"]["amount"]), "minor",
         "json_mapping", None),
        ("payment_intent", fixture["payment_intent"]["id"],
         str(fixture["payment_intent"]["amount"]), "minor", "json_mapping", None),
        ("refund", fixture["refund"]["id"], str(fixture["refund"]["amount"]), "minor",
         "json_mapping", None),
    ]
    # the fixture's event wraps a plan, so it is skipped and counted with the other types
    assert fixture["event"]["data"]["object"]["object"] == "plan"
    [materialization] = results["stripe_payment_objects_subset.json"] \
        .asset_materializations_for_node("raw__payments")
    skipped = materialization.metadata["objects_skipped"].value
    assert skipped["event:plan"] == 1
    assert sum(skipped.values()) == len(fixture) - 4
    [(raw,)] = query(db, "SELECT raw_object FROM raw.payments WHERE object_type = 'charge'")
    assert json.loads(raw) == fixture["charge"]


def test_online_retail_quirks_survive_as_text(landed) -> None:
    _, db = landed
    [(blank_customer, blank_description, cancelled, ids)] = query(
        db, "SELECT count(*) FILTER (customer_id IS NULL), count(*) FILTER (description IS NULL),"
            " count(*) FILTER (invoice_no LIKE 'C%'), count(*) FILTER (customer_id LIKE '%.0') "
            "FROM raw.invoices WHERE _source_file = 'online_retail_uci.csv.gz'")
    assert (blank_customer, blank_description, cancelled) == (135_080, 1_454, 9_288)
    assert ids == 541_909 - 135_080


def test_latin1_kaggle_variant_lands_the_same_values(landed) -> None:
    results, db = landed
    assert results["sample_kaggle_latin1.csv"].success
    with duckdb.connect(str(db), read_only=True) as conn:
        def frame(name: str) -> pd.DataFrame:
            return conn.execute(
                "SELECT * EXCLUDE (_partition, _source_file, _file_sha256, _ingested_at) "
                "FROM raw.invoices WHERE _source_file = ? ORDER BY _row_number", [name]).df()
        utf8, kaggle = frame("sample_utf8.csv"), frame("sample_kaggle_latin1.csv")

    assert len(kaggle) == len(utf8) > 0
    assert set(utf8["_encoding"]) == {"utf-8"} and set(kaggle["_encoding"]) == {"cp1252"}
    assert kaggle["description"].str.contains("£").any()
    same_text = ["invoice_no", "stock_code", "description", "quantity", "unit_price", "country",
                 "_row_number"]
    pd.testing.assert_frame_equal(kaggle[same_text], utf8[same_text])
    # dates and ids are written differently by design; once parsed they are the same
    assert kaggle["invoice_date"].iloc[0] != utf8["invoice_date"].iloc[0]
    pd.testing.assert_series_equal(
        pd.to_datetime(kaggle["invoice_date"], format="%m/%d/%Y %H:%M"),
        pd.to_datetime(utf8["invoice_date"], format="%Y-%m-%d %H:%M:%S"))
    pd.testing.assert_series_equal(pd.to_numeric(kaggle["customer_id"]),
                                   pd.to_numeric(utf8["customer_id"]))
    assert kaggle["customer_id"].isna().equals(utf8["customer_id"].isna())
