"""Payment cleaning: currency exponents, statuses, one row per attempt, plans, quarantine."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from leadscore_assets.clean.payments import clean_payments, currency_exponent, to_major
from leadscore_assets.ingest.readers import read_export
from leadscore_core.plans import PlanCatalogue
from leadscore_core.profiles import load_profiles

RAW = ["object_type", "payment_id", "created", "amount", "amount_refunded", "amount_unit",
       "currency", "status", "refunded", "disputed", "failure_code", "customer_id",
       "customer_email", "payment_intent", "description", "event_id"]


def charge(pid: str, amount: str = "15000", currency: str = "usd", status: str = "succeeded",
           **extra) -> dict:
    row = dict.fromkeys(RAW)
    row.update(object_type="charge", payment_id=pid, created="1700000000", amount=amount,
               amount_refunded="0", amount_unit="minor", currency=currency, status=status,
               refunded="false", disputed="false")
    row.update(extra)
    return row


def frame(rows: list[dict], file: str = "stripe.json") -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=RAW, dtype=object)
    df["raw_format"] = "json_array"
    df["raw_object"] = [json.dumps({"id": r["payment_id"]}) for r in rows]
    df["_source_file"] = file
    df["_row_number"] = range(1, len(df) + 1)
    df["_ingested_at"] = pd.Timestamp("2026-01-01")
    return df


def by_id(rows: list[dict]) -> pd.DataFrame:
    return clean_payments(frame(rows)).clean.set_index("payment_id")


@pytest.mark.parametrize(("code", "exponent"), [
    ("USD", 2), ("usd", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3),
    ("XYZ", None), ("", None),
])
def test_currency_exponents(code, exponent):
    assert currency_exponent(code) == exponent


def test_amounts_in_major_units_by_currency():
    clean = by_id([charge("usd", "1099", "usd"), charge("jpy", "500", "jpy"),
                   charge("kwd", "1234", "kwd"),
                   charge("csv", "150.00", "USD", status="Paid", amount_unit="major")])
    assert clean.loc["usd", "amount"] == "10.9900"
    assert clean.loc["jpy", "amount"] == "500.0000"
    assert clean.loc["kwd", "amount"] == "1.2340"
    assert clean.loc["csv", "amount"] == "150.0000"
    assert clean.loc["csv", "status"] == "succeeded"
    assert to_major("10.5", "minor", 2) is None  # minor units are whole numbers


def test_bad_rows_quarantined_good_rows_kept():
    rows = [charge("ok"), charge("neg", "-500"), charge("odd", "500", "zzz"),
            charge(None), charge("text", "ten")]
    result = clean_payments(frame(rows))
    assert result.clean["payment_id"].tolist() == ["ok"]
    q = result.quarantine.set_index("rule")
    assert q.loc["negative_amount", "value"] == "-500"
    assert q.loc["unknown_currency", "value"] == "zzz"
    assert q.loc["unknown_currency", "_row_number"] == 3
    assert q.loc["missing_payment_id", "_row_number"] == 4
    assert q.loc["invalid_amount", "field"] == "amount"
    assert json.loads(q.loc["negative_amount", "record"]) == {"id": "neg"}


def test_intent_and_its_charge_count_once():
    intent = charge("pi_1", object_type="payment_intent", amount_refunded=None,
                    refunded=None, disputed=None)
    abandoned = charge("pi_2", object_type="payment_intent", status="requires_payment_method",
                       amount_refunded=None, refunded=None, disputed=None)
    result = clean_payments(frame([charge("ch_1", payment_intent="pi_1"), intent, abandoned]))
    assert sorted(result.clean["payment_id"]) == ["ch_1", "pi_2"]
    assert result.removed["intent_has_charge"] == 1
    assert result.clean.set_index("payment_id").loc["pi_2", "status"] == "pending"


def test_statuses():
    clean = by_id([
        charge("full", amount_refunded="15000", refunded="true"),
        charge("part", amount_refunded="5000"),
        charge("disp", disputed="true"),
        charge("fail", status="failed", failure_code="card_declined"),
        charge("cancel", object_type="payment_intent", status="canceled"),
    ])
    assert clean["status"].to_dict() == {
        "full": "refunded", "part": "partially_refunded", "disp": "disputed",
        "fail": "failed", "cancel": "canceled"}
    assert clean.loc["part", "amount_refunded"] == "50.0000"
    assert clean.loc["fail", "failure_code"] == "card_declined"


def test_refund_above_amount_and_unknown_status_quarantined():
    result = clean_payments(frame([charge("over", amount_refunded="20000"),
                                   charge("weird", status="exploded")]))
    assert result.quarantined == {"invalid_amount_refunded": 1, "unknown_status": 1}


def test_latest_export_of_an_object_wins():
    first = frame([charge("ch_1")], file="day1.json")
    second = frame([charge("ch_1", amount_refunded="15000", refunded="true")], file="day2.json")
    second["_ingested_at"] = pd.Timestamp("2026-01-02")
    result = clean_payments(pd.concat([second, first], ignore_index=True))
    assert result.clean["status"].tolist() == ["refunded"]
    assert result.removed["superseded_version"] == 1


def test_plans_and_setup_fee():
    clean = by_id([charge("business", "15000"), charge("first_month", "54900"),
                   charge("now", "50000"), charge("setup_only", "39900"),
                   charge("other", "15100")])
    assert clean["plan"].fillna("-").to_dict() == {
        "business": "Business", "first_month": "Business", "now": "Now", "setup_only": "-",
        "other": "-"}
    assert clean["setup_fee"].to_dict() == {"business": False, "first_month": True,
                                            "now": False, "setup_only": True, "other": False}


def test_catalogue_from_file(tmp_path: Path):
    path = tmp_path / "plans.yaml"
    path.write_text("currency: eur\nsetup_fee: 0\nplans:\n  - {name: Solo, monthly_price: 9.5}\n")
    catalogue = PlanCatalogue.load(path)
    assert catalogue.match("9.50", "EUR") == ("Solo", False)
    assert catalogue.match("9.50", "USD") == (None, False)
    assert [p["plan"] for p in catalogue.price_list()] == ["Solo"]
    assert PlanCatalogue.load().match(Decimal("549"), "usd") == ("Business", True)
    path.write_text("plans:\n  - {name: A, monthly_price: 5}\n  - {name: B, monthly_price: 5}\n")
    with pytest.raises(ValueError, match="plans.yaml"):
        PlanCatalogue.load(path)


def test_real_stripe_fixture(shared_data: Path):
    export = read_export("payments", shared_data / "stripe_payment_objects_subset.json",
                         load_profiles())
    raw = export.frame.copy()
    raw["_source_file"], raw["_ingested_at"] = "fixture.json", pd.Timestamp("2026-01-01")
    clean = clean_payments(raw).clean.set_index("payment_id")
    fixture = json.loads((shared_data / "stripe_payment_objects_subset.json").read_text())
    ch, pi = fixture["charge"], fixture["payment_intent"]
    assert clean.loc[ch["id"], "amount"] == f"{Decimal(ch['amount']) / 100:.4f}"
    assert clean.loc[ch["id"], "currency"] == ch["currency"].upper()
    assert clean.loc[ch["id"], "created_at"] == pd.Timestamp(ch["created"], unit="s")
    assert clean.loc[pi["id"], "status"] == "pending"  # requires_payment_method


@pytest.mark.parametrize("source", ["payments", "invoices", "leads", "customers"])
def test_empty_raw_table_cleans_to_an_empty_table_with_every_rule_counted(source):
    import duckdb

    from leadscore_assets.clean.invoices import clean_invoices
    from leadscore_assets.clean.records import clean_records
    from leadscore_assets.schemas import read_table
    from leadscore_core.warehouse import ensure_raw_table

    with duckdb.connect() as conn:
        raw = read_table(conn, ensure_raw_table(conn, source))
    if source == "payments":
        result = clean_payments(raw)
    elif source == "invoices":
        result = clean_invoices(raw)
    else:
        result, _ = clean_records(raw, source, load_profiles()["webform" if source == "leads"
                                                               else "telco"])
    assert result.clean.empty and result.quarantine.empty
    assert result.rule_counts and set(result.rule_counts.values()) == {0}
    assert "missing_id" in result.rule_counts or source in ("payments", "invoices")
