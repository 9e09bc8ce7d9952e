"""Reasons for people: labels, values, missing values and points (``leadscore_core.reasons``),
and what the API answers with them (unknown fields reported, a body of none refused)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from leadscore_core.money import DECLARED, LANDED, Currency
from leadscore_core.reasons import (
    MISSING_MIN_POINTS,
    FieldDisplay,
    ReasonTexts,
    displays_for,
    field_display,
    format_number,
    format_value,
    human_reason,
    points_given,
    points_of_many,
    points_text,
    reason_points,
    sigmoid_link,
)

LINK = sigmoid_link()


@pytest.mark.parametrize(("value", "unit", "text"), [
    (6.116666666666666, "time_of_day", "06:07"),
    (23.999, "time_of_day", "00:00"),
    (70.35, "USD", "$70.35"),
    (1234.5, "GBP", "£1,234.50"),
    (151.48425925925926, "days", "151 days"),
    (3.14159, None, "3.1"),
    (0.012345, None, "0.012"),
    (12.0, "months", "12 months"),
    (1.0, "days", "1 day"),  # singular after 1
    (1.0, "months", "1 month"),
    (0.6667, "share", "67%"),
    (0.053, "share", "5.3%"),
    (0.0, "share", "0%"),
    ("friday", "weekday", "Friday"),
    (True, None, "yes"),
    ("Dental", None, "Dental"),
])
def test_values_are_written_for_people(value, unit, text):
    assert format_value(value, unit) == text


def test_numbers_round_sensibly():
    assert [format_number(x) for x in (0.0, 1.0, 2.5, 99.94, 100.4, 12345.6, -0.5)] == [
        "0", "1", "2.5", "99.9", "100", "12,346", "-0.5"]


def test_points_are_what_the_contribution_adds_to_the_score():
    # raw 0 -> 50 points; without a contribution of 1.0 the raw score would be -1.0
    assert reason_points(1.0, 0.0, LINK) == pytest.approx(50 - 100 / (1 + math.e))
    assert points_text(12.4) == "+12 points"
    assert points_text(-1.2) == "-1 point"
    assert points_text(0.36) == "+0.4 points"
    assert points_text(0.96) == "+1 point"
    # a small effect is still not "0 points": two decimals, then an upper bound
    assert points_text(0.04) == "+0.04 points"
    assert points_text(-0.012) == "-0.01 points"
    assert points_text(0.004) == "+<0.01 points"
    assert points_text(-0.0001) == "-<0.01 points"


@pytest.mark.parametrize(("a", "b"), [(1.0, 0.0), (0.83, -0.31)])
def test_points_of_many_reasons_are_the_single_reasons_floats(a, b):
    link = sigmoid_link(a, b)
    rng = np.random.default_rng(7)
    raws = rng.normal(0, 3, 400)
    contributions = rng.normal(0, 1.5, (400, 6))
    # (raw, contribution) whose points are a half of a hundredth away from numpy's rounding
    # (-44.865 rounds to -44.87, numpy's rint(100 x) / 100 to -44.86), and contributions
    # placed on MISSING_MIN_POINTS, where a last bit of numpy's exp decides the side
    halves = [(-4.039972258294502, -3.903535516300909), (-1.3360926922179002, 3.8426791583970874),
              (3.091641702425624, 0.969918975308286), (-1.010457471228036, 1.035708793427469)]
    for row, (raw, c) in enumerate(halves):
        raws[row], contributions[row, 0] = (raw - b) / a, c / a
    for row, target in enumerate([1.0, -1.0], start=len(halves)):
        p = link(raws[row])
        z = math.log((p - target / 100) / (1 - p + target / 100))
        contributions[row, 0] = raws[row] - (z - b) / a
    points, rounded = points_of_many(raws, contributions, a, b)
    for i, raw in enumerate(raws.tolist()):
        for k, c in enumerate(contributions[i].tolist()):
            exact = points_given(link(raw), c, raw, link)
            assert points[i, k] == pytest.approx(exact, abs=1e-9)
            assert (abs(points[i, k]) >= MISSING_MIN_POINTS) == (abs(exact) >= MISSING_MIN_POINTS)
            assert rounded[i, k] == round(exact, 2)
            assert math.copysign(1, rounded[i, k]) == math.copysign(1, round(exact, 2))


def test_an_account_snapshots_payment_history_is_named_for_people():
    """The payment aggregates the features stage adds to an account snapshot are no
    export's columns: they read with their own names, never as snake_case."""
    from leadscore_assets.features.snapshot import PAYMENT_FEATURES

    for feature in PAYMENT_FEATURES:
        assert "_" not in field_display(feature).label, feature
    failed = human_reason("failed_share", 0.6667, 0.5, raw_score=0.0, link=LINK)
    assert failed.text == "Share of payments that failed is 67%"
    # in the landed payments' currency, and said to be unknown when no payment says it
    paid = human_reason("amount_paid", 2899.0, -0.2, raw_score=0.0, link=LINK)
    assert paid.text == "Amount paid is 2,899.00 (currency not known)"
    in_usd = displays_for(None, Currency(("USD",), LANDED))
    assert human_reason("amount_paid", 2899.0, -0.2, raw_score=0.0, link=LINK,
                        displays=in_usd).text == "Amount paid is $2,899.00"
    spend = displays_for(None, invoices=Currency(("GBP",), DECLARED))
    assert ReasonTexts(spend)("avg_basket", 23.4) == "Average basket is £23.40"
    assert ReasonTexts(in_usd)("avg_basket", 23.4) == \
        "Average basket is 23.40 (currency not known)"  # payments say nothing of invoices
    several = displays_for(None, Currency(("EUR", "USD"), LANDED))
    assert ReasonTexts(several)("amount_refunded", 12.5) == \
        "Amount refunded is 12.50 (EUR or USD)"


