"""The clean assets and their checks run for real: landed files, a DuckDB file, alerts over HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import AlertChannel
from leadscore_assets.clean.assets import CLEAN_ASSETS
from leadscore_assets.clean.checks import CLEAN_CHECKS, RAW_FRESHNESS, with_raw_freshness
from leadscore_assets.ingest.assets import RAW_ASSETS, land_file
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.resources import SettingsResource
from leadscore_assets.schemas import CleanInvoices, validate
from leadscore_core.money import payment_currencies_path, plan_price_currency
from leadscore_core.profiles import SHIPPED_DIR
from tests.support.webhook import Receiver


def webform_leads(path: Path) -> list[str]:
    emails = [f"lead{i}@example.com" for i in range(20)]
    rows = [{"submitted_at": f"2026-01-{1 + i % 28:02d} 10:00", "email": e.upper() if i == 3
             else e, "name": "N", "company": "C", "business_type": [" Cafe", "GYM"][i % 2],
             "business_size": "1-10", "utm_source": "google", "utm_medium": "cpc",
             "utm_campaign": "", "message": "hello"} for i, e in enumerate(emails)]
    rows.append({**rows[0], "email": "  "})  # a lead with no id
    pd.DataFrame(rows).to_csv(path, index=False)
    return emails


def stripe_charges(path: Path, emails: list[str]) -> None:
    def charge(i: int, amount: int, currency: str = "usd", **extra) -> dict:
        return {"id": f"ch_{i}", "object": "charge", "amount": amount, "amount_refunded": 0,
                "created": 1767225600 + i * 3600, "currency": currency, "status": "succeeded",
                "refunded": False, "disputed": False, "customer": f"cus_{i}",
                "billing_details": {"email": emails[i % len(emails)]}, **extra}
    objects = [charge(i, 15000) for i in range(8)]
    objects += [charge(8, 54900), charge(9, 500, "jpy"),
                charge(10, -15000), charge(11, 15000, "zzz")]
    path.write_text(json.dumps({"object": "list", "data": objects}))


@pytest.fixture(scope="module")
def run_receiver():
    """The webhook of the module's shared run (other tests take a receiver of their own)."""
    r = Receiver()
    yield r
    r.close()


def land(landing: LandingZone, warehouse: DuckDBResource, source: str, path: Path) -> None:
    inbox = landing.inbox(source)
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, inbox / path.name)
    assert land_file(source, path.name, landing=landing, warehouse=warehouse).success


@pytest.fixture(scope="module")
def run(tmp_path_factory, shared_data: Path, run_receiver: Receiver):
    """Four sources landed (good and bad rows), then every clean asset and check materialised."""
    tmp = tmp_path_factory.mktemp("clean_run")
    data, files = tmp / "data", tmp / "files"
    files.mkdir()
    landing = LandingZone(root=str(data))
    warehouse = DuckDBResource(database=str(tmp / "warehouse.duckdb"))

    emails = webform_leads(files / "signups.csv")
    stripe_charges(files / "charges.json", emails)
    retail = pd.read_csv(shared_data / "online_retail_uci.csv.gz", dtype=str,
                         keep_default_na=False, nrows=2_020)
    retail.iloc[:1000].to_csv(files / "invoices_1.csv", index=False)
    retail.iloc[1000:2000].to_csv(files / "invoices_2.csv", index=False)
    retail.iloc[2000:].to_csv(files / "invoices_3.csv", index=False)  # far smaller export
    telco = pd.read_csv(shared_data / "telco_customer_churn.csv", dtype=str,
                        keep_default_na=False, nrows=200)
    telco.to_csv(files / "accounts.csv", index=False)

    land(landing, warehouse, "leads", files / "signups.csv")
    land(landing, warehouse, "payments", files / "charges.json")
    for n in (1, 2, 3):
        land(landing, warehouse, "invoices", files / f"invoices_{n}.csv")
    land(landing, warehouse, "customers", files / "accounts.csv")

    alerts = AlertChannel(webhook_url=run_receiver.url, log_path=str(data / "alerts.jsonl"),
                          ui_url="http://dagster.test")
    result = dg.materialize(
        [*CLEAN_ASSETS.values(), *CLEAN_CHECKS],
        resources={"warehouse": warehouse, "alerts": alerts,
                   "settings": SettingsResource(data_dir=str(data), lead_profile="webform",
                                                customer_profile="telco")},
        raise_on_error=False,
    )
    with duckdb.connect(str(tmp / "warehouse.duckdb"), read_only=True) as conn:
        tables = {t: conn.sql(f"SELECT * FROM {t}").df() for t in (
            "clean.leads", "clean.payments", "clean.invoices", "clean.customers",
            "quarantine.leads", "quarantine.payments", "quarantine.invoices")}
        types = dict(conn.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'clean' "
            "AND table_name = 'payments'").fetchall())
    checks = {(e.asset_key.path[-1], e.check_name): e
              for e in result.get_asset_check_evaluations()}
    return result, tables, types, checks, alerts, list(run_receiver.bodies), data


