"""``read_export`` on small hand-made files: formats, encodings and clear errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from leadscore_assets.ingest.readers import (
    STRIPE_CSV_COLUMNS,
    UnreadableFile,
    raw_columns,
    read_export,
)
from leadscore_core.profiles import load_profiles

PROFILES = load_profiles()
WEBFORM_HEADER = ("submitted_at,email,name,company,business_type,business_size,utm_source,"
                  "utm_medium,utm_campaign,message")
INVOICE_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def charge(**overrides: object) -> dict:
    obj = {"id": "ch_1", "object": "charge", "amount": 15000, "amount_refunded": 0,
           "currency": "usd", "status": "succeeded", "refunded": False, "disputed": False,
           "failure_code": None, "customer": "cus_1", "receipt_email": "r@example.com",
           "billing_details": {"email": None}, "payment_intent": "pi_1", "created": 1700000000,
           "description": "MVP plan"}
    obj.update(overrides)
    return obj


def payment_intent(**overrides: object) -> dict:
    obj = {"id": "pi_1", "object": "payment_intent", "amount": 39900, "currency": "usd",
           "status": "requires_payment_method", "customer": "cus_2",
           "receipt_email": "p@example.com", "created": 1700000100,
           "last_payment_error": {"code": "card_declined"}, "description": None}
    obj.update(overrides)
    return obj


# -- leads and customers ---------------------------------------------------------------------


def test_webform_with_bom_and_crlf_keeps_text_and_whole_row(tmp_path: Path) -> None:
    text = (WEBFORM_HEADER + "\r\n"
            "2024-03-01 09:00:00,Ann@Example.com,Ann,\"Acme, Inc\",Dental,1-10,google,cpc,spring,"
            "\"hi,\r\nthere\"\r\n"
            "2024-03-02 10:00:00,bob@example.com,Bob,,Legal,NA,,,, \r\n")
    path = write(tmp_path, "form.csv", b"\xef\xbb\xbf" + text.encode())
    export = read_export("leads", path, PROFILES)

    assert list(export.frame.columns) == raw_columns("leads")
    assert export.stats["profile"] == "webform" and export.rows == 2
    first, second = export.frame.to_dict("records")
    assert first["email"] == "Ann@Example.com"  # as in the file: lowercasing is cleaning's job
    assert first["created_at"] == "2024-03-01 09:00:00" and first["label"] is None
    record = json.loads(first["record"])
    assert record["submitted_at"] == "2024-03-01 09:00:00"  # BOM not glued to the first name
    assert record["company"] == "Acme, Inc" and record["message"] == "hi,\r\nthere"
    second_record = json.loads(second["record"])
    assert second_record["company"] is None  # no value in the file
    assert second_record["business_size"] == "NA"  # a value, kept as text
    assert second_record["message"] == " "
    assert list(export.frame["_row_number"]) == [1, 2]


def test_codepro_unnamed_index_column_keeps_its_empty_name(tmp_path: Path) -> None:
    path = write(tmp_path, "cp.csv",
                 ",created_date,city_mapped,first_platform_c,first_utm_medium_c,"
                 "first_utm_source_c,total_leads_droppped,referred_lead,app_complete_flag,"
                 "chat_clicked\n"
                 "17,2021-08-26 15:26:12,Level1,Level4,Level0,Level2,1,0,1,\n")
    export = read_export("leads", path, PROFILES)
    row = export.frame.iloc[0]
    assert export.stats["profile"] == "codepro"
    assert row["record_id"] == "17" and row["label"] == "1"
    record = json.loads(row["record"])
    assert record[""] == "17" and "Unnamed: 0" not in record and record["chat_clicked"] is None


def test_gzip_is_recognised_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", gzip.compress(
        (WEBFORM_HEADER + "\n2024-01-01,a@b.c,A,B,Dental,1-10,x,y,z,m\n").encode()))
    export = read_export("leads", path, PROFILES)
    assert export.rows == 1 and export.stats["compressed"] is True


def test_invoice_compression_is_read_from_the_bytes(tmp_path: Path) -> None:
    line = "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    plain = write(tmp_path, "named_like.csv.gz", INVOICE_HEADER + "\n" + line)
    packed = write(tmp_path, "named_like.csv", gzip.compress((INVOICE_HEADER + "\n" + line
                                                              ).encode()))
    for path, compressed in ((plain, False), (packed, True)):
        export = read_export("invoices", path, {})
        assert export.frame["description"].tolist() == ["HEART"]
        assert export.stats["compressed"] is compressed


def telco_header() -> list[str]:
    telco = PROFILES["telco"]
    features = [c for k in ("categorical", "numeric", "boolean")
                for c in getattr(telco.features, k)]
    return list(dict.fromkeys(telco.identity_columns + features))


def test_customers_use_their_own_profiles(tmp_path: Path) -> None:
    header = telco_header()
    values = {"customerID": "7590-VHVEG", "tenure": "0", "MonthlyCharges": "29.85",
              "TotalCharges": " ", "Churn": "No"}
    path = write(tmp_path, "telco.csv", ",".join(header) + "\r\n"
                 + ",".join(values.get(c, "x") for c in header) + "\r\n")
    export = read_export("customers", path, PROFILES)
    row = export.frame.iloc[0]
    assert (row["profile"], row["record_id"], row["label"]) == ("telco", "7590-VHVEG", "No")
    assert json.loads(row["record"])["TotalCharges"] == " "


def test_a_profile_column_missing_from_the_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "telco.csv",
                 "customerID,tenure,Contract,MonthlyCharges,TotalCharges,Churn\r\n"
                 "7590-VHVEG,0,Month-to-month,29.85, ,No\r\n")
    with pytest.raises(UnreadableFile) as caught:
        read_export("customers", path, PROFILES)
    message = str(caught.value)
    assert message.startswith("telco.csv: profile 'telco' declares column(s) [")
    assert "'PaymentMethod'" in message and "'MonthlyCharges'" not in message


# -- damaged files ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "source", "expected"), [
    ("empty.csv", b"", "leads", "empty file"),
    ("blank.csv", b"\n\n  \n", "invoices", "empty file"),
    ("photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "leads", "binary file"),
    ("noise.csv", bytes(range(256)) * 4, "invoices", "binary file"),
    ("book.csv", b"PK\x03\x04" + b"\x00" * 100, "customers", "ZIP archive"),
    ("cut.json", b'[{"object": "charge", "id": "ch_1", "amount": 10', "payments",
     "truncated JSON at line 1 column"),
    ("other.csv", b"a,b,c\n1,2,3\n", "leads", "unknown header for leads"),
    ("few.csv", b"InvoiceNo,StockCode,Quantity\n1,2,3\n", "invoices",
     "missing required column(s) ['Description', 'InvoiceDate', 'UnitPrice', 'CustomerID', "
     "'Country']"),
    ("broken.gz", gzip.compress(b"InvoiceNo,StockCode\n" * 50, mtime=0)[:40], "invoices",
     "truncated gzip"),
])
def test_unreadable_files_name_the_file_and_the_cause(
        tmp_path: Path, name: str, content: bytes, source: str, expected: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(UnreadableFile) as caught:
        read_export(source, path, PROFILES)
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert expected in message


def test_rows_with_the_wrong_number_of_fields_are_set_aside_and_the_rest_land(
        tmp_path: Path) -> None:
    lines = [INVOICE_HEADER] + [f"5363{i},A,Thing,1,2010-12-01 08:26:00,2.5,17850.0,UK"
                                for i in range(10)]
    lines[8] += ",extra"
    lines[3] = "536399,A,Thing,1"
    path = write(tmp_path, "ragged.csv", "\n".join(lines) + "\n")
    export = read_export("invoices", path, PROFILES)
    frame = export.frame
    assert export.rows == 10 and frame["_row_number"].tolist() == list(range(1, 11))
    bad = frame[frame["_malformed"].notna()]
    assert bad["_row_number"].tolist() == [3, 8]
    reasons = [json.loads(m) for m in bad["_malformed"]]
    assert [(r["line"], r["rule"]) for r in reasons] == [(4, "ragged_row"), (9, "ragged_row")]
    assert "has 4 field(s), the header has 8" in reasons[0]["reason"]
    assert reasons[1]["fields"][-1] == "extra"
    good = frame[frame["_malformed"].isna()]
    assert good["invoice_no"].tolist() == [f"5363{i}" for i in (0, 1, 3, 4, 5, 6, 8, 9)]
    assert bad["invoice_no"].isna().all()


def test_a_nul_byte_late_in_a_file_sets_aside_only_its_row(tmp_path: Path) -> None:
    rows = [f"5363{i:03d},A,Thing,1,2010-12-01 08:26:00,2.5,17850.0,UK" for i in range(3000)]
    rows[2500] = "536999,A,Th\x00ing,1,2010-12-01 08:26:00,2.5,17850.0,UK"
    path = write(tmp_path, "nul.csv", INVOICE_HEADER + "\n" + "\n".join(rows) + "\n")
    assert path.stat().st_size > 64 * 1024
    frame = read_export("invoices", path, PROFILES).frame
    bad = frame[frame["_malformed"].notna()]
    assert bad["_row_number"].tolist() == [2501]
    reason = json.loads(bad["_malformed"].iloc[0])
    assert (reason["rule"], reason["field"], reason["line"]) == ("nul_byte", "Description", 2502)
    assert reason["fields"][2] == "Th\x00ing"
    assert frame["_malformed"].isna().sum() == 2999


def test_an_unknown_header_lists_the_known_profiles(tmp_path: Path) -> None:
    path = write(tmp_path, "crm.csv", "Lead,When\nx,y\n")
    with pytest.raises(UnreadableFile, match="known profiles: codepro, webform, xeducation"):
        read_export("leads", path, PROFILES)


# -- invoices --------------------------------------------------------------------------------


def test_windows_1252_invoices_are_decoded_and_the_encoding_recorded(tmp_path: Path) -> None:
    body = (INVOICE_HEADER + "\r\n"
            "539492,gift_0001_40,Dotcomgiftshop Gift Voucher £40.00,1,12/20/2010 10:14,34.04,,"
            "United Kingdom\r\n"
            "536365,85123A,CAFÉ “DÉCOR” SET,6,12/1/2010 8:26,2.55,17850,Réunion\r\n")
    path = write(tmp_path, "kaggle.csv", body.encode("cp1252"))
    export = read_export("invoices", path, PROFILES)
    frame = export.frame
    assert list(frame.columns) == raw_columns("invoices")
    assert set(frame["_encoding"]) == {"cp1252"}
    assert list(frame["description"]) == ["Dotcomgiftshop Gift Voucher £40.00",
                                          "CAFÉ “DÉCOR” SET"]
    assert list(frame["country"]) == ["United Kingdom", "Réunion"]
    assert list(frame["invoice_date"]) == ["12/20/2010 10:14", "12/1/2010 8:26"]
    assert frame["customer_id"].isna().tolist() == [True, False]
    assert frame["customer_id"].iloc[1] == "17850"


def test_utf8_invoices_keep_every_value_as_text(tmp_path: Path) -> None:
    path = write(tmp_path, "retail.csv", INVOICE_HEADER + "\n"
                 "C536379,D,Discount,-1,2010-12-01 09:41:00,27.50,14527.0,United Kingdom\n"
                 "536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom\n")
    frame = read_export("invoices", path, PROFILES).frame
    assert frame["quantity"].tolist() == ["-1", "56"]
    assert frame["unit_price"].tolist() == ["27.50", "0.0"]
    assert frame["customer_id"].iloc[0] == "14527.0"
    assert frame["description"].isna().tolist() == [False, True]
    assert set(frame["_encoding"]) == {"utf-8"}
    assert all(pd.api.types.is_object_dtype(dtype)
               for c, dtype in frame.dtypes.items() if c != "_row_number")


# -- payments --------------------------------------------------------------------------------


def test_stripe_list_page_keeps_charges_and_payment_intents_and_counts_the_rest(
        tmp_path: Path) -> None:
    page = {"object": "list", "has_more": False, "url": "/v1/charges", "data": [
        charge(), payment_intent(),
        {"id": "cus_1", "object": "customer"}, {"id": "re_1", "object": "refund"},
        {"id": "re_2", "object": "refund"},
    ]}
    export = read_export("payments", write(tmp_path, "page.json", json.dumps(page)), PROFILES)
    assert export.stats["skipped"] == {"customer": 1}
    assert export.stats["kept"] == {"charge": 1, "payment_intent": 1, "refund": 2}
    rows = export.frame.drop_duplicates("object_type").set_index("object_type")
    ch, pi = rows.loc["charge"], rows.loc["payment_intent"]
    assert (ch["amount"], ch["amount_unit"], ch["refunded"], ch["disputed"]) == (
        "15000", "minor", "false", "false")
    assert (ch["customer_email"], ch["payment_intent"], ch["created"]) == (
        "r@example.com", "pi_1", "1700000000")
    assert (pi["customer_email"], pi["failure_code"], pi["amount_refunded"]) == (
        "p@example.com", "card_declined", None)
    assert set(export.frame["raw_format"]) == {"json_list_page"}
    assert json.loads(ch["raw_object"]) == charge()


def test_stripe_events_are_unwrapped_when_they_carry_a_payment(tmp_path: Path) -> None:
    events = [
        {"id": "evt_1", "object": "event", "type": "charge.succeeded",
         "data": {"object": charge(id="ch_9", billing_details={"email": "bill@example.com"})}},
        {"id": "evt_2", "object": "event", "type": "plan.created",
         "data": {"object": {"id": "plan_1", "object": "plan"}}},
    ]
    export = read_export("payments", write(tmp_path, "events.json", json.dumps(events)),
                         PROFILES)
    [row] = export.frame.to_dict("records")
    assert (row["payment_id"], row["event_id"], row["customer_email"]) == (
        "ch_9", "evt_1", "bill@example.com")
    assert json.loads(row["raw_object"])["type"] == "charge.succeeded"  # the whole event
    assert export.stats["skipped"] == {"event:plan": 1}
    assert row["raw_format"] == "json_array"


def test_stripe_json_lines_with_an_expanded_customer(tmp_path: Path) -> None:
    lines = [json.dumps(payment_intent(receipt_email=None,
                                       customer={"id": "cus_7", "object": "customer",
                                                 "email": "exp@example.com"})),
             "", json.dumps(charge(id="ch_2", refunded=True, amount_refunded=15000))]
    export = read_export("payments", write(tmp_path, "p.jsonl", "\n".join(lines)), PROFILES)
    frame = export.frame
    assert frame["customer_id"].tolist() == ["cus_7", "cus_1"]
    assert frame["customer_email"].tolist() == ["exp@example.com", "r@example.com"]
    assert frame["refunded"].tolist() == [None, "true"]
    assert frame["_row_number"].tolist() == [1, 2]
    assert set(frame["raw_format"]) == {"jsonl"}


def test_json_lines_with_a_broken_line_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", json.dumps(charge()) + "\n" + json.dumps(charge()) +
                 "\n{\"object\": \"charge\", \"id\"\n")
    with pytest.raises(UnreadableFile, match=r"p\.jsonl: JSON Lines: line 3 "):
        read_export("payments", path, PROFILES)


def test_stripe_dashboard_csv_export(tmp_path: Path, shared_data: Path) -> None:
    header = (shared_data / "stripe_unified_payments_export_header.csv").read_text().strip()
    columns = header.split(",")
    values = {"id": "ch_3Abc", "Created date (UTC)": "2024-05-01 10:11:12", "Amount": "150.00",
              "Amount Refunded": "0.00", "Currency": "usd", "Status": "Paid",
              "Customer Email": "c@example.com", "Customer ID": "cus_9",
              "Disputed Amount": "0.00", "PaymentIntent ID": "pi_3Abc",
              "Description": "Business plan, monthly"}
    row = ",".join(f'"{values[c]}"' if "," in values.get(c, "") else values.get(c, "")
                   for c in columns)
    export = read_export("payments", write(tmp_path, "unified_payments.csv",
                                           header + "\n" + row + "\n"), PROFILES)
    [out] = export.frame.to_dict("records")
    for column, raw in STRIPE_CSV_COLUMNS.items():
        assert out[raw] == values.get(column), column
    assert (out["object_type"], out["amount_unit"], out["raw_format"]) == (
        "charge", "major", "csv")
    raw_object = json.loads(out["raw_object"])
    assert list(raw_object) == columns and raw_object["Card Brand"] is None
