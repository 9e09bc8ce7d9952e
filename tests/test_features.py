"""Feature functions on small hand-made tables with answers worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from leadscore_assets.features.activity import (
    activity_features,
    activity_training_set,
    churn_cutoffs,
)
from leadscore_assets.features.leads import lead_features, plan_label
from leadscore_assets.features.snapshot import snapshot_features
from leadscore_core.serving import arrival_features

T = pd.Timestamp


def invoice_lines(rows: list[tuple]) -> pd.DataFrame:
    """(invoice_no, customer, date, stock_code, quantity, unit_price, country)."""
    df = pd.DataFrame(rows, columns=["invoice_no", "customer_id", "invoice_date", "stock_code",
                                     "quantity", "unit_price", "country"])
    df["invoice_date"] = pd.to_datetime(df["invoice_date"])
    df["is_return"] = df["invoice_no"].str.startswith("C")
    df["line_total"] = df["quantity"] * df["unit_price"]
    return df


@pytest.fixture
def invoices() -> pd.DataFrame:
    return invoice_lines([
        # customer 1: three purchases before the cutoff, one return, one purchase after
        ("100", "1", "2011-01-01 10:00", "A", 2, 5.0, "France"),
        ("100", "1", "2011-01-01 10:00", "B", 1, 10.0, "France"),
        ("101", "1", "2011-02-10 12:00", "A", 4, 5.0, "France"),
        ("C102", "1", "2011-02-15 09:00", "A", -1, 5.0, "France"),
        ("103", "1", "2011-03-22 12:00", "C", 3, 10.0, "France"),
        ("104", "1", "2011-05-01 08:00", "A", 1, 5.0, "France"),  # after the cutoff
        # customer 2: a single purchase, never again
        ("200", "2", "2011-03-01 00:00", "Z", 10, 1.0, "United Kingdom"),
        # customer 3: only buys after the cutoff (no features at the cutoff)
        ("300", "3", "2011-04-05 00:00", "Z", 1, 1.0, "Germany"),
        # data runs to the end of the year
        ("900", "9", "2011-12-31 00:00", "Z", 1, 1.0, "Germany"),
    ])


CUTOFF = T("2011-04-01")


def test_activity_features_recency_frequency_and_money(invoices):
    feats = activity_features(invoices, CUTOFF, horizon_days=90).set_index("customer_id")
    assert sorted(feats.index) == ["1", "2"]  # 3 and 9 have no line before the cutoff
    c1 = feats.loc["1"]
    # last purchase 2011-03-22 12:00 -> 9.5 days before 2011-04-01 00:00
    assert c1["recency_days"] == pytest.approx(9.5)
    assert c1["frequency"] == 3  # invoices 100, 101, 103 (the return is not a purchase)
    # net spend: 10 + 10 + 20 + 30 - 5 (return) = 65
    assert c1["monetary"] == pytest.approx(65.0)
    assert c1["avg_basket"] == pytest.approx(70.0 / 3)
    assert c1["distinct_products"] == 3
    assert c1["return_rate"] == pytest.approx(5.0 / 70.0)
    # first purchase 2011-01-01 10:00 -> tenure 89 days and 14 hours
    assert c1["tenure_days"] == pytest.approx(89 + 14 / 24)
    # purchases span 2011-01-01 10:00 .. 2011-03-22 12:00 (80 days 2 h) over 2 gaps
    assert c1["mean_days_between"] == pytest.approx((80 + 2 / 24) / 2)
    assert c1["spend_30d"] == pytest.approx(30.0)  # only invoice 103 since 2011-03-02
    assert c1["spend_90d"] == pytest.approx(70.0)
    assert c1["invoices_90d"] == 3
    assert c1["active_months"] == 3
    assert c1["country"] == "france"
    assert c1["longest_gap_days"] == pytest.approx(40 + 2 / 24)  # Jan 1 10:00 -> Feb 10 12:00
    assert c1["recency_over_longest_gap"] == pytest.approx(9.5 / (40 + 2 / 24))
    assert c1["lines_per_invoice"] == pytest.approx(4 / 3)
    # the data start with customer 1's first line: their history is cut off, all of it shown
    assert c1["history_censored"] and c1["tenure_share"] == pytest.approx(1.0)
    c2 = feats.loc["2"]
    assert c2["recency_days"] == pytest.approx(31.0)
    assert math.isnan(c2["mean_days_between"])
    assert not c2["history_censored"]  # first seen two months into the data


def test_churn_label_at_a_cutoff(invoices):
    feats = activity_features(invoices, CUTOFF, horizon_days=90).set_index("customer_id")
    assert not feats.loc["1", "churned"]  # bought again on 2011-05-01, inside 90 days
    assert feats.loc["2", "churned"]  # no purchase in [2011-04-01, 2011-06-30)
    # a 30-day horizon ends before customer 1's next purchase
    short = activity_features(invoices, CUTOFF, horizon_days=30).set_index("customer_id")
    assert short.loc["1", "churned"]


def test_churn_label_unknown_when_the_horizon_is_not_over(invoices):
    late = activity_features(invoices, T("2011-12-01"), horizon_days=90)
    assert late["churned"].isna().all()


def test_no_leakage_of_lines_after_the_cutoff(invoices):
    base = activity_features(invoices, CUTOFF)
    # A huge purchase after the cutoff changes the label window, never the features.
    extra = invoice_lines([("999", "2", "2011-04-02 00:00", "Q", 1000, 99.0, "Spain")])
    changed = activity_features(pd.concat([invoices, extra], ignore_index=True), CUTOFF)
    features = [c for c in base.columns if c != "churned"]
    pd.testing.assert_frame_equal(base[features], changed[features])
    assert changed.set_index("customer_id").loc["2", "churned"] == False  # noqa: E712


def test_training_set_stacks_cutoffs(invoices):
    stacked = activity_training_set(invoices, [T("2011-03-01"), CUTOFF])
    assert stacked.groupby("cutoff")["customer_id"].apply(sorted).to_dict() == {
        T("2011-03-01"): ["1"], CUTOFF: ["1", "2"]}


def test_churn_cutoffs_keep_training_labels_before_the_evaluation_cutoff(invoices):
    cutoffs = churn_cutoffs(invoices, horizon_days=90, count=3, step_days=30)
    evaluation = cutoffs[-1]
    assert evaluation == T("2012-01-01") - pd.Timedelta(days=90)
    assert all(c + pd.Timedelta(days=90) <= evaluation for c in cutoffs[:-1])


# -- leads ------------------------------------------------------------------------------------


def leads_table() -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": ["a", "b", "c", "d", "e"],
        "profile": "webform",
        "created_at": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 09:00",
                                      "2024-01-01 09:00", "2024-03-10 09:00",
                                      "2024-01-05 09:00"]),
        "email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io", None],
        "converted": pd.array([pd.NA, pd.NA, pd.NA, pd.NA, pd.NA], dtype="boolean"),
        "business_type": ["cafe", "shop", "cafe", "shop", "cafe"],
    })


def payments_table() -> pd.DataFrame:
    return pd.DataFrame({
        "payment_id": ["p1", "p2", "p3", "p4", "p5"],
        "created_at": pd.to_datetime(["2024-01-20 10:00", "2024-02-15 10:00",
                                      "2024-01-10 10:00", "2024-01-03 10:00",
                                      "2024-03-15 00:00"], utc=True),
        "status": ["succeeded", "succeeded", "failed", "succeeded", "succeeded"],
        "customer_email": ["a@x.io", "b@x.io", "c@x.io", "c@x.io", "zz@x.io"],
        "plan": ["Business", "Elite", None, "MVP", "Now"],
        "amount": [100.0, 200.0, 50.0, 30.0, 10.0],
        "amount_refunded": [0.0, 0.0, 0.0, 30.0, 0.0],
    })


def test_lead_matched_to_payment_inside_and_outside_the_window():
    out = lead_features(leads_table(), payments_table(), window_days=30).set_index("lead_id")
    assert out.loc["a", "converted"]  # paid 19 days later
    assert out.loc["a", "paid_at"] == T("2024-01-20 10:00")
    assert not out.loc["b", "converted"]  # paid 45 days later: outside 30 days
    # c: the failed payment does not count; the succeeded one is 2 days after the lead
    assert out.loc["c", "converted"]
    # d: created 5 days before the last payment seen, so its window is still open
    assert pd.isna(out.loc["d", "converted"]) and out.loc["d", "label_source"] == "open"
    assert pd.isna(out.loc["e", "converted"])  # no email, nothing to match
    assert out.loc["a", "label_source"] == "payments"
    wide = lead_features(leads_table(), payments_table(), window_days=60).set_index("lead_id")
    assert wide.loc["b", "converted"]


def test_profile_label_wins_over_payments():
    leads = leads_table()
    leads["converted"] = pd.array([False, True, pd.NA, pd.NA, True], dtype="boolean")
    out = lead_features(leads, payments_table()).set_index("lead_id")
    assert out.loc["a", "converted"] == False  # noqa: E712  (the export says no)
    assert out.loc["e", "converted"] and out.loc["e", "label_source"] == "profile"
    assert out.loc["c", "label_source"] == "payments"


def test_arrival_time_features():
    out = lead_features(leads_table(), None).set_index("lead_id")
    assert out.loc["a", "created_hour"] == 9.0
    assert out.loc["a", "created_weekday"] == "monday"
    # the request path derives the same values from one timestamp
    for lead_id, created in leads_table().set_index("lead_id")["created_at"].items():
        assert arrival_features(created) == {
            "created_hour": out.loc[lead_id, "created_hour"],
            "created_weekday": out.loc[lead_id, "created_weekday"]}
    assert arrival_features("2024-01-01T09:30:00+01:00") == {"created_hour": 8.5,
                                                             "created_weekday": "monday"}
    assert arrival_features(None) == {"created_hour": None, "created_weekday": None}


def test_plan_label_is_the_first_succeeded_payment_plan():
    payments = pd.concat([payments_table(), pd.DataFrame({
        "payment_id": ["p6"], "created_at": pd.to_datetime(["2024-01-25"], utc=True),
        "status": ["succeeded"], "customer_email": ["a@x.io"], "plan": ["Elite"],
        "amount": [300.0], "amount_refunded": [0.0]})], ignore_index=True)
    plans = plan_label(leads_table(), payments).set_index("lead_id")["plan"].to_dict()
    assert plans == {"a": "Business", "c": "MVP"}


def test_snapshot_features_join_payment_aggregates_by_email():
    customers = pd.DataFrame({
        "customer_id": ["1", "2", "3"], "profile": "saas_accounts",
        "email": ["C@X.io", "nobody@x.io", None],
        "churned": pd.array([True, False, False], dtype="boolean"),
        "seats": [3.0, 5.0, 1.0],
    })
    out = snapshot_features(customers, payments_table()).set_index("customer_id")
    c1 = out.loc["1"]
    assert bool(c1["payments_matched"])
    assert c1["payments_count"] == 2 and c1["payments_failed"] == 1
    assert c1["failed_share"] == pytest.approx(0.5)
    assert c1["refunds_count"] == 1 and c1["amount_refunded"] == pytest.approx(30.0)
    assert c1["amount_paid"] == pytest.approx(30.0)
    assert not out.loc["2", "payments_matched"] and math.isnan(out.loc["2", "payments_count"])
    assert not out.loc["3", "payments_matched"]


def test_the_profile_of_a_source_is_read_from_the_published_feature_table(tmp_path):
    """The models read the published snapshots, which hold the feature tables and not the
    clean ones: the profile their rows were typed with (recorded on the model version) and
    the export's column names come from the feature table then."""
    from leadscore_assets.features.assets import table_profile
    from leadscore_core.warehouse import snapshot_path, snapshot_reader

    for table, profile in (("features.lead_features", "xeducation"),
                           ("features.customer_snapshot", "telco")):
        pd.DataFrame({"profile": [None, profile], "x": [1.0, 2.0]}).to_parquet(
            snapshot_path(tmp_path, table), index=False)
    with snapshot_reader(tmp_path) as conn:
        assert table_profile(conn, "leads") == "xeducation"
        assert table_profile(conn, "customers") == "telco"
        assert table_profile(conn, "invoices") is None  # no profile anywhere: none guessed
