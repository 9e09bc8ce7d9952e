"""A customer's amounts from payments are never added up across currencies: Stripe's own
fixture, plus charges in a second currency for one customer. Their amount paid is kept per
currency on the page and in the API, and is missing to the model with the customer set aside
for it; a customer paying in one currency keeps the amount they always had."""

from __future__ import annotations

import copy
import json
import math
import os
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster_duckdb import DuckDBResource
from litestar.testing import TestClient

from api.app import create_app
from api.config import ApiSettings
from leadscore_assets.clean.payments import clean_payments
from leadscore_assets.cli import main
from leadscore_assets.features.snapshot import (
    MONEY_SET_ASIDE,
    OTHER_CURRENCY,
    SEVERAL_CURRENCIES,
    money_set_aside,
    snapshot_features,
)
from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.ingest.readers import read_export
from leadscore_core.money import PAYMENT_AMOUNTS, record_amounts
from leadscore_core.profiles import load_profiles
from leadscore_core.published import customer_accounts_path, publish_file
from leadscore_core.reasons import CustomerReasonTexts, ReasonTexts, customer_texts
from leadscore_core.warehouse import read_table
from tests.support.accounts import accounts_csv, materialise_snapshot_side
from tests.support.api_models import make_settings, wait_ready, with_data_dir


def stripe_objects(shared_data: Path, mixed: str, single: str) -> list[dict]:
    """Every object of Stripe's fixture, and captured copies of its charge: 150.00 USD and
    20.00 EUR paid by ``mixed``, 50.00 USD then a 10.00 USD refund for ``single``."""
    fixture = json.loads((shared_data / "stripe_payment_objects_subset.json").read_text())

    def charge(n: int, email: str, amount: int, currency: str, refunded: int = 0) -> dict:
        c = copy.deepcopy(fixture["charge"])
        c.update(id=f"ch_second_currency_{n}", amount=amount, amount_captured=amount,
                 currency=currency, captured=True, amount_refunded=refunded)
        c["billing_details"]["email"] = email
        return c

    return [*fixture.values(), charge(1, mixed, 15000, "usd"), charge(2, mixed, 2000, "eur"),
            charge(3, single, 5000, "usd", refunded=1000)]


def clean_stripe(objects: list[dict], path: Path) -> pd.DataFrame:
    path.write_text(json.dumps(objects))
    raw = read_export("payments", path, load_profiles()).frame.copy()
    raw["_source_file"], raw["_ingested_at"] = path.name, pd.Timestamp("2026-01-01")
    return clean_payments(raw).clean