def test_remembered_texts_are_human_reasons_own():
    displays = displays_for({"plan": {"label": "Plan"}, "seats": {"label": "Seats",
                                                                 "unit": "seats"}})
    texts = ReasonTexts(displays, limit=3)
    cases = [("plan", "pro", " Pro  Plus"), ("plan", "pro", "pro"), ("plan", "pro", 3),
             ("seats", 1.0, None), ("seats", True, None), ("seats", 12.5, "12.5"),
             ("newsletter", True, "yes"), ("plan", "pro", " Pro  Plus")]
    for feature, value, sent in cases * 2:  # the second time from memory (or after a clear)
        expected = human_reason(feature, value, 0.5, raw_score=0.0, link=LINK,
                                displays=displays, sent=sent)
        assert texts(feature, value, sent) == expected.text
    assert texts("seats", 1.0) != texts("seats", True)  # equal keys, written differently
    assert texts.missing("plan") == human_reason(
        "plan", None, 3.0, raw_score=0.0, link=LINK, displays=displays).text
    assert len(texts._texts) <= 3


def test_a_category_reads_with_its_label_and_as_sent():
    displays = displays_for({"business_type": {"label": "Business type"}})
    reason = human_reason("business_type", "dental", 0.8, raw_score=0.5, link=LINK,
                          displays=displays, sent=" Dental ")
    assert reason.text == "Business type is Dental"
    assert reason.sentence.startswith("Business type is Dental: +")
    assert reason.contribution == 0.8


def test_a_field_without_a_label_is_named_as_the_export_spells_it():
    reason = human_reason("MonthlyCharges", 70.35, -0.3, raw_score=0.0, link=LINK,
                          displays={"Other": FieldDisplay("x")})
    assert reason.text == "MonthlyCharges is 70.3" and reason.points < 0


def test_a_missing_value_is_said_as_such_and_only_when_it_moves_the_score():
    displays = displays_for({"utm_campaign": {"label": "Campaign"}})
    moving = human_reason("utm_campaign", None, 0.19, raw_score=0.0, link=LINK,
                          displays=displays)
    assert moving.text == "Campaign not given" and moving.points >= 1
    # 0.02 log-odds at a probability of one half: half a point
    assert human_reason("utm_campaign", None, 0.02, raw_score=0.0, link=LINK,
                        displays=displays) is None


def test_derived_features_have_names_and_units():
    reason = human_reason("created_hour", 6.11667, 0.4, raw_score=1.0, link=LINK)
    assert reason.text == "Time of day is 06:07"
    assert human_reason("recency_days", 151.48425925925926, 0.4, raw_score=1.0,
                        link=LINK).text == "Days since last purchase is 151 days"


# -- the API ------------------------------------------------------------------------------


def test_api_reasons_carry_text_and_points_beside_the_raw_contribution(client):  # noqa: F811
    body = client.post("/v1/leads/score", json={
        "id": "x", "business_type": "Gym", "business_size": "50+", "utm_medium": "cpc",
        "utm_source": "google", "utm_campaign": "spring"}).json()
    listed = body["reasons_for"] + body["reasons_against"]
    assert listed
    for reason in listed:
        assert reason["text"].startswith(reason["feature"])  # the test model's labels
        assert (reason["points"] > 0) == (reason["contribution"] > 0)
        want = reason_points(reason["contribution"], body["raw_score"],
                             sigmoid_link(0.8, -0.2))  # the test model's Platt scaling
        assert reason["points"] == pytest.approx(want, abs=0.01)
    assert body["ignored_fields"] == []