def test_run_succeeds_and_good_rows_land(run):
    result, tables, types, *_ = run
    assert result.success
    assert len(tables["clean.leads"]) == 20
    assert "lead3@example.com" in set(tables["clean.leads"]["email"])  # lower-cased
    assert set(tables["clean.leads"]["business_type"]) == {"cafe", "gym"}
    payments = tables["clean.payments"].set_index("payment_id")
    assert sorted(payments.index) == sorted([f"ch_{i}" for i in range(10)])
    assert payments.loc["ch_8", "plan"] == "Business" and payments.loc["ch_8", "setup_fee"]
    assert float(payments.loc["ch_9", "amount"]) == 500.0  # JPY has no minor unit
    assert types["amount"] == "DECIMAL(18,4)" and types["created_at"] == "TIMESTAMP"
    assert len(tables["clean.customers"]) == 200


def test_bad_rows_quarantined_with_rule(run):
    _, tables, *_ = run
    leads = tables["quarantine.leads"]
    assert leads[["rule", "_source_file", "_row_number"]].values.tolist() == [
        ["missing_id", "signups.csv", 21]]
    payments = tables["quarantine.payments"].set_index("rule")
    assert payments.loc["negative_amount", "value"] == "-15000"
    assert payments.loc["unknown_currency", "value"] == "zzz"
    assert json.loads(payments.loc["unknown_currency", "record"])["id"] == "ch_11"


def test_blocking_checks_pass(run):
    _, _, _, checks, *_ = run
    for source in ("leads", "payments", "invoices", "customers"):
        for name in ("schema", "raw_rows_accounted_for"):
            evaluation = checks[(source, name)]
            assert evaluation.passed, (source, name, evaluation.description)
            assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    accounted = checks[("invoices", "raw_rows_accounted_for")].metadata
    assert accounted["raw_rows"].value == 2_020
    assert accounted["unaccounted_rows"].value == 0


def test_warning_checks(run):
    _, _, _, checks, *_ = run
    emails = checks[("payments", "succeeded_payment_emails_match_leads")]
    assert emails.passed and emails.metadata["compared"].value == 10
    size = checks[("invoices", "newest_export_row_count")]
    assert not size.passed and size.severity == dg.AssetCheckSeverity.WARN
    assert size.metadata["newest_file"].value == "invoices_3.csv"
    assert size.metadata["newest_rows"].value == 20
    customers = checks[("invoices", "invoice_customers_exist")]
    assert not customers.passed  # retail customers are not Telco accounts