def test_the_features_stage_sets_aside_an_amount_in_two_currencies(tmp_path, shared_data):
    root = tmp_path / "data"
    landing = LandingZone(root=str(root), settle_seconds=0)
    for source, name, text in (
            ("customers", "accounts.csv", accounts_csv(12)),
            ("payments", "stripe.json",
             json.dumps(stripe_objects(shared_data, "c1@x.io", "c2@x.io")))):
        landing.inbox(source).mkdir(parents=True)
        (landing.inbox(source) / name).write_text(text)
        os.utime(landing.inbox(source) / name, (1_600_000_000, 1_600_000_000))
    warehouse = DuckDBResource(database=str(root / "warehouse.duckdb"))
    for source, name in (("customers", "accounts.csv"), ("payments", "stripe.json")):
        assert land_file(source, name, landing=landing, warehouse=warehouse).success
    result = materialise_snapshot_side(root, warehouse, tmp_path / "alerts.jsonl")
    assert result.success
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(["features", "customer_snapshot"])]
    metadata = event.materialization.metadata
    assert metadata["customers_paying_in_several_currencies"].value == 1
    assert "c1" in metadata["amounts_set_aside"].value
    with warehouse.get_connection() as conn:
        features = read_table(conn, "features.customer_snapshot").set_index("customer_id")
        set_aside = read_table(conn, MONEY_SET_ASIDE)
        clean = read_table(conn, "clean.customers").set_index("customer_id")
    mixed, single = features.loc["c1"], features.loc["c2"]
    # 150 USD + 20 EUR is not 170 of anything: missing to the model, each kept for people
    assert math.isnan(mixed["amount_paid"]) and mixed["payments_count"] == 2
    assert record_amounts(mixed) == {"amount_paid": {"EUR": 20.0, "USD": 150.0},
                                     "amount_refunded": {}}
    assert mixed["amount_refunded"] == 0.0  # nothing refunded, in any currency
    assert (single["amount_paid"], single["amount_refunded"]) == (50.0, 10.0)
    assert record_amounts(single) == {"amount_paid": {"USD": 50.0},
                                      "amount_refunded": {"USD": 10.0}}
    assert features[PAYMENT_AMOUNTS].notna().sum() == 2  # only c1 and c2 paid
    [row] = set_aside.to_dict("records")
    assert {k: row[k] for k in ("customer_id", "email", "_source_file", "_row_number",
                                "field", "value", "currencies", "rule")} == {
        "customer_id": "c1", "email": "c1@x.io", "_source_file": "accounts.csv",
        "_row_number": clean.loc["c1", "_row_number"], "field": "amount_paid",
        "value": "€20.00 + $150.00", "currencies": "EUR,USD", "rule": SEVERAL_CURRENCIES}
    assert "2 currencies" in row["reason"]
    # `leadscore quarantine` lists it with what cleaning set aside
    env = {k: None for k in os.environ if k.startswith("LEADSCORE_")}
    shown = CliRunner().invoke(main, ["quarantine", "customers", "--show", "3"],
                               env={**env, "LEADSCORE_DATA_DIR": str(root)},
                               catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "field set aside  several_currencies" in shown.output
    assert f"accounts.csv:{row['_row_number']}  several_currencies  amount_paid=" \
        "'€20.00 + $150.00'" in shown.output


def test_single_currency_amounts_are_what_they_always_were(shared_data, tmp_path):
    """Without the second currency, the amounts are the plain sums: the rule changes only
    the customers it is about."""
    customers = pd.DataFrame({"customer_id": ["a", "b"], "email": ["a@x.io", "b@x.io"]})
    objects = [o for o in stripe_objects(shared_data, "a@x.io", "b@x.io")
               if o.get("currency") != "eur"]
    out = snapshot_features(customers, clean_stripe(objects, tmp_path / "p.json"))
    out = out.set_index("customer_id")
    assert out.loc["a", "amount_paid"] == 150.0 and out.loc["b", "amount_paid"] == 50.0
    assert out.loc["b", "amount_refunded"] == 10.0


@pytest.mark.parametrize("declared", [None, "USD"])
def test_customers_paying_in_different_currencies_are_not_compared(shared_data, tmp_path,
                                                                   declared):
    """One customer pays in USD, another in EUR: the model's amount is one currency's, the
    declared one; with none declared neither is chosen and both are set aside."""
    customers = pd.DataFrame({"customer_id": ["a", "b"], "email": ["a@x.io", "b@x.io"],
                              "_source_file": "accounts.csv", "_row_number": [1, 2]})
    objects = stripe_objects(shared_data, "a@x.io", "b@x.io")
    for o in objects:  # b's 50.00 (and its refund) in EUR instead
        if o.get("id") == "ch_second_currency_3":
            o["currency"] = "eur"
    objects = [o for o in objects if o.get("id") != "ch_second_currency_2"]
    out = snapshot_features(customers, clean_stripe(objects, tmp_path / "p.json"), declared)
    set_aside = money_set_aside(out, declared).set_index(["customer_id", "field"])
    out = out.set_index("customer_id")
    assert record_amounts(out.loc["b"])["amount_paid"] == {"EUR": 50.0}
    assert math.isnan(out.loc["b", "amount_paid"])
    assert set_aside.loc[("b", "amount_paid"), "rule"] == OTHER_CURRENCY
    if declared:
        assert out.loc["a", "amount_paid"] == 150.0  # in the declared currency: kept
        assert math.isnan(out.loc["b", "amount_refunded"])
        assert set_aside.loc[("b", "amount_refunded"), "value"] == "€10.00"
        assert "USD (declared in the plan catalogue)" in set_aside.loc[("b", "amount_paid"),
                                                                       "reason"]
        assert set(set_aside.index.get_level_values(0)) == {"b"}
    else:
        assert math.isnan(out.loc["a", "amount_paid"])
        assert "EUR, USD" in set_aside.loc[("a", "amount_paid"), "reason"]
        # every refund is in EUR (a's nothing refunded is nothing in any currency): kept
        assert (out.loc["a", "amount_refunded"], out.loc["b", "amount_refunded"]) == (0.0, 10.0)
        assert not set_aside.index.isin([("a", "amount_refunded"),
                                         ("b", "amount_refunded")]).any()


def test_reasons_word_each_customers_amounts_in_their_own_currencies():
    texts = ReasonTexts()
    record = {PAYMENT_AMOUNTS: json.dumps({"amount_paid": {"EUR": 20.0, "USD": 150.0},
                                           "amount_refunded": {"EUR": 5.0}})}
    mine = customer_texts(texts, record)
    assert isinstance(mine, CustomerReasonTexts)
    assert mine.missing("amount_paid") == ("Amount paid is €20.00 + $150.00 (in 2 "
                                           "currencies, not added up: the score reads it as "
                                           "not given)")
    assert mine("amount_refunded", 5.0) == "Amount refunded is €5.00"
    assert mine.missing("amount_refunded") == (
        "Amount refunded is €5.00 (in another currency than the score compares amounts in: "
        "the score reads it as not given)")
    assert mine.missing("seats") == texts.missing("seats")
    assert customer_texts(texts, {"seats": 3}) is texts  # no amounts: the shared texts


@pytest.fixture
def accounts_app(model_store, tmp_path, shared_data):
    """The API over the test models, with the account customers' features published as the
    features stage makes them from Stripe's fixture plus a second currency for one of them."""
    from tests.support.ui import publish_customers

    store = with_data_dir(model_store, tmp_path / "data")
    publish_customers(store["data_dir"], store)
    settings = make_settings(store)
    path = customer_accounts_path(settings.serving_snapshot)
    accounts = pd.read_parquet(path)
    mixed, single = accounts["email"].iloc[1], accounts["email"].iloc[2]
    payments = clean_stripe(stripe_objects(shared_data, mixed, single), tmp_path / "p.json")
    published = snapshot_features(accounts, payments)
    publish_file(lambda tmp: published.to_parquet(tmp, index=False), path)
    app = create_app(settings, api_settings=ApiSettings(prediction_log=False))
    with TestClient(app) as client:
        wait_ready(client)
        yield client, accounts["customer_id"].iloc[1], accounts["customer_id"].iloc[2]


def test_page_and_api_show_a_customers_amounts_per_currency(accounts_app):
    client, mixed, single = accounts_app
    answer = client.get(f"/v1/customers/{mixed}/churn").json()
    assert answer["amounts"] == {"amount_paid": {"EUR": 20.0, "USD": 150.0},
                                 "amount_refunded": {}}
    page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", client.get(f"/ui/customers/{mixed}").text))
    assert "Amount paid €20.00 + $150.00" in page
    assert "$170" not in page and "170.00" not in page
    answer = client.get(f"/v1/customers/{single}/churn").json()
    assert answer["amounts"] == {"amount_paid": {"USD": 50.0}, "amount_refunded": {"USD": 10.0}}
    page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", client.get(f"/ui/customers/{single}").text))
    assert "Amount paid $50.00" in page and "Amount refunded $10.00" in page