def test_unknown_fields_are_reported_back_and_the_rest_is_scored(client):  # noqa: F811
    with_unknown = client.post("/v1/leads/score", json={
        "id": "a", "business_size": "50+", "industry": "Dental", "Zip": "02139"}).json()
    plain = client.post("/v1/leads/score", json={"id": "a", "business_size": "50+"}).json()
    assert with_unknown["ignored_fields"] == ["Zip", "industry"]
    assert with_unknown["probability"] == plain["probability"]
    batch = client.post("/v1/leads/score", json=[
        {"business_size": "50+"}, {"business_size": "1-5", "colour": "red"}]).json()
    assert [b["ignored_fields"] for b in batch] == [[], ["colour"]]
    churn = client.post("/v1/customers/churn", json={"plan": "Elite", "mood": "ok"}).json()
    assert churn["ignored_fields"] == ["mood"]


def test_a_body_of_fields_the_model_does_not_know_is_a_400_naming_the_expected(client):  # noqa: F811  # noqa: F811
    response = client.post("/v1/leads/score", json={"industry": "Dental"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "industry" in detail
    for field in ("business_type", "business_size", "utm_source"):
        assert field in detail
    batch = client.post("/v1/leads/score", json=[{"business_size": "50+"}, {"id": "only"}])
    assert batch.status_code == 400
    assert batch.json()["extra"][0]["field"] == "[1]"
    # a field sent as null is a field the model knows (a blank in a CRM row)
    assert client.post("/v1/leads/score", json={"utm_source": None}).status_code == 200
    assert client.post("/v1/customers/churn", json={"id": "c"}).status_code == 400


def test_published_open_leads_carry_the_profiles_contact_fields_from_the_raw_record(tmp_path):
    import duckdb
    import pandas as pd

    from leadscore_assets.scores.assets import open_leads_frame, raw_records
    from leadscore_core.serving import Encoder

    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute("CREATE SCHEMA raw")
    conn.execute("CREATE TABLE raw.leads (_source_file VARCHAR, _row_number BIGINT, "
                 "record JSON)")
    conn.execute("INSERT INTO raw.leads VALUES ('a.csv', 1, ?), ('a.csv', 2, ?)", [
        '{"email": "x@y.z", "name": "Ana Li", "company": "Li Dental", '
        '"business_type": " Dental  Clinic "}',
        '{"email": "q@y.z", "name": "", "company": "Q Cafe"}'])
    open_leads = pd.DataFrame({"lead_id": ["x@y.z", "q@y.z"],
                               "business_type": ["dental clinic", None],
                               "_source_file": ["a.csv", "a.csv"], "_row_number": [1, 2]})
    scored = pd.DataFrame({"lead_id": ["q@y.z", "x@y.z"], "score": [40, 70]})
    bundle = type("B", (), {"encoder": Encoder.fit(open_leads, {"business_type":
                                                                "categorical"})})()
    out = open_leads_frame(scored, open_leads, bundle, ["name", "company"],
                           raw_records(conn, open_leads))
    assert list(out["lead_id"]) == ["q@y.z", "x@y.z"]  # the export's order
    assert out["name"].tolist()[1] == "Ana Li" and pd.isna(out["name"].tolist()[0])
    assert out["company"].tolist() == ["Q Cafe", "Li Dental"]
    # a category as the file spelled it (white space folded), for the lead page to post
    assert out["business_type"].tolist()[1] == "Dental Clinic"
    assert pd.isna(out["business_type"].tolist()[0])


def test_published_customer_accounts_spell_each_category_as_the_file_did(tmp_path):
    """``scores/customers`` publishes the account snapshots' features for the customer pages
    and ``GET /v1/customers/{id}/churn`` with each category as the customer's file spelled
    it (``Home Services``, not the model's ``home services``), as a lead's are."""
    import duckdb
    import pandas as pd

    from leadscore_assets.scores.assets import raw_records, spelt_as_sent
    from leadscore_core.serving import Encoder

    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute("CREATE SCHEMA raw")
    conn.execute("CREATE TABLE raw.customers (_source_file VARCHAR, _row_number BIGINT, "
                 "record JSON)")
    conn.execute("INSERT INTO raw.customers VALUES ('c.csv', 1, ?), ('c.csv', 2, ?)", [
        '{"customer_id": "10002", "business_type": "Home  Services", "seats": "3"}',
        '{"customer_id": "10003", "business_type": ""}'])
    accounts = pd.DataFrame({"customer_id": [10002, 10003],
                             "business_type": ["home services", "medical"],
                             "seats": [3.0, 1.0],
                             "_source_file": ["c.csv", "c.csv"], "_row_number": [1, 2]})
    bundle = type("B", (), {"encoder": Encoder.fit(accounts, {"business_type": "categorical",
                                                              "seats": "numeric"})})()
    out = spelt_as_sent(accounts, bundle, raw_records(conn, accounts, "customers",
                                                      "customer_id"), "customer_id")
    assert out["business_type"].tolist() == ["Home Services", "medical"]  # blank: as cleaned
    assert out["seats"].tolist() == [3.0, 1.0]  # numbers as the model reads them
    assert accounts["business_type"].tolist()[0] == "home services"  # the input untouched