def test_materialization_metadata_counts_rules(run):
    result, *_ = run
    meta = {e.asset_key.path[-1]: e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert meta["payments"]["rows_in"].value == 12
    assert meta["payments"]["rows_out"].value == 10
    assert meta["payments"]["rule/negative_amount"].value == 1
    assert meta["payments"]["rule/unknown_currency"].value == 1
    assert meta["leads"]["rule/missing_id"].value == 1


def test_payment_currencies_are_published_for_the_prices(run):
    """Nine payments bought a plan in USD and one (500 JPY, JPY has no minor unit) the Now
    plan in JPY: with no currency declared the prices are shown in both, neither chosen."""
    result, *_, data = run
    document = json.loads(payment_currencies_path(data / "serving" / "snapshot.parquet")
                          .read_text())
    assert (document["landed"], document["matched"]) == ({"USD": 9, "JPY": 1},
                                                         {"USD": 9, "JPY": 1})
    currency = plan_price_currency(None, document)
    assert (currency.code, currency.codes) == (None, ("JPY", "USD"))
    [payments] = [e.materialization.metadata for e in result.get_asset_materialization_events()
                  if e.asset_key.path[-1] == "payments"]
    assert json.loads(payments["currencies"].value)["matched"] == {"JPY": 1, "USD": 9}


def test_one_alert_per_failure_reached_the_receiver(run):
    result, tables, _, _, alerts, bodies, _ = run
    by_kind: dict[str, list[dict]] = {}
    for body in bodies:
        by_kind.setdefault(body["kind"], []).append(body)
    quarantined = {b["file"]: b for b in by_kind["rows_quarantined"]}
    # the first retail lines include zero-price lines: their files are told too
    retail_files = set(tables["quarantine.invoices"]["_source_file"])
    assert set(quarantined) == {"signups.csv", "charges.json"} | retail_files
    for file in retail_files:
        rows = tables["quarantine.invoices"].query("_source_file == @file")
        assert sum(quarantined[file]["counts"].values()) == len(rows)
    assert quarantined["charges.json"]["counts"] == {"negative_amount": 1, "unknown_currency": 1}
    assert quarantined["signups.csv"]["asset"] == "clean/leads"
    assert quarantined["signups.csv"]["url"] == f"http://dagster.test/runs/{result.run_id}"
    failed = {(b["asset"], b["check"]) for b in by_kind["check_failed"]}
    assert failed == {("clean/invoices", "newest_export_row_count"),
                      ("clean/invoices", "invoice_customers_exist")}
    assert len(bodies) == len({b["key"] for b in bodies}) == len(quarantined) + 2
    logged = [json.loads(line) for line in Path(alerts.log_path).read_text().splitlines()]
    assert [line["key"] for line in logged] == [b["key"] for b in bodies]
    assert all(line["delivered"] for line in logged)


def test_failing_blocking_check_stops_downstream(tmp_path: Path, shared_data: Path,
                                                 receiver: Receiver):
    # A profile without the `Select` placeholder lets the placeholder through as a category:
    # the schema check fails and what learns from the leads does not run.
    data = tmp_path / "data"
    profiles = data / "profiles"
    profiles.mkdir(parents=True)
    shipped = (SHIPPED_DIR / "xeducation.yaml").read_text()
    (profiles / "xeducation.yaml").write_text(shipped.replace("placeholders: [Select]\n", ""))
    landing = LandingZone(root=str(data))
    warehouse = DuckDBResource(database=str(tmp_path / "w.duckdb"))
    sample = pd.read_csv(shared_data / "xeducation_leads.csv", dtype=str,
                         keep_default_na=False, nrows=50)
    sample.to_csv(tmp_path / "crm.csv", index=False)
    land(landing, warehouse, "leads", tmp_path / "crm.csv")

    @dg.asset(key=["features", "probe"], deps=[dg.AssetKey(["clean", "leads"])])
    def probe() -> None:
        """Stands for what learns from the leads."""

    already = len(receiver.bodies)
    result = dg.materialize(
        [CLEAN_ASSETS["leads"], *[c for c in CLEAN_CHECKS if c.check_key.asset_key.path ==
                                  ["clean", "leads"]], probe],
        resources={"warehouse": warehouse,
                   "alerts": AlertChannel(webhook_url=receiver.url,
                                          log_path=str(data / "alerts.jsonl")),
                   "settings": SettingsResource(data_dir=str(data), lead_profile="xeducation")},
        raise_on_error=False,
    )
    schema = next(e for e in result.get_asset_check_evaluations() if e.check_name == "schema")
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.ERROR
    assert schema.metadata["failing_rows"].value > 0
    assert "categories_normalised" in schema.metadata["failures_by_check"].value
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["features", "probe"]) not in materialized
    new = receiver.bodies[already:]
    assert [(b["kind"], b["check"], b["severity"]) for b in new] == [
        ("check_failed", "schema", "error")]


