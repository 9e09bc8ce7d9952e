"""Sample exports: deterministic, in the shipped formats, joinable, and worth learning from.

Every expectation here is read back from the written files with plain pandas/json, never
from the generator's internals.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from leadscore_assets.cli import main
from leadscore_assets.sample_data import write_sample_data
from leadscore_core import profiles
from leadscore_core.warehouse import INVOICE_COLUMNS

SOURCES = ("leads", "payments", "invoices", "customers")
SIZES = ("1-10", "11-50", "51-200", "201-500", "500+")
PLAN_PRICES = {"Business": 150, "Elite": 250, "MVP": 350, "Now": 500}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """The default export (seed 7, scale 1), written once through the CLI."""
    inbox = tmp_path_factory.mktemp("sample") / "inbox"
    result = CliRunner().invoke(main, ["sample-data", "--inbox", str(inbox)])
    assert result.exit_code == 0, result.output
    written = {s: sorted((inbox / s).iterdir()) for s in SOURCES}
    # The CLI says what it wrote: every file, with its row count.
    for paths in written.values():
        for path in paths:
            assert str(path) in result.output
    return written


def _objects(paths: list[Path]) -> list[dict]:
    """Every charge and payment intent, events unwrapped, as the files hold them."""
    out = []
    for path in paths:
        if path.suffix == ".json":
            items = json.loads(path.read_text())
        else:
            items = [json.loads(line) for line in path.read_text().splitlines() if line]
        for item in items:
            if item["object"] == "event":
                item = item["data"]["object"]
            if item["object"] in ("charge", "payment_intent"):
                out.append(item)
    return out


@pytest.fixture(scope="module")
def leads(sample) -> pd.DataFrame:
    """The year's leads (the recent, still-open export is tested on its own)."""
    frame = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False)
                       for p in sample["leads"] if "2026-01" not in p.name], ignore_index=True)
    return frame


def test_recent_leads_are_open_at_the_export_cut(sample, charges) -> None:
    [path] = [p for p in sample["leads"] if "2026-01" in p.name]
    recent = pd.read_csv(path, dtype=str, keep_default_na=False)
    stamps = pd.to_datetime(recent["submitted_at"], format="%Y-%m-%d %H:%M:%S")
    cut = pd.Timestamp("2026-01-31 23:59:59")
    assert len(recent) >= 100
    assert stamps.min() >= cut - pd.Timedelta(days=28) and stamps.max() <= cut
    # nobody from the recent export has paid yet: their conversion is still undecided
    paid = set(charges["billing_details.email"].dropna().str.strip().str.lower())
    assert not paid & set(recent["email"].str.strip().str.lower())


@pytest.fixture(scope="module")
def charges(sample) -> pd.DataFrame:
    rows = [o for o in _objects(sample["payments"]) if o["object"] == "charge"]
    frame = pd.json_normalize(rows)
    # A refunded charge is seen twice in the event log (succeeded, then refunded): keep the
    # latest state, as the cleaning stage does.
    return frame.drop_duplicates("id", keep="last")


@pytest.fixture(scope="module")
def customers(sample) -> pd.DataFrame:
    [path] = sample["customers"]
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def invoices(sample) -> pd.DataFrame:
    [path] = sample["invoices"]
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def labelled_leads(leads, charges) -> pd.DataFrame:
    """First submission per email; converted when a succeeded charge with that email exists."""
    first = leads.assign(email=leads["email"].str.strip().str.lower())
    first = first.sort_values("submitted_at", kind="stable").drop_duplicates("email")
    for col in ("business_type", "business_size", "utm_source", "utm_medium"):
        first[col] = first[col].str.strip().str.lower()
    buyers = set(charges.loc[charges["status"] == "succeeded", "billing_details.email"])
    return first.assign(converted=first["email"].isin(buyers).astype(int))


def _digest(paths: dict[str, list[Path]]) -> dict[str, bytes]:
    return {f"{s}/{p.name}": p.read_bytes() for s, ps in paths.items() for p in ps}


