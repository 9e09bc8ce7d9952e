"""Real exports rewritten the ways spreadsheets and locales write them land with the original
values, field by field, or are refused with a reason naming the field and both readings.

Every variant is made here from ``../shared/data`` (never committed): Online Retail as a UK
Excel export (commas, ``DD/MM/YYYY HH:MM``), as a European one (semicolons, decimal commas,
``DD.MM.YYYY``), quoted, CRLF, with a BOM, as UTF-16 tab-separated text; the Telco snapshot
with decimal commas; a Stripe dashboard CSV in EUR; Stripe objects wrapped, listed, paged and
evented. The expected values are the original file's, cleaned the same way.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from leadscore_assets.clean.invoices import clean_invoices
from leadscore_assets.clean.payments import clean_payments
from leadscore_assets.clean.records import clean_records
from leadscore_assets.ingest.readers import UnreadableFile, read_export
from leadscore_core.profiles import load_profiles
from tests.support.shared import online_retail_rows

PROFILES = load_profiles()
SAMPLE_EVERY = 20  # every 20th Online Retail line: 27,096 lines across the whole year
COMPARED = ["invoice_no", "stock_code", "description", "quantity", "invoice_date", "unit_price",
            "customer_id", "country", "is_return", "line_total"]


def landed(source: str, path: Path, declared: dict | None = None) -> pd.DataFrame:
    raw = read_export(source, path, PROFILES, declared).frame.copy()
    raw["_source_file"] = path.name
    raw["_ingested_at"] = pd.Timestamp("2026-01-01")
    return raw


@pytest.fixture(scope="module")
def retail_rows(shared_data: Path) -> tuple[list[str], list[list[str]]]:
    return online_retail_rows(shared_data, lambda i: i % SAMPLE_EVERY == 0)


@pytest.fixture(scope="module")
def retail_expected(retail_rows, tmp_path_factory):
    header, rows = retail_rows
    path = tmp_path_factory.mktemp("orig") / "original.csv"
    write_csv(path, header, rows)
    return clean_invoices(landed("invoices", path))


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, delimiter: str = ",",
              quoting: int = csv.QUOTE_MINIMAL, newline: str = "\n", encoding: str = "utf-8",
              bom: bytes = b"") -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(bom + buffer.getvalue().encode(encoding))
    return path


def european_number(text: str, thousands: str = ".") -> str:
    """``1234.5`` as a German spreadsheet writes it: ``1.234,5``."""
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, _, fraction = text.partition(".")
    groups = []
    while len(whole) > 3:
        whole, groups = whole[:-3], [whole[-3:], *groups]
    whole = thousands.join([whole, *groups])
    return sign + whole + ("," + fraction if fraction else "")


def uk_date(iso: str, separator: str = "/") -> str:
    """``2010-12-01 08:26:00`` as a UK spreadsheet writes it: ``01/12/2010 08:26``."""
    date, time = iso.split(" ")
    year, month, day = date.split("-")
    return f"{day}{separator}{month}{separator}{year} {time[:5]}"


def variant(rows: list[list[str]], *, date=None, number=None) -> list[list[str]]:
    out = []
    for row in rows:
        row = list(row)
        if date:
            row[4] = date(row[4])
        if number:
            row[3], row[5] = number(row[3]), number(row[5])
        out.append(row)
    return out


VARIANTS = {
    "uk_excel": dict(transform=dict(date=uk_date), write={}),
    "uk_excel_crlf_bom": dict(transform=dict(date=uk_date),
                              write=dict(newline="\r\n", bom=codecs.BOM_UTF8)),
    "eu_semicolon_decimal_comma": dict(
        transform=dict(date=lambda d: uk_date(d, "."), number=european_number),
        write=dict(delimiter=";")),
    "eu_quoted_comma_delimited": dict(
        transform=dict(date=uk_date, number=european_number),
        write=dict(quoting=csv.QUOTE_ALL)),
    "eu_space_thousands_cp1252": dict(
        transform=dict(date=uk_date, number=lambda t: european_number(t, " ")),
        write=dict(delimiter=";", encoding="cp1252", newline="\r\n")),
    "excel_unicode_text": dict(
        transform=dict(date=uk_date), write=dict(delimiter="\t", encoding="utf-16-le",
                                                 bom=codecs.BOM_UTF16_LE, newline="\r\n")),
    "pipe_quoted_nonnumeric": dict(transform={}, write=dict(delimiter="|",
                                                            quoting=csv.QUOTE_NONNUMERIC)),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_online_retail_variants_land_the_original_values(
        name, retail_rows, retail_expected, tmp_path) -> None:
    header, rows = retail_rows
    spec = VARIANTS[name]
    path = write_csv(tmp_path / f"{name}.csv", header, variant(rows, **spec["transform"]),
                     **spec["write"])
    raw = landed("invoices", path)
    result = clean_invoices(raw)
    assert result.rule_counts == retail_expected.rule_counts
    pd.testing.assert_frame_equal(result.clean[COMPARED], retail_expected.clean[COMPARED],
                                  check_dtype=False)
    assert result.accounted == len(raw) == len(rows)


def test_a_small_day_month_file_is_refused_with_both_readings(retail_rows, tmp_path) -> None:
    header, rows = retail_rows
    early = [r for r in rows if r[4] < "2010-12-10"][:50]  # every day <= 12: no evidence
    path = write_csv(tmp_path / "december.csv", header, variant(early, date=uk_date))
    with pytest.raises(UnreadableFile) as caught:
        read_export("invoices", path, PROFILES)
    message = str(caught.value)
    assert message.startswith("december.csv: field 'InvoiceDate' can be read two ways")
    assert "1 December 2010 (day first) or 12 January 2010 (month first)" in message

    # declared, the same file lands with the original dates
    raw = landed("invoices", path, {"date_order": "dmy"})
    dates = clean_invoices(raw).clean["invoice_date"]
    assert set(dates.dt.month) == {12} and dates.min() == pd.Timestamp("2010-12-01 08:26")


def test_a_declaration_the_evidence_contradicts_names_field_and_value(
        retail_rows, tmp_path) -> None:
    header, rows = retail_rows
    path = write_csv(tmp_path / "uk.csv", header, variant(rows, date=uk_date))
    with pytest.raises(UnreadableFile, match=r"uk\.csv: field 'InvoiceDate' contradicts the "
                                             r"declared date order 'mdy' \(month first\): "
                                             r"'\d\d/\d\d/\d{4} \d\d:\d\d' can only be day first"):
        read_export("invoices", path, PROFILES, {"date_order": "mdy"})
    with pytest.raises(UnreadableFile, match=r"field 'UnitPrice' contradicts the declared "
                                             r"decimal mark ','"):
        read_export("invoices", path, PROFILES, {"decimal": ",", "date_order": "dmy"})


def test_a_number_field_with_two_readings_is_refused(tmp_path) -> None:
    path = write_csv(tmp_path / "prices.csv", ["InvoiceNo", "StockCode", "Description",
                                               "Quantity", "InvoiceDate", "UnitPrice",
                                               "CustomerID", "Country"],
                     [["1", "A", "Thing", "2", "2011-01-13 10:00", "1,250", "1", "UK"],
                      ["2", "B", "Other", "1", "2011-01-13 10:00", "3", "1", "UK"]])
    with pytest.raises(UnreadableFile) as caught:
        read_export("invoices", path, PROFILES)
    assert ("field 'UnitPrice' can be read two ways and nothing decides: '1,250' is 1.250 "
            "with a decimal comma or 1250 with a decimal point") in str(caught.value)
    raw = landed("invoices", path, {"decimal": "."})
    assert clean_invoices(raw).clean["unit_price"].tolist() == [1250.0, 3.0]


# -- customers -------------------------------------------------------------------------------


def test_telco_snapshot_with_decimal_commas_lands_the_original_values(
        shared_data, tmp_path) -> None:
    original = shared_data / "telco_customer_churn.csv"
    text = original.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    money = [header.index("MonthlyCharges"), header.index("TotalCharges")]
    eu = [[european_number(v) if i in money and v.strip() else v for i, v in enumerate(row)]
          for row in body]
    path = write_csv(tmp_path / "telco_eu.csv", header, eu, delimiter=";", newline="\r\n")
    profile = PROFILES["telco"]
    expected = clean_records(landed("customers", original), "customers", profile)[0].clean
    got = clean_records(landed("customers", path), "customers", profile)[0].clean
    lineage = ["_source_file", "_row_number", "_ingested_at"]
    pd.testing.assert_frame_equal(got.drop(columns=lineage), expected.drop(columns=lineage))
    assert got["total_charges"].max() == pytest.approx(8684.8)


# -- payments --------------------------------------------------------------------------------


def test_stripe_dashboard_csv_in_eur_with_decimal_commas(shared_data, tmp_path) -> None:
    header = next(csv.reader(io.StringIO(
        (shared_data / "stripe_unified_payments_export_header.csv").read_text("utf-8-sig"))))
    values = [
        {"id": "ch_1", "Amount": "150,00", "Amount Refunded": "0,00", "Captured": "true",
         "Status": "Paid", "Created date (UTC)": "13/01/2024 10:00"},
        {"id": "ch_2", "Amount": "1.234,50", "Amount Refunded": "234,50", "Captured": "true",
         "Status": "Paid", "Created date (UTC)": "02/01/2024 11:30"},
        {"id": "ch_3", "Amount": "350,00", "Amount Refunded": "0,00", "Captured": "false",
         "Status": "Paid", "Created date (UTC)": "03/01/2024 09:15"},
    ]
    rows = [[{"Currency": "eur", "Customer Email": f"c{i}@example.com", **v}.get(c, "")
             for c in header] for i, v in enumerate(values)]
    path = write_csv(tmp_path / "unified_payments.csv", header, rows, delimiter=";")
    clean = clean_payments(landed("payments", path)).clean.set_index("payment_id")
    assert [Decimal(a) for a in clean["amount"]] == [Decimal("150"), Decimal("1234.5"),
                                                     Decimal("350")]
    assert Decimal(clean.loc["ch_2", "amount_refunded"]) == Decimal("234.5")
    assert clean["status"].tolist() == ["succeeded", "partially_refunded", "pending"]
    assert clean["created_at"].tolist() == [pd.Timestamp("2024-01-13 10:00"),
                                            pd.Timestamp("2024-01-02 11:30"),
                                            pd.Timestamp("2024-01-03 09:15")]


@pytest.fixture(scope="module")
def fixture_objects(shared_data) -> dict:
    return json.loads((shared_data / "stripe_payment_objects_subset.json").read_text())


def event(obj: dict, kind: str) -> dict:
    return {"id": f"evt_{obj['id']}", "object": "event", "type": kind,
            "data": {"object": obj}}


SHAPES = {
    "mapping": lambda f: f,
    "wrapped": lambda f: {"resources": f},
    "deeply_wrapped": lambda f: {"fixtures": {"v1": {"resources": f}}},
    "list": lambda f: list(f.values()),
    "list_page": lambda f: {"object": "list", "has_more": False, "data": list(f.values())},
    "search_page": lambda f: {"object": "search_result", "has_more": False,
                              "data": list(f.values())},
    "events": lambda f: [event(o, f"{o['object']}.updated") for o in f.values()],
    "event_page": lambda f: {"object": "list", "data": [event(o, "x.updated")
                                                        for o in f.values()]},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_stripe_objects_in_every_shape_land_the_same_rows(shape, fixture_objects,
                                                          tmp_path) -> None:
    path = tmp_path / f"{shape}.json"
    path.write_text(json.dumps(SHAPES[shape](fixture_objects)))
    export = read_export("payments", path, PROFILES)
    assert export.stats["kept"] == {"charge": 1, "payment_intent": 1, "refund": 1,
                                    "dispute": 1}
    assert sum(export.stats["skipped"].values()) == len(fixture_objects) - 4
    frame = export.frame.set_index("object_type")
    charge = fixture_objects["charge"]
    assert frame.loc["charge", "payment_id"] == charge["id"]
    assert frame.loc["charge", "amount"] == str(charge["amount"])


def test_stripe_json_lines_of_events(fixture_objects, tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(event(o, "x")) for o in fixture_objects.values()))
    export = read_export("payments", path, PROFILES)
    assert export.stats["format"] == "jsonl"
    assert export.stats["kept"]["charge"] == 1


def test_a_json_without_stripe_objects_is_refused(tmp_path) -> None:
    path = tmp_path / "nothing.json"
    path.write_text(json.dumps({"meta": {"count": 0}, "rows": []}))
    with pytest.raises(UnreadableFile, match="no Stripe object in this JSON"):
        read_export("payments", path, PROFILES)


def test_refunds_disputes_and_uncaptured_charges_change_the_payment(tmp_path) -> None:
    charges = [
        {"id": "ch_ok", "object": "charge", "amount": 15000, "currency": "usd",
         "status": "succeeded", "captured": True, "created": 1700000000},
        {"id": "ch_auth", "object": "charge", "amount": 25000, "currency": "usd",
         "status": "succeeded", "captured": False, "created": 1700000000},
        {"id": "ch_released", "object": "charge", "amount": 25000, "currency": "usd",
         "status": "succeeded", "captured": False, "refunded": True,
         "amount_refunded": 25000, "created": 1700000000},
        {"id": "ch_ref", "object": "charge", "amount": 35000, "currency": "usd",
         "status": "succeeded", "captured": True, "amount_refunded": 0, "created": 1700000000},
        {"id": "ch_disp", "object": "charge", "amount": 50000, "currency": "usd",
         "status": "succeeded", "captured": True, "created": 1700000000},
        {"id": "ch_won", "object": "charge", "amount": 50000, "currency": "usd",
         "status": "succeeded", "captured": True, "created": 1700000000},
    ]
    adjustments = [
        event({"id": "re_1", "object": "refund", "amount": 10000, "currency": "usd",
               "status": "succeeded", "charge": "ch_ref", "created": 1700000500},
              "charge.refunded"),
        {"id": "re_failed", "object": "refund", "amount": 20000, "currency": "usd",
         "status": "failed", "charge": "ch_ref", "created": 1700000600},
        {"id": "dp_1", "object": "dispute", "amount": 50000, "currency": "usd",
         "status": "needs_response", "charge": "ch_disp", "created": 1700000700},
        {"id": "dp_2", "object": "dispute", "amount": 50000, "currency": "usd",
         "status": "won", "charge": "ch_won", "created": 1700000700},
        {"id": "re_orphan", "object": "refund", "amount": 100, "currency": "usd",
         "status": "succeeded", "charge": "ch_elsewhere", "created": 1700000800},
    ]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps({"object": "list", "data": charges + adjustments}))
    result = clean_payments(landed("payments", path))
    clean = result.clean.set_index("payment_id")
    assert clean["status"].to_dict() == {
        "ch_ok": "succeeded", "ch_auth": "pending", "ch_released": "canceled",
        "ch_ref": "partially_refunded", "ch_disp": "disputed", "ch_won": "succeeded"}
    assert Decimal(clean.loc["ch_ref", "amount_refunded"]) == Decimal("100")
    assert result.removed["adjustment_applied"] == 4
    assert result.removed["adjustment_without_charge"] == 1
    assert result.accounted == len(charges) + len(adjustments)


# -- rows that do not fit --------------------------------------------------------------------


def test_ragged_and_nul_rows_are_quarantined_and_the_rest_land(retail_rows, tmp_path) -> None:
    header, rows = retail_rows
    rows = [list(r) for r in rows[:2000]]
    rows[10] = rows[10] + ["extra"]
    rows[20] = rows[20][:5]
    rows[1500][2] = rows[1500][2][:3] + "\x00" + rows[1500][2][3:]
    path = write_csv(tmp_path / "damaged.csv", header, rows)
    raw = landed("invoices", path)
    result = clean_invoices(raw)
    q = result.quarantine.set_index("_row_number")
    assert q.loc[11, "rule"] == "ragged_row" and "line 12 has 9 field(s)" in q.loc[11, "value"]
    assert q.loc[21, "rule"] == "ragged_row" and "has 5 field(s)" in q.loc[21, "value"]
    assert (q.loc[1501, "rule"], q.loc[1501, "field"]) == ("nul_byte", "Description")
    assert json.loads(q.loc[1501, "record"])["fields"][2] == rows[1500][2]
    assert result.accounted == len(raw) == 2000
    assert len(result.clean) > 1900
