"""Leads and customers typed per profile: real CRM exports, Telco, and versioned records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from leadscore_assets.clean.records import clean_records, clean_sql
from leadscore_assets.ingest.readers import read_export
from leadscore_core.profiles import load_profiles

PROFILES = load_profiles()


def landed(path: Path, source: str) -> pd.DataFrame:
    raw = read_export(source, path, PROFILES).frame.copy()
    raw["_source_file"], raw["_ingested_at"] = path.name, pd.Timestamp("2026-01-01")
    return raw


@pytest.fixture(scope="module")
def xeducation(shared_data: Path):
    path = shared_data / "xeducation_leads.csv"
    result, resolved = clean_records(landed(path, "leads"), "leads", PROFILES["xeducation"])
    return pd.read_csv(path, dtype=str, keep_default_na=False), result, resolved


def test_xeducation_one_row_per_lead_and_label(xeducation):
    original, result, _ = xeducation
    clean = result.clean
    assert len(clean) == len(original) == 9_240
    assert clean["lead_id"].is_unique
    assert clean["converted"].sum() == (original["Converted"] == "1").sum()
    assert round(clean["converted"].mean(), 3) == 0.385
    assert result.accounted == result.rows_in


def test_xeducation_placeholder_gone_and_categories_normalised(xeducation):
    original, result, resolved = xeducation
    clean = result.clean
    categorical = [c for c, k in resolved.feature_columns.items() if k == "categorical"]
    for column in categorical:
        values = clean[column].dropna()
        assert not values.eq("select").any(), column
        assert values.eq(values.str.strip().str.lower()).all(), column
    was_select = original["Specialization"].str.strip().eq("Select").sum()
    was_blank = original["Specialization"].str.strip().eq("").sum()
    assert clean["specialization"].isna().sum() == was_select + was_blank
    # 'Google' and 'google' are one source
    assert "google" in set(clean["lead_source"].dropna())
    assert not clean["lead_source"].dropna().str.contains("Google").any()


def test_xeducation_types_follow_profile(xeducation):
    _, result, resolved = xeducation
    sql = clean_sql("leads", resolved)
    assert list(sql)[:5] == ["lead_id", "profile", "created_at", "email", "converted"]
    assert sql["total_visits"] == "DOUBLE" and sql["do_not_email"] == "BOOLEAN"
    assert sql["lead_origin"] == "VARCHAR"
    assert list(sql)[-3:] == ["_source_file", "_row_number", "_ingested_at"]
    assert list(result.clean.columns) == list(sql)
    assert "tags" not in sql and "lead_quality" not in sql  # leaking columns stay out


def test_codepro_one_row_per_lead(shared_data: Path):
    path = shared_data / "codepro_leadscoring.csv"
    result, _ = clean_records(landed(path, "leads"), "leads", PROFILES["codepro"])
    original = pd.read_csv(path, dtype=str, keep_default_na=False)
    clean = result.clean
    assert len(clean) == len(original) == 24_991
    assert clean["lead_id"].is_unique
    assert clean["converted"].sum() == original["app_complete_flag"].isin(["1", "1.0"]).sum()
    assert round(clean["converted"].mean(), 2) == 0.50
    assert clean["created_at"].notna().all()


def test_telco_customers(shared_data: Path):
    path = shared_data / "telco_customer_churn.csv"
    result, _ = clean_records(landed(path, "customers"), "customers", PROFILES["telco"])
    clean = result.clean
    assert len(clean) == 7_043 and clean["customer_id"].is_unique
    assert clean["churned"].sum() == 1_869
    assert result.repaired == {"repaired:total_charges": 11}
    assert (clean.loc[clean["tenure"] == 0, "total_charges"] == 0).all()
    assert clean["total_charges"].notna().all()
    assert clean["senior_citizen"].dtype == "boolean"


def lead_rows(rows: list[tuple], file: str, at: str, profile: str = "webform") -> pd.DataFrame:
    records = [{"submitted_at": s, "email": e, "business_type": b, "business_size": "1-10",
                "utm_source": "google", "name": "N", "message": "hi"} for e, s, b in rows]
    return pd.DataFrame({
        "profile": profile,
        "record_id": [r[0] for r in rows],
        "created_at": [r[1] for r in rows],
        "email": [r[0] for r in rows],
        "label": None,
        "record": [json.dumps(r) for r in records],
        "_source_file": file,
        "_row_number": range(1, len(rows) + 1),
        "_ingested_at": pd.Timestamp(at),
    })


def test_lead_exported_twice_keeps_latest_version():
    day1 = lead_rows([("Ann@X.com", "2026-01-01 10:00", "Cafe"),
                      ("bob@y.com", "2026-01-01 11:00", "Gym")], "day1.csv", "2026-01-01")
    day2 = lead_rows([("ann@x.com ", "2026-01-03 09:00", "Bakery"),
                      ("", "2026-01-03 09:30", "Shop")], "day2.csv", "2026-01-03")
    other = lead_rows([("zed@z.com", "2026-01-02 10:00", "Bar")], "crm.csv", "2026-01-02",
                      profile="xeducation")
    result, _ = clean_records(pd.concat([day2, other, day1], ignore_index=True), "leads",
                              PROFILES["webform"])
    clean = result.clean.set_index("lead_id")
    assert sorted(clean.index) == ["ann@x.com", "bob@y.com"]
    assert clean.loc["ann@x.com", "business_type"] == "bakery"
    assert clean.loc["ann@x.com", "_source_file"] == "day2.csv"
    assert result.removed == {"other_profile": 1, "superseded_version": 1}
    q = result.quarantine
    assert q[["rule", "_source_file", "_row_number"]].values.tolist() == [
        ["missing_id", "day2.csv", 2]]
    assert result.accounted == result.rows_in == 5