# -- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    first = write_sample_data(tmp_path / "a", seed=3, scale=0.2, gzip_invoices=True)
    again = write_sample_data(tmp_path / "b", seed=3, scale=0.2, gzip_invoices=True)
    other = write_sample_data(tmp_path / "c", seed=4, scale=0.2, gzip_invoices=True)
    assert sorted(first) == list(sorted(SOURCES))
    assert _digest(first) == _digest(again)
    other_bytes = list(_digest(other).values())
    assert all(content not in other_bytes for content in _digest(first).values())


def test_rerun_into_same_inbox_is_idempotent_and_never_overwrites(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    first = write_sample_data(inbox, seed=5, scale=0.1)
    before = _digest(first)
    assert write_sample_data(inbox, seed=5, scale=0.1) == first
    assert _digest(first) == before
    [customers_file] = first["customers"]
    customers_file.write_text(customers_file.read_text() + "\n")  # edited after landing
    moved_away = first["leads"][0]
    moved_away.unlink()
    with pytest.raises(FileExistsError, match=customers_file.name):
        write_sample_data(inbox, seed=5, scale=0.1)
    assert customers_file.read_text().endswith("\n\n")
    assert not moved_away.exists(), "files were written before the conflict was found"
    assert not list(inbox.glob(".sample-staging-*")), "staging folder left behind"


# -- formats ---------------------------------------------------------------------------------


def test_lead_and_customer_headers_are_detected_by_the_shipped_profiles(sample) -> None:
    shipped = profiles.load_profiles()
    for source, name in (("leads", "webform"), ("customers", "saas_accounts")):
        for path in sample[source]:
            with path.open(newline="") as fh:
                header = next(csv.reader(fh))
            profile = shipped[name]
            assert profiles.detect_profile(header, shipped, source).name == name
            assert profile.missing_columns(header) == []
    with sample["leads"][0].open(newline="") as fh:
        assert next(csv.reader(fh)) == ["submitted_at", "email", "name", "company",
                                         "business_type", "business_size", "utm_source",
                                         "utm_medium", "utm_campaign", "message"]


def test_leads_cover_a_fixed_year_and_type_through_the_profile(leads) -> None:
    stamps = pd.to_datetime(leads["submitted_at"], format="%Y-%m-%d %H:%M:%S")
    assert stamps.min() >= pd.Timestamp("2025-01-01")
    assert stamps.max() < pd.Timestamp("2026-01-11")  # a late resubmission may spill over
    assert 2500 <= leads["email"].str.strip().str.lower().nunique() <= 3500
    resolved = profiles.load_profiles()["webform"].resolve(list(leads.columns))
    typed = resolved.type_frame(leads)
    assert typed.problems.empty
    assert set(typed.frame["business_type"].dropna()) == {
        "medical", "dental", "legal", "home services", "real estate", "fitness",
        "education", "ecommerce", "automotive", "restaurant"}


def test_leads_carry_the_messiness_cleaning_must_handle(leads) -> None:
    canonical = {"Medical", "Dental", "Legal", "Home Services", "Real Estate", "Fitness",
                 "Education", "Ecommerce", "Automotive", "Restaurant"}
    odd_type = ~leads["business_type"].isin(canonical)
    assert 0 < odd_type.sum() < 0.1 * len(leads)
    assert set(leads.loc[odd_type, "business_type"].str.strip().str.title()) <= canonical
    assert (leads["business_size"] == "").sum() > 10
    emails = leads["email"].str.strip().str.lower()
    resent = leads[emails.duplicated(keep=False)]
    assert len(resent) > 20
    assert (leads["email"] != leads["email"].str.lower()).any()


def test_payments_are_stripe_objects_in_both_files(sample) -> None:
    json_file, = [p for p in sample["payments"] if p.suffix == ".json"]
    jsonl_file, = [p for p in sample["payments"] if p.suffix == ".jsonl"]
    listed = json.loads(json_file.read_text())
    assert isinstance(listed, list)
    assert {o["object"] for o in listed} == {"charge", "payment_intent"}
    events = [json.loads(line) for line in jsonl_file.read_text().splitlines()]
    assert {e["object"] for e in events} == {"event"}
    kinds = {e["type"] for e in events}
    assert {"charge.succeeded", "charge.failed", "payment_intent.succeeded"} <= kinds
    assert "customer.created" in kinds  # another object type: counted and skipped on landing
    for obj in _objects(sample["payments"]):
        assert obj["currency"] == "usd"
        assert isinstance(obj["amount"], int) and isinstance(obj["created"], int)
        assert obj["customer"].startswith("cus_")
        prefix = "ch_" if obj["object"] == "charge" else "pi_"
        assert obj["id"].startswith(prefix)
        if obj["object"] == "charge":
            assert obj["payment_intent"].startswith("pi_")
            assert obj["paid"] == (obj["status"] == "succeeded")


def test_first_payments_follow_the_lead_at_plan_prices(leads, labelled_leads, charges) -> None:
    ok = charges[charges["status"] == "succeeded"]
    first = ok.sort_values("created").drop_duplicates("billing_details.email")
    lead_at = labelled_leads.set_index("email")["submitted_at"]
    paid_at = pd.to_datetime(first["created"], unit="s")
    submitted = pd.to_datetime(lead_at.reindex(first["billing_details.email"]).to_numpy())
    delay = (paid_at.to_numpy() - submitted) / np.timedelta64(1, "D")
    assert (delay >= 0).all() and (delay <= 30).all()
    # A lead sent twice was sent again before paying, so the latest submission opens the
    # window as well as the first.
    latest = leads.assign(email=leads["email"].str.strip().str.lower()).groupby("email")[
        "submitted_at"].max()
    resent_at = pd.to_datetime(latest.reindex(first["billing_details.email"]).to_numpy())
    assert (paid_at.to_numpy() >= resent_at).all()
    prices = {100 * p for p in PLAN_PRICES.values()}
    with_setup = {100 * (p + 399) for p in PLAN_PRICES.values()}
    assert set(first["amount"]) <= prices | with_setup | {39900}
    assert first["amount"].isin(with_setup).mean() > 0.7
    # Renewals charge the plan price only.
    assert set(ok["amount"]) <= prices | with_setup | {39900}


def test_succeeded_payment_emails_are_leads_and_customers(labelled_leads, charges,
                                                          customers) -> None:
    paid = set(charges.loc[charges["status"] == "succeeded", "billing_details.email"])
    assert paid <= set(labelled_leads["email"])
    assert paid == set(customers["email"])
    assert customers["email"].is_unique and customers["customer_id"].is_unique


def test_failed_refunded_and_disputed_payments_are_present(charges) -> None:
    failed = charges[charges["status"] == "failed"]
    assert len(failed) > 20
    assert {"card_declined", "insufficient_funds"} <= set(failed["failure_code"])
    assert not failed["paid"].any()
    ok = charges[charges["status"] == "succeeded"]
    full = ok[ok["refunded"]]
    assert len(full) > 0 and (full["amount_refunded"] == full["amount"]).all()
    partial = ok[(ok["amount_refunded"] > 0) & ~ok["refunded"]]
    assert len(partial) > 0 and (partial["amount_refunded"] < partial["amount"]).all()
    assert 1 <= charges["disputed"].sum() <= 5


def test_invoices_in_uci_layout_with_cancellations_and_blank_customers(invoices,
                                                                       customers) -> None:
    assert list(invoices.columns) == list(INVOICE_COLUMNS)
    assert len(invoices) > 5000
    cancel = invoices["InvoiceNo"].str.startswith("C")
    assert cancel.sum() > 0
    assert (invoices.loc[cancel, "Quantity"].astype(int) < 0).all()
    assert (invoices.loc[~cancel, "Quantity"].astype(int) > 0).all()
    assert 0 < (invoices["CustomerID"] == "").sum() < 0.02 * len(invoices)
    # An invoice lists each add-on once; a line keyed in twice is rare.
    assert 0 < invoices.duplicated().sum() < 0.01 * len(invoices)
    ids = invoices.loc[invoices["CustomerID"] != "", "CustomerID"]
    assert ids.str.fullmatch(r"\d+\.0").all()
    assert set(ids.str[:-2]) <= set(customers["customer_id"])
    dates = pd.to_datetime(invoices["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    assert dates.max() <= pd.Timestamp("2026-01-31 23:59:59")


# -- learnable relationships -----------------------------------------------------------------


def test_conversion_depends_on_type_and_size_in_the_intended_direction(labelled_leads) -> None:
    by_type = labelled_leads.groupby("business_type")["converted"].mean()
    assert by_type["dental"] > 2 * by_type["restaurant"]
    assert by_type["medical"] > by_type["fitness"]
    by_size = labelled_leads.groupby("business_size")["converted"].mean()
    assert by_size["51-200"] > 1.5 * by_size["1-10"]
    by_source = labelled_leads.groupby("utm_source")["converted"].mean()
    assert by_source["partner"] > by_source["facebook"]


def test_lead_conversion_is_learnable_from_the_form_fields(labelled_leads) -> None:
    x = labelled_leads[["business_type", "business_size", "utm_source", "utm_medium"]]
    y = labelled_leads["converted"]
    assert 0.08 < y.mean() < 0.35
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                          LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    auc = cross_val_score(model, x, y, cv=cv, scoring="roc_auc").mean()
    assert auc > 0.70, auc


def test_plan_rises_with_size_and_is_predictable(customers) -> None:
    price = customers["plan"].map(PLAN_PRICES)
    assert price.notna().all()
    assert (customers["monthly_fee"].astype(int) == price).all()
    rank = customers["business_size"].map({s: i for i, s in enumerate(SIZES)})
    assert rank.corr(price, method="spearman") > 0.4
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                          LogisticRegression(max_iter=1000))
    x = customers[["business_type", "business_size"]]
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = cross_val_score(model, x, customers["plan"], cv=cv).mean()
    majority = customers["plan"].value_counts(normalize=True).max()
    assert accuracy > majority + 0.1, (accuracy, majority)


def test_churned_customers_were_less_active(customers, invoices) -> None:
    churned = customers["churned"] == "yes"
    assert 0.1 < churned.mean() < 0.5
    for col, lower_when_churned in (("logins_30d", True), ("days_since_last_login", False),
                                    ("support_tickets_90d", False)):
        values = customers[col].astype(float)
        gap = values[churned].median() - values[~churned].median()
        assert (gap < 0) if lower_when_churned else (gap > 0), col
    # Add-on invoices per month of tenure fall for customers who leave.
    lines = invoices[(invoices["CustomerID"] != "") & ~invoices["InvoiceNo"].str.startswith("C")]
    per_customer = lines.groupby(lines["CustomerID"].str[:-2])["InvoiceNo"].nunique()
    rate = (per_customer.reindex(customers["customer_id"]).fillna(0).to_numpy()
            / customers["tenure_months"].astype(float).to_numpy())
    assert np.median(rate[churned.to_numpy()]) < np.median(rate[~churned.to_numpy()])


# -- volume ----------------------------------------------------------------------------------


def test_scale_multiplies_invoice_lines(tmp_path: Path) -> None:
    def lines(scale: float) -> int:
        [path] = write_sample_data(tmp_path / str(scale), scale=scale, gzip_invoices=True)[
            "invoices"]
        with gzip.open(path, "rt") as fh:
            return sum(1 for _ in fh) - 1

    small, large = lines(0.25), lines(1.0)
    assert 3.2 < large / small < 4.8, (small, large)


def test_cli_rejects_a_bad_scale(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sample-data", "--inbox", str(tmp_path),
                                       "--scale", "0"])
    assert result.exit_code != 0
    assert "--scale" in result.output
    assert not any(tmp_path.iterdir())


def test_cli_writes_into_the_settings_inbox_by_default(settings) -> None:
    result = CliRunner().invoke(main, ["sample-data", "--scale", "0.05", "--seed", "2"])
    assert result.exit_code == 0, result.output
    for source in SOURCES:
        files = sorted(settings.inbox(source).iterdir())
        assert files and all("seed2-x0.05" in f.name for f in files), source
