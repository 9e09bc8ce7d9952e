"""Invoice cleaning rules: pure functions on raw-shaped frames and the real Online Retail file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from leadscore_assets.clean.invoices import clean_invoices, normalise_customer_id
from leadscore_assets.ingest.readers import read_export
from leadscore_core.profiles import load_profiles

FIELDS = ["invoice_no", "stock_code", "description", "quantity", "invoice_date", "unit_price",
          "customer_id", "country"]


def raw_frame(rows: list[tuple], file: str = "a.csv", at: str = "2026-01-01") -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=FIELDS, dtype=object)
    df["_source_file"] = file
    df["_row_number"] = range(1, len(df) + 1)
    df["_ingested_at"] = pd.Timestamp(at)
    return df


LINE = ("536365", "85123A", "HEART", "6", "2010-12-01 08:26:00", "2.55", "17850.0", "UK")


@pytest.fixture(scope="module")
def retail(shared_data: Path) -> tuple[pd.DataFrame, object]:
    export = read_export("invoices", shared_data / "online_retail_uci.csv.gz", load_profiles())
    raw = export.frame.copy()
    raw["_source_file"] = "online_retail_uci.csv.gz"
    raw["_ingested_at"] = pd.Timestamp("2026-01-01")
    return raw, clean_invoices(raw)


def test_real_counts_before_cleaning(retail):
    raw, _ = retail
    text = raw[FIELDS].fillna("")
    assert len(raw) == 541_909
    assert (text["customer_id"].str.strip() == "").sum() == 135_080
    assert (text["description"].str.strip() == "").sum() == 1_454
    assert (pd.to_numeric(text["quantity"]) < 0).sum() == 10_624
    assert text["invoice_no"].str.startswith("C").sum() == 9_288
    assert text.duplicated(keep="first").sum() == 5_268


def test_real_counts_after_cleaning_per_rule(retail):
    _, result = retail
    # Rules apply in order to what earlier rules left: duplicates first, then blank
    # descriptions; the two negative-price A lines are each a whole refund invoice,
    # the third A line (positive price) is bad debt.
    assert result.rule_counts == {
        "ragged_row": 0, "nul_byte": 0, "unreadable_row": 0, "exact_duplicate": 5_268,
        "missing_invoice_no": 0, "invalid_quantity": 0,
        "invalid_unit_price": 0, "invalid_invoice_date": 0, "blank_description": 1_454,
        "refund_invoice": 2, "bad_debt_adjustment": 1, "non_positive_unit_price": 1_056,
    }
    assert list(result.rule_counts) == list(result.applied)  # in the order rules apply
    assert len(result.clean) == 541_909 - 5_268 - 1_454 - 2 - 1 - 1_056
    assert result.rows_in == len(result.clean) + len(result.quarantine) + sum(
        result.removed.values())


def test_real_returns_kept_and_netted(retail):
    _, result = retail
    clean = result.clean
    returns = clean[clean["is_return"]]
    # 9,288 cancellation lines, 37 of them exact duplicates of another line
    assert len(returns) == 9_288 - 37
    assert (returns["line_total"] < 0).all()
    assert not clean["customer_id"].str.endswith(".0").any()
    assert (clean["unit_price"] > 0).all()
    assert not clean["invoice_no"].str.startswith("A").any()


def test_customer_id_normalised():
    values = pd.Series(["17850.0", "17850", " 17850 ", "", None, "12345.00"])
    assert normalise_customer_id(values).tolist() == [
        "17850", "17850", "17850", pd.NA, pd.NA, "12345"]


def test_both_date_layouts_parse():
    raw = raw_frame([LINE, ("536366", "71053", "LANTERN", "6", "12/1/2010 8:26", "3.39",
                            "17850", "UK")])
    clean = clean_invoices(raw).clean
    assert clean["invoice_date"].tolist() == [pd.Timestamp("2010-12-01 08:26")] * 2
    assert clean["customer_id"].tolist() == ["17850", "17850"]


def test_blank_customer_filled_only_from_single_customer_invoice():
    raw = raw_frame([
        ("1", "A", "X", "1", "2010-12-01 08:26:00", "1.0", "111.0", "UK"),
        ("1", "B", "Y", "1", "2010-12-01 08:26:00", "1.0", "", "UK"),
        ("2", "A", "X", "1", "2010-12-01 08:26:00", "1.0", "222", "UK"),
        ("2", "B", "Y", "1", "2010-12-01 08:26:00", "1.0", "333", "UK"),
        ("2", "C", "Z", "1", "2010-12-01 08:26:00", "1.0", "", "UK"),
    ])
    result = clean_invoices(raw)
    assert result.clean["customer_id"].tolist() == ["111", "111", "222", "333", pd.NA]
    assert result.repaired == {"customer_id_filled_from_invoice": 1}


def test_refund_invoice_and_mixed_prices():
    raw = raw_frame([
        ("9", "R1", "REFUND", "1", "2010-12-01 08:26:00", "-5.0", "1", "UK"),
        ("9", "R2", "REFUND", "1", "2010-12-01 08:26:00", "-1.0", "1", "UK"),
        ("8", "S1", "SALE", "1", "2010-12-01 08:26:00", "-5.0", "1", "UK"),
        ("8", "S2", "SALE", "1", "2010-12-01 08:26:00", "4.0", "1", "UK"),
        ("A7", "B", "Adjust bad debt", "1", "2010-12-01 08:26:00", "10.0", "", "UK"),
        ("C6", "S2", "SALE", "-2", "2010-12-01 08:26:00", "4.0", "1", "UK"),
    ])
    result = clean_invoices(raw)
    assert result.quarantined == {"refund_invoice": 2, "non_positive_unit_price": 1,
                                  "bad_debt_adjustment": 1}
    assert result.clean["stock_code"].tolist() == ["S2", "S2"]
    assert result.clean["line_total"].tolist() == [4.0, -8.0]
    assert result.clean["is_return"].tolist() == [False, True]


def test_duplicates_across_files_removed_once():
    first = raw_frame([LINE], file="jan.csv", at="2026-01-01")
    second = raw_frame([LINE, LINE], file="jan_again.csv", at="2026-01-02")
    result = clean_invoices(pd.concat([second, first], ignore_index=True))
    assert len(result.clean) == 1
    assert result.clean["_source_file"].iloc[0] == "jan.csv"  # the first landed copy stays
    assert result.removed == {"exact_duplicate": 2}


def test_unreadable_values_quarantined_with_field_value_and_row():
    raw = raw_frame([
        LINE,
        ("536365", "X", "BAD QTY", "1.5", "2010-12-01 08:26:00", "2.55", "17850.0", "UK"),
        ("536365", "Y", "BAD PRICE", "2", "2010-12-01 08:26:00", "abc", "17850.0", "UK"),
        ("536365", "Z", "BAD DATE", "2", "31/31/2010", "2.55", "17850.0", "UK"),
        ("", "W", "NO INVOICE", "2", "2010-12-01 08:26:00", "2.55", "17850.0", "UK"),
    ])
    result = clean_invoices(raw)
    q = result.quarantine.set_index("rule")
    assert len(result.clean) == 1
    assert q.loc["invalid_quantity", "value"] == "1.5"
    assert q.loc["invalid_quantity", "_row_number"] == 2
    assert q.loc["invalid_unit_price", "field"] == "unit_price"
    assert q.loc["invalid_invoice_date", "value"] == "31/31/2010"
    assert q.loc["missing_invoice_no", "_row_number"] == 5
    record = json.loads(q.loc["invalid_unit_price", "record"])
    assert record["unit_price"] == "abc" and record["stock_code"] == "Y"