def test_validate_counts_failing_rows_and_samples_them():
    frame = pd.DataFrame({
        "invoice_no": ["1", "1", "C2", "3"], "stock_code": "A", "description": "X",
        "quantity": [1, 2, -1, 1], "invoice_date": pd.Timestamp("2011-01-01"),
        "unit_price": [1.0, -2.0, 1.0, 1.0], "customer_id": ["1", "1", "2.0", None],
        "country": "UK", "is_return": [False, False, True, False],
        "line_total": [1.0, -4.0, -1.0, 1.0], "_source_file": "f.csv",
        "_row_number": [1, 2, 3, 4], "_ingested_at": pd.Timestamp("2026-01-01"),
    })
    outcome = validate(CleanInvoices, frame)
    assert not outcome.passed
    assert outcome.failing_rows == 2
    assert sorted(outcome.sample["_row_number"]) == [2, 3]
    assert outcome.failures_by_check == {"unit_price:greater_than(0)": 1,
                                         "customer_id:str_matches('^[^\\s.]+$')": 1}
    assert validate(CleanInvoices, frame.drop(index=[1, 2])).passed


def test_raw_sources_get_the_freshness_policy():
    from leadscore_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    policies = {key.to_user_string(): graph.get(key).freshness_policy
                for key in graph.get_all_asset_keys()}
    # the delivered sources; the API's own prediction log is no delivery
    assert {k for k, p in policies.items() if p == RAW_FRESHNESS} == {
        "raw/leads", "raw/payments", "raw/invoices", "raw/customers"}
    assert policies["raw/predictions"] is None
    assert all(p is None for k, p in policies.items() if k.startswith("clean/"))
    assert {spec.key.to_user_string() for a in with_raw_freshness(list(CLEAN_ASSETS.values()))
            for spec in a.specs if spec.freshness_policy} == set()


def test_clean_table_rebuilds_after_a_new_raw_file(tmp_path: Path, shared_data: Path):
    instance = dg.DagsterInstance.ephemeral()
    landing = LandingZone(root=str(tmp_path / "data"))
    warehouse = DuckDBResource(database=str(tmp_path / "w.duckdb"))
    assets = dg.Definitions(
        assets=[*RAW_ASSETS.values(), *CLEAN_ASSETS.values()],
        resources={"landing": landing, "warehouse": warehouse,
                   "settings": SettingsResource(data_dir=str(tmp_path / "data")),
                   "alerts": AlertChannel(log_path=str(tmp_path / "alerts.jsonl"))})
    first = dg.evaluate_automation_conditions(defs=assets, instance=instance)
    assert first.total_requested == 0

    landing.inbox("invoices").mkdir(parents=True)
    pd.read_csv(shared_data / "online_retail_uci.csv.gz", dtype=str, keep_default_na=False,
                nrows=50).to_csv(landing.inbox("invoices") / "day.csv", index=False)
    assert land_file("invoices", "day.csv", landing=landing, instance=instance,
                     warehouse=warehouse).success

    after = dg.evaluate_automation_conditions(defs=assets, instance=instance,
                                              cursor=first.cursor)
    assert after.get_num_requested(dg.AssetKey(["clean", "invoices"])) == 1
    assert after.get_num_requested(dg.AssetKey(["clean", "leads"])) == 0
    again = dg.evaluate_automation_conditions(defs=assets, instance=instance,
                                              cursor=after.cursor)
    assert again.total_requested == 0  # one request per new file, not one per tick


def test_clean_graph_snapshot():
    graph = {
        spec.key.to_user_string(): (sorted(d.asset_key.to_user_string() for d in spec.deps),
                                    spec.group_name, sorted(spec.kinds), asset.op.pool,
                                    spec.automation_condition.get_label())
        for asset in CLEAN_ASSETS.values() for spec in asset.specs
    }
    assert graph == {
        f"clean/{s}": ([f"raw/{s}"], "clean", ["duckdb", "pandas"], "duckdb_writer",
                       "after a new raw file")
        for s in ("leads", "payments", "invoices", "customers")
    }
    checks = {(c.check_key.asset_key.to_user_string(), c.check_key.name): spec.blocking
              for c in CLEAN_CHECKS for spec in c.check_specs}
    blocking = {k for k, b in checks.items() if b}
    assert blocking == {(f"clean/{s}", n) for s in ("leads", "payments", "invoices", "customers")
                        for n in ("schema", "raw_rows_accounted_for")}
    assert len(checks) == 14
