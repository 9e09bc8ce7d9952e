"""Which currency a price or an amount of payments is shown in (``leadscore_core.money``):
declared, else what the payments say (one, several or none), never guessed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from leadscore_assets.clean.payments import clean_payments
from leadscore_assets.ingest.readers import read_export
from leadscore_core.money import (
    DECLARED,
    LANDED,
    MATCHED,
    UNKNOWN,
    Currency,
    PaymentCurrencies,
    currency_counts,
    invoice_amount_currency,
    money_text,
    payment_amount_currency,
    payment_currencies_path,
    plan_price_currency,
    publish_payment_currencies,
)
from leadscore_core.plans import PlanCatalogue
from leadscore_core.profiles import load_profiles
from leadscore_core.settings import Settings


@pytest.mark.parametrize(("declared", "landed", "matched", "codes", "source"), [
    ("eur", {"USD": 3}, {"USD": 2}, ("EUR",), DECLARED),  # declared wins for the prices
    (None, {"USD": 3, "EUR": 1}, {"USD": 2}, ("USD",), MATCHED),  # what the prices matched
    (None, {"USD": 3, "JPY": 1}, {"USD": 2, "JPY": 1}, ("JPY", "USD"), MATCHED),  # several
    (None, {"USD": 3}, {}, ("USD",), LANDED),  # nothing matched: what the business takes
    (None, {}, {}, (), UNKNOWN),
])
def test_plan_prices_are_in_the_declared_or_the_payments_currency(declared, landed, matched,
                                                                   codes, source):
    currency = plan_price_currency(declared, {"landed": landed, "matched": matched})
    assert (currency.codes, currency.source) == (codes, source)
    assert currency.code == (codes[0] if len(codes) == 1 else None)


def test_amounts_of_payments_are_in_the_landed_payments_currencies():
    document = {"landed": {"USD": 3, "EUR": 1}, "matched": {"USD": 2}}
    assert payment_amount_currency(document) == Currency(("EUR", "USD"), LANDED)
    assert payment_amount_currency(None) == Currency()


def test_an_amount_is_written_with_its_currency_or_says_it_has_none():
    assert Currency(("USD",), MATCHED).text(150) == "$150.00"
    assert Currency(("JPY",), MATCHED).text(500) == "¥500"
    assert Currency(("JPY", "USD"), MATCHED).text(150) == "150.00 (JPY or USD)"
    assert Currency().text(150) == "150.00 (currency not known)"
    assert money_text(1234.5, "GBP") == "£1,234.50"
    assert "none is chosen" in Currency(("JPY", "USD"), MATCHED).description


def test_a_declared_currency_must_be_one(tmp_path: Path):
    path = tmp_path / "plans.yaml"
    path.write_text("currency: dollars\nplans:\n  - {name: A, monthly_price: 5}\n")
    with pytest.raises(ValueError, match="not an ISO 4217"):
        PlanCatalogue.load(path)
    path.write_text("currency: ' eur '\nplans:\n  - {name: A, monthly_price: 5}\n")
    assert PlanCatalogue.load(path).currency == "EUR"
    with pytest.raises(ValueError, match="not an ISO 4217"):
        Settings(data_dir=tmp_path, invoice_currency="pounds")
    assert Settings(data_dir=tmp_path, invoice_currency="gbp").invoice_currency == "GBP"
    assert invoice_amount_currency("gbp") == Currency(("GBP",), DECLARED)
    assert invoice_amount_currency(None) == Currency()


def test_price_list_carries_the_decided_currency():
    catalogue = PlanCatalogue.load()
    several = catalogue.price_list(Currency(("JPY", "USD"), MATCHED))
    assert {(p["currency"], tuple(p["currencies"])) for p in several} == {(None, ("JPY", "USD"))}
    assert catalogue.price_list()[0]["currencies"] == []  # shipped: none declared, no evidence


def test_counts_skip_blank_currencies_and_count_matched_plans():
    document = currency_counts(pd.Series(["usd", "EUR", None, "USD"], dtype="string"),
                               pd.Series(["Business", pd.NA, "Now", None], dtype="string"))
    assert (document["landed"], document["matched"]) == ({"USD": 2, "EUR": 1}, {"USD": 1})


def test_published_currencies_are_followed(tmp_path: Path):
    snapshot = tmp_path / "serving" / "snapshot.parquet"
    currencies = PaymentCurrencies(payment_currencies_path(snapshot), None)
    assert currencies.plan_prices == Currency() and not currencies.refresh()
    publish_payment_currencies({"landed": {"USD": 4}, "matched": {"USD": 4}}, snapshot)
    assert currencies.refresh() and currencies.plan_prices.code == "USD"
    assert not currencies.refresh()  # the same file: nothing changed
    declared = PaymentCurrencies(payment_currencies_path(snapshot), "GBP")
    assert (declared.plan_prices.code, declared.payment_amounts.code) == ("GBP", "USD")


def test_real_stripe_fixture_says_its_payments_are_in_usd(shared_data: Path):
    """Stripe's own fixture: every object is in usd, and its 1.00 charge buys no plan, so the
    prices are shown in the currency of the payments landed."""
    fixture = shared_data / "stripe_payment_objects_subset.json"
    raw = read_export("payments", fixture, load_profiles()).frame.copy()
    raw["_source_file"], raw["_ingested_at"] = fixture.name, pd.Timestamp("2026-01-01")
    clean = clean_payments(raw).clean
    objects = json.loads(fixture.read_text())
    assert {o["currency"] for o in objects.values() if o.get("amount") is not None} == {"usd"}
    document = currency_counts(clean["currency"], clean["plan"])
    assert document["matched"] == {} and document["landed"] == {"USD": len(clean)}
    assert plan_price_currency(None, document) == Currency(("USD",), LANDED)
    assert payment_amount_currency(document).text(1.0) == "$1.00"
