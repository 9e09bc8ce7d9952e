"""The prediction API against small real models registered in a temporary MLflow store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from litestar.testing import AsyncTestClient, TestClient
from mlflow import MlflowClient

from api.app import create_app
from api.config import ACTIVITY_CHURN, LEAD_CONVERSION, PLAN, SNAPSHOT_CHURN, ApiSettings
from api.metrics import ApiMetrics
from leadscore_core.money import payment_currencies_path, publish_payment_currencies
from leadscore_core.registry import ModelRegistry
from leadscore_core.serving import ModelBundle
from leadscore_core.settings import Settings
from tests.support.api_models import (
    LEAD_FEATURES,
    PLANS,
    customer_frame,
    lead_frame,
    lead_model,
    leads_payload,
    make_settings,
    register,
    wait_ready,
    with_data_dir,
    write_snapshot,
)
from tests.support.predlog import read_entries, sealed_files

# -- predictions -----------------------------------------------------------------------------


def test_lead_scores_equal_the_registered_models_own_predictions(client, store):
    frame = lead_frame(60, 99)
    response = client.post("/v1/leads/score", json=leads_payload(frame))
    assert response.status_code == 200, response.text
    body = response.json()
    version = store["versions"][LEAD_CONVERSION]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{LEAD_CONVERSION}/{version}")
    expected = pyfunc.predict(frame)
    np.testing.assert_allclose([r["probability"] for r in body], expected["probability"],
                               rtol=0, atol=1e-12)
    assert [r["score"] for r in body] == expected["score"].tolist()
    assert [r["tier"] for r in body] == expected["tier"].tolist()
    assert {(r["model"], r["version"]) for r in body} == {(LEAD_CONVERSION, version)}
    # one lead at a time takes the single-row path: the same numbers
    for i in range(5):
        one = client.post("/v1/leads/score", json=leads_payload(frame.iloc[[i]])[0]).json()
        assert one["probability"] == pytest.approx(expected["probability"][i], abs=1e-12)
        assert one["raw_score"] == pytest.approx(body[i]["raw_score"], abs=1e-12)
        assert one["reasons_for"] == body[i]["reasons_for"]


def check_reasons(body: list[dict], bundle: ModelBundle, X: np.ndarray,
                  contrib: np.ndarray | None) -> None:
    """Reasons point the right way, come from the model's features, and with the base value
    add up to the model's raw score wherever every non-zero contribution is listed."""
    raw = bundle.raw_score(X)
    by_original = {s.original_name: j for j, s in enumerate(bundle.encoder.specs)}
    complete = 0
    for i, lead in enumerate(body):
        assert lead["raw_score"] == pytest.approx(raw[i], abs=1e-9)
        listed = lead["reasons_for"] + lead["reasons_against"]
        assert 1 <= len(listed) <= 6
        assert all(r["contribution"] > 0 for r in lead["reasons_for"])
        assert all(r["contribution"] < 0 for r in lead["reasons_against"])
        assert {r["feature"] for r in listed} <= set(by_original)
        if contrib is not None:
            assert lead["base_value"] == pytest.approx(contrib[i, -1], abs=1e-12)
            for reason in listed:
                assert reason["contribution"] == pytest.approx(
                    contrib[i, by_original[reason["feature"]]], abs=1e-12)
        if len(listed) == 5:  # every feature of this model is listed
            complete += 1
            total = lead["base_value"] + sum(r["contribution"] for r in listed)
            assert total == pytest.approx(raw[i], abs=1e-9)
    assert complete >= 5  # the identity was checked on real rows, not vacuously


def test_path_reasons_sum_with_the_base_value_to_the_raw_score(client, store):
    frame = lead_frame(60, 98)
    body = client.post("/v1/leads/score", json=leads_payload(frame)).json()
    bundle = store["bundles"][LEAD_CONVERSION]
    check_reasons(body, bundle, bundle.encoder.transform_frame(frame), None)


def same_reasons(served: list[dict], explained: list) -> None:
    """The served reasons are the explainer's, in its order, with the same contributions;
    only a blank field that does not move the score is left out for people."""
    answer = [(r["feature"], r["value"], r["contribution"]) for r in served]
    kept = [(r.feature, r.value, r.contribution) for r in explained]
    assert answer == [k for k in kept if k in answer or k[1] is not None]


def test_reasons_are_the_one_explainers_as_batch_scoring_gives_them(client, store):
    frame = lead_frame(60, 97)
    body = client.post("/v1/leads/score", json=leads_payload(frame)).json()
    bundle = store["bundles"][LEAD_CONVERSION]
    X = bundle.encoder.transform_frame(frame)
    contrib = bundle.explainer.contributions(X)[:, 0]
    check_reasons(body, bundle, X, contrib)
    for lead, expected in zip(body, bundle.explain(X), strict=True):
        for side in ("reasons_for", "reasons_against"):
            same_reasons(lead[side], getattr(expected, side))


def test_a_batch_gives_each_lead_the_reasons_it_gets_alone_spelt_as_it_was_sent(client):
    leads = leads_payload(lead_frame(40, 95))
    spellings = [str.upper, str.lower, lambda v: f"  {v}  ", lambda v: v]
    for i, lead in enumerate(leads):  # the same category sent in several spellings
        lead["business_type"] = spellings[i % 4](lead["business_type"])
    batch = client.post("/v1/leads/score", json=leads).json()
    texts = set()
    for lead, answer in zip(leads, batch, strict=True):
        alone = client.post("/v1/leads/score", json=lead).json()
        for side in ("reasons_for", "reasons_against"):
            assert answer[side] == alone[side]
            texts.update(r["text"] for r in answer[side] if r["feature"] == "Business Type")
    assert {"Business Type is CAFE", "Business Type is cafe"} <= texts


def test_single_lead_gets_an_object_with_values_named_as_in_the_export(client):
    lead = {"id": "lead-1", "business_type": " CAFE ", "business_size": "50+",
            "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand"}
    response = client.post("/v1/leads/score", json=lead)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "lead-1" and 0 <= body["score"] <= 100 and body["tier"] in "ABCD"
    reasons = body["reasons_for"] + body["reasons_against"]
    assert {"feature", "value", "contribution"} <= set(reasons[0])
    named = {r["feature"]: r["value"] for r in reasons}
    assert named.get("Business Type", "cafe") == "cafe"  # normalised, under the export name


def test_unknown_category_is_scored_as_unseen(client):
    base = {"business_size": "6-20", "utm_medium": "email"}
    unseen = client.post("/v1/leads/score", json={**base, "business_type": "Zoo"}).json()
    missing = client.post("/v1/leads/score", json=base).json()
    assert unseen["probability"] == missing["probability"]


def test_plan_recommendation_has_price_and_every_plans_probability(client, store):
    frame = lead_frame(20, 97)
    body = client.post("/v1/leads/plan", json=leads_payload(frame)).json()
    bundle = store["bundles"][PLAN]
    expected = bundle.predict_frame(frame)
    for i, rec in enumerate(body):
        assert set(rec["probabilities"]) == set(PLANS)
        assert sum(rec["probabilities"].values()) == pytest.approx(1.0)
        assert rec["plan"] == PLANS[int(np.argmax(expected[i]))]
        np.testing.assert_allclose([rec["probabilities"][p] for p in PLANS], expected[i],
                                   atol=1e-12)
    prices = {"Business": 150, "Elite": 250, "MVP": 350, "Now": 500}
    assert all(rec["monthly_price"] == prices[rec["plan"]] for rec in body)


def test_plan_prices_follow_the_currencies_the_payments_are_in(client, store):
    """None declared: no payment published, no currency; payments in JPY and USD bought
    plans, both named and none chosen; then only USD, and the answer says USD."""
    lead = leads_payload(lead_frame(1, 5))
    before = client.post("/v1/leads/plan", json=lead).json()[0]
    assert (before["currency"], before["currencies"]) == (None, [])
    snapshot = store["data_dir"] / "serving" / "snapshot.parquet"
    for landed, answer in (({"JPY": 1, "USD": 4}, (None, ["JPY", "USD"])),
                           ({"USD": 4}, ("USD", ["USD"]))):
        publish_payment_currencies({"landed": landed, "matched": landed}, snapshot)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rec = client.post("/v1/leads/plan", json=lead).json()[0]
            if (rec["currency"], rec["currencies"]) == answer:
                break
            time.sleep(0.05)
        assert (rec["currency"], rec["currencies"]) == answer
    payment_currencies_path(snapshot).unlink()


def test_posted_customer_churn_uses_risk_thresholds(client, store):
    frame = customer_frame(30, 96)
    body = client.post("/v1/customers/churn", json=leads_payload(frame)).json()
    expected = store["bundles"][SNAPSHOT_CHURN].predict_frame(frame)
    np.testing.assert_allclose([r["probability"] for r in body], expected, atol=1e-12)
    for r in body:  # the project-wide defaults, LEADSCORE_CHURN_HIGH / _MEDIUM
        want = "High" if r["probability"] >= 0.6 else (
            "Medium" if r["probability"] >= 0.3 else "Low")
        assert r["risk"] == want


def test_churn_thresholds_come_from_the_settings_the_batch_scores_use(store):
    from leadscore_assets.scores.assets import CustomerRiskConfig

    settings = make_settings(store, churn_high=0.45, churn_medium=0.4)
    assert CustomerRiskConfig().thresholds(settings) == (0.45, 0.4)
    assert CustomerRiskConfig(high_threshold=0.9).thresholds(settings) == (0.9, 0.4)
    frame = customer_frame(40, 95)
    app = create_app(settings, api_settings=ApiSettings(models=SNAPSHOT_CHURN,
                                                        prediction_log=False))
    with TestClient(app) as c:
        wait_ready(c)
        body = c.post("/v1/customers/churn", json=leads_payload(frame)).json()
    for r in body:
        want = "High" if r["probability"] >= 0.45 else (
            "Medium" if r["probability"] >= 0.4 else "Low")
        assert r["risk"] == want


def test_lead_tiers_follow_the_boundaries_the_batch_scores_publish(store, tmp_path):
    from leadscore_assets.scores.assets import publish_file
    from leadscore_core.tiers import lead_tiers_document, lead_tiers_path

    settings = Settings(data_dir=tmp_path, mlflow_tracking_uri=store["uri"])
    path = lead_tiers_path(settings.serving_snapshot)
    version = store["versions"][LEAD_CONVERSION]
    frame = lead_frame(80, 97)
    expected = store["bundles"][LEAD_CONVERSION].tier(
        ModelBundle.score(store["bundles"][LEAD_CONVERSION].predict_frame(frame)))

    def publish(doc: dict) -> None:
        publish_file(lambda tmp: Path(tmp).write_text(json.dumps(doc)), path)

    def tiers_after_refresh(c, want) -> list[str]:
        deadline = time.monotonic() + 10
        while True:
            body = c.post("/v1/leads/score", json=leads_payload(frame)).json()
            got = [r["tier"] for r in body]
            if got == want(body) or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def by_published(body: list[dict]) -> list[str]:
        # boundaries 10, 20, 90: a score on a boundary belongs to the tier above
        return ["A" if r["score"] >= 90 else "B" if r["score"] >= 20 else
                "C" if r["score"] >= 10 else "D" for r in body]

    app = create_app(settings, api_settings=ApiSettings(models=LEAD_CONVERSION, poll_seconds=0.1,
                                                        prediction_log=False))
    with TestClient(app) as c:
        wait_ready(c)
        # nothing published yet: the bundle's own boundaries
        assert [r["tier"] for r in c.post("/v1/leads/score",
                                          json=leads_payload(frame)).json()] == expected
        publish(lead_tiers_document(LEAD_CONVERSION, version, [10, 20, 90], open_leads=12))
        got = tiers_after_refresh(c, by_published)
        assert got == by_published(c.post("/v1/leads/score", json=leads_payload(frame)).json())
        assert got != expected  # the published boundaries changed some tiers
        one = c.post("/v1/leads/score", json=leads_payload(frame.iloc[[0]])[0]).json()
        assert one["tier"] == by_published([one])[0]
        # boundaries of another version are not applied to this one
        publish(lead_tiers_document(LEAD_CONVERSION, "999", [10, 20, 90], open_leads=12))
        assert tiers_after_refresh(c, lambda body: expected) == expected
        publish(lead_tiers_document(LEAD_CONVERSION, version, [10, 20, 90], open_leads=12))
        assert tiers_after_refresh(c, by_published) != expected
        path.unlink()
        assert tiers_after_refresh(c, lambda body: expected) == expected


def test_lead_tiers_document_rejects_boundaries_that_are_not_three_ascending_scores():
    from leadscore_core.tiers import lead_tiers_document

    with pytest.raises(ValueError, match="three ascending"):
        lead_tiers_document(LEAD_CONVERSION, "1", [30, 20, 10], open_leads=3)
    with pytest.raises(ValueError, match="three ascending"):
        lead_tiers_document(LEAD_CONVERSION, "1", [10, 20], open_leads=3)


def test_an_account_customer_is_known_before_its_spellings_are_published(model_store,
                                                                         tmp_path):
    """Before ``scores/customers`` publishes the accounts as their files spelled them, a
    customer only the account snapshots know is answered from the features stage's
    snapshot; afterwards from the published accounts."""
    import pandas

    from api.config import SNAPSHOT_CHURN
    from leadscore_core.published import customer_accounts_path
    from tests.support.ui import publish_customers

    store = with_data_dir(model_store, tmp_path / "data")
    publish_customers(store["data_dir"], store)
    settings = make_settings(store)
    accounts = customer_accounts_path(settings.serving_snapshot)
    frame = pandas.read_parquet(accounts)
    accounts.unlink()
    app = create_app(settings, api_settings=ApiSettings(prediction_log=False))
    with TestClient(app) as client:
        wait_ready(client)
        before = client.get("/v1/customers/7591-ACCT01/churn")
        assert before.status_code == 200, before.text
        assert before.json()["model"] == SNAPSHOT_CHURN
        frame["logins_30d"] = frame["logins_30d"] + 40  # the published accounts differ
        write_snapshot(accounts, frame)
        after = client.get("/v1/customers/7591-ACCT01/churn").json()
        assert after["probability"] != before.json()["probability"]
        assert client.get("/v1/customers/0000-NOBODY/churn").status_code == 404


def test_a_customer_both_churn_models_know_is_answered_by_the_riskier(model_store,
                                                                     tmp_path):
    """As the customer export and pages rank a customer: the higher of the two models'
    churn probabilities, and that model's answer."""
    import pandas

    from api.config import SNAPSHOT_CHURN
    from leadscore_core.published import customer_accounts_path
    from tests.support.ui import publish_customers

    store = with_data_dir(model_store, tmp_path / "data")
    publish_customers(store["data_dir"], store)
    settings = make_settings(store)
    accounts = pandas.read_parquet(customer_accounts_path(settings.serving_snapshot))
    ids = accounts["customer_id"].astype(str).tolist()[:6]
    activity = store["customers"].iloc[:6].copy()
    activity["customer_id"] = ids  # these account customers have invoices too
    activity["recency_days"] = [299.0, 1.0, 299.0, 1.0, 150.0, 5.0]
    activity["frequency"] = [1.0, 39.0, 1.0, 39.0, 10.0, 30.0]
    write_snapshot(store["data_dir"] / "serving" / "snapshot.parquet", activity)
    by_activity = store["bundles"][ACTIVITY_CHURN].predict_frame(activity)
    by_snapshot = store["bundles"][SNAPSHOT_CHURN].predict_frame(accounts.iloc[:6])
    app = create_app(settings, api_settings=ApiSettings(prediction_log=False))
    with TestClient(app) as client:
        wait_ready(client)
        answers = [client.get(f"/v1/customers/{i}/churn").json() for i in ids]
    expected = [(ACTIVITY_CHURN, a) if a >= b else (SNAPSHOT_CHURN, b)
                for a, b in zip(by_activity, by_snapshot, strict=True)]
    assert {m for m, _ in expected} == {ACTIVITY_CHURN, SNAPSHOT_CHURN}  # both cases met
    for answer, (model, probability) in zip(answers, expected, strict=True):
        assert answer["model"] == model
        assert answer["probability"] == pytest.approx(probability, abs=1e-9)


def test_known_customer_churn_reads_the_snapshot_and_follows_its_replacement(model_store,
                                                                          tmp_path):
    store = with_data_dir(model_store, tmp_path / "data")  # a snapshot of this test's own
    customers = store["customers"]
    bundle = store["bundles"][ACTIVITY_CHURN]
    app = create_app(make_settings(store), api_settings=ApiSettings(prediction_log=False))
    with TestClient(app) as client:
        wait_ready(client)
        first = client.get("/v1/customers/17003/churn")
        assert first.status_code == 200, first.text
        expected = bundle.predict_frame(customers.iloc[[3]])[0]
        assert first.json()["probability"] == pytest.approx(expected, abs=1e-12)
        assert first.json()["as_of"] == "2026-01-01"
        assert client.get("/v1/customers/99999/churn").status_code == 404

        changed = customers.copy()
        changed.loc[3, "recency_days"] = 299.0 if customers.loc[3, "recency_days"] < 150 \
            else 1.0
        changed["as_of"] = "2026-02-01"
        write_snapshot(store["data_dir"] / "serving" / "snapshot.parquet", changed)
        second = client.get("/v1/customers/17003/churn").json()
        assert second["as_of"] == "2026-02-01"
        assert second["probability"] == pytest.approx(
            bundle.predict_frame(changed.iloc[[3]])[0], abs=1e-12)
        assert second["probability"] != first.json()["probability"]


def test_models_endpoint_lists_versions_training_time_and_metrics(client, store):
    models = {m["name"]: m for m in client.get("/v1/models").json()}
    assert set(models) == {LEAD_CONVERSION, PLAN, SNAPSHOT_CHURN, ACTIVITY_CHURN}
    lead = models[LEAD_CONVERSION]
    assert lead["status"] == "serving"
    assert lead["version"] == store["versions"][LEAD_CONVERSION]
    assert lead["trained_at"] == "2026-01-02T03:04:05+00:00"
    assert lead["metrics"] == {"roc_auc": 0.8}


def test_request_schema_follows_profile_and_model_fields(client):
    spec = client.get("/schema/openapi.json").json()
    schemas = spec["components"]["schemas"]
    customer = schemas["Customer"]["properties"]
    # declared by the saas_accounts profile, typed by kind
    assert customer["tenure_months"]["oneOf"][0]["type"] == "number"
    assert customer["auto_renew"]["oneOf"][0]["type"] == "boolean"
    assert customer["plan"]["oneOf"][0]["type"] == "string"
    # known only from the model's own features
    assert "failed_payments_90d" in customer
    lead = schemas["Lead"]["properties"]
    assert set(LEAD_FEATURES) <= set(lead)


# -- bad input -------------------------------------------------------------------------------


def test_wrong_type_is_a_400_naming_the_field(client):
    response = client.post("/v1/customers/churn", json={"tenure_months": "twelve"})
    assert response.status_code == 400
    body = response.json()
    assert body["extra"][0]["field"] == "tenure_months"
    assert "float" in body["extra"][0]["reason"]
    batch = client.post("/v1/leads/score", json=[{"business_size": "1-5"},
                                                 {"business_size": 5}])
    assert batch.status_code == 400
    assert batch.json()["extra"][0]["field"] == "[1].business_size"


def test_missing_body_and_non_object_rows_are_400(client):
    empty = client.post("/v1/leads/score", content=b"", headers={"content-type":
                                                                  "application/json"})
    assert empty.status_code == 400, empty.text
    assert empty.json()["extra"] == [{"field": "body",
                                      "reason": "a JSON request body is required"}]
    not_json = client.post("/v1/leads/score", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    numbers = client.post("/v1/leads/score", json=[1, 2])
    assert numbers.status_code == 400


def test_out_of_range_number_is_400_and_non_finite_text_counts_as_missing(client):
    overflow = client.post("/v1/customers/churn", content=b'{"tenure_months": 1e999}',
                           headers={"content-type": "application/json"})
    assert overflow.status_code == 400
    base = {"logins_30d": 3, "support_tickets_90d": 4}
    missing = client.post("/v1/customers/churn", json=base).json()["probability"]
    given = client.post("/v1/customers/churn", json={**base, "tenure_months": 40}).json()
    assert given["probability"] != missing  # the field matters to this model
    for text in ("inf", "-Infinity", "nan"):
        response = client.post("/v1/customers/churn", json={**base, "tenure_months": text})
        assert response.status_code == 200, (text, response.text)
        assert response.json()["probability"] == missing


def test_batch_over_the_limit_is_413(store):
    app = create_app(make_settings(store), api_settings=ApiSettings(max_batch=5,
                                                                    prediction_log=False))
    with TestClient(app) as c:
        wait_ready(c)
        ok = c.post("/v1/leads/score", json=[{"business_size": "1-5"}] * 5)
        too_many = c.post("/v1/leads/score", json=[{"business_size": "1-5"}] * 6)
    assert ok.status_code == 200
    assert too_many.status_code == 413
    assert "6" in too_many.json()["detail"] and "5" in too_many.json()["detail"]


# -- operations ------------------------------------------------------------------------------


def test_api_key_protects_predictions_but_not_health(store):
    app = create_app(make_settings(store, api_key="s3cret"),
                     api_settings=ApiSettings(models=LEAD_CONVERSION, prediction_log=False))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        wait_ready(c)
        lead = {"business_size": "1-5"}
        assert c.post("/v1/leads/score", json=lead).status_code == 401
        assert c.post("/v1/leads/score", json=lead,
                      headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/v1/leads/score", json=lead,
                      headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/metrics").status_code == 401


def test_metrics_count_requests_per_endpoint_and_version(client, store):
    client.post("/v1/leads/score", json={"business_size": "1-5"})
    text = client.get("/metrics").text
    version = store["versions"][LEAD_CONVERSION]
    assert (f'leadscore_api_requests_total{{endpoint="/v1/leads/score",method="POST",'
            f'model="{LEAD_CONVERSION}",status="200",version="{version}"}}') in text
    assert "leadscore_api_request_duration_seconds_bucket" in text
    assert f'leadscore_api_prediction_probability_count{{model="{LEAD_CONVERSION}"' in text


def test_a_batchs_probabilities_are_counted_as_one_by_one_observations():
    from prometheus_client import generate_latest

    values = [0.0, 0.05, 0.1, 0.1000001, 0.35, 0.5, 0.99, 1.0] * 5 + [0.42]
    one_by_one, at_once = ApiMetrics(), ApiMetrics()
    for p in values:
        one_by_one._child(one_by_one.probability, "m", "1").observe(p)
    at_once.observe_predictions("m", "1", values, ["A"] * len(values))
    buckets = [line for line in generate_latest(at_once.registry).decode().splitlines()
               if line.startswith("leadscore_api_prediction_probability_")
               and "_created" not in line]
    assert len(buckets) == 13  # ten buckets, +Inf, count and sum
    expected = generate_latest(one_by_one.registry).decode()
    for line in buckets:
        name, value = line.rsplit(" ", 1)
        theirs = next(x for x in expected.splitlines() if x.startswith(name + " "))
        assert float(value) == pytest.approx(float(theirs.rsplit(" ", 1)[1]), rel=1e-12)


def test_ready_is_503_until_every_model_is_loaded(store_copy, tmp_path):
    client = MlflowClient(tracking_uri=store_copy, registry_uri=store_copy)
    version = str(client.get_model_version_by_alias(LEAD_CONVERSION, "champion").version)
    client.delete_registered_model_alias(LEAD_CONVERSION, "champion")
    settings = Settings(data_dir=tmp_path / "data", mlflow_tracking_uri=store_copy)
    app = create_app(settings, api_settings=ApiSettings(models=f"{LEAD_CONVERSION},{PLAN}",
                                                         poll_seconds=0.1))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        deadline = time.monotonic() + 20
        # the first look at the registry decides what is missing
        while (c.get("/ready").json()["models"][LEAD_CONVERSION] == "loading"
               and time.monotonic() < deadline):
            time.sleep(0.05)
        not_ready = c.get("/ready")
        assert not_ready.status_code == 503
        assert not_ready.json() == {"ready": False, "models": {
            LEAD_CONVERSION: "no version has the alias 'champion'", PLAN: "1"}}
        assert c.post("/v1/leads/score", json={"business_size": "1-5"}).status_code == 503
        assert c.post("/v1/leads/plan", json={"business_size": "1-5"}).status_code == 200
        client.set_registered_model_alias(LEAD_CONVERSION, "champion", version)
        wait_ready(c, timeout=20)
        assert c.get("/ready").json() == {"ready": True, "models": {LEAD_CONVERSION: version,
                                                                    PLAN: "1"}}
        assert c.post("/v1/leads/score", json={"business_size": "1-5"}).status_code == 200


def test_every_prediction_is_logged_and_flushed_on_shutdown(store, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", mlflow_tracking_uri=store["uri"])
    app = create_app(settings, api_settings=ApiSettings(models=LEAD_CONVERSION))
    with TestClient(app) as c:
        wait_ready(c)
        c.post("/v1/leads/score", json=[{"id": f"l{i}", "business_size": "1-5"}
                                        for i in range(25)])
        c.post("/v1/leads/score", json={"id": "single", "utm_source": "google"})
    files = sealed_files(settings.inbox("predictions"))  # sealed into the log's inbox
    entries = [e for f in files for e in read_entries(f)]
    assert len(entries) == 26
    assert {e["model"] for e in entries} == {LEAD_CONVERSION}
    single = next(e for e in entries if e["inputs"].get("id") == "single")
    assert single["inputs"]["utm_source"] == "google"
    assert 0 <= single["outputs"]["probability"] <= 1


def test_promotion_under_load_switches_version_without_a_failed_request(store_copy, tmp_path):
    uri = store_copy
    first = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        LEAD_CONVERSION, "champion").version
    first = str(first)
    second = register(uri, LEAD_CONVERSION, lead_model(seed=1), tmp_path, promote=False)
    settings = Settings(data_dir=tmp_path / "data", mlflow_tracking_uri=uri)
    app = create_app(settings, api_settings=ApiSettings(models=LEAD_CONVERSION,
                                                         poll_seconds=0.1,
                                                         prediction_log=False))
    leads = leads_payload(lead_frame(5, 3))

    async def scenario() -> tuple[list[tuple[int, str]], float]:
        results: list[tuple[int, str, float]] = []
        promoted_at = 0.0
        async with AsyncTestClient(app) as c:
            for _ in range(400):
                if (await c.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            stop = asyncio.Event()

            async def load() -> None:
                while not stop.is_set():
                    r = await c.post("/v1/leads/score", json=leads)
                    version = r.json()[0]["version"] if r.status_code == 200 else ""
                    results.append((r.status_code, version, time.monotonic()))
                    # The in-process transport never waits on a socket: yield like one would.
                    await asyncio.sleep(0)

            workers = [asyncio.create_task(load()) for _ in range(8)]
            await asyncio.sleep(0.3)
            promoted_at = time.monotonic()
            await asyncio.to_thread(ModelRegistry(uri).promote, LEAD_CONVERSION, second)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(v == second for _, v, _ in results):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*workers)
        return results, promoted_at

    results, promoted_at = asyncio.run(scenario())
    assert results and all(status == 200 for status, _, _ in results)
    versions = [v for _, v, _ in results]
    assert set(versions) == {first, second}
    switched = versions.index(second)
    assert all(v == second for v in versions[switched:])  # no flapping back
    assert all(t < promoted_at + 20 for *_, t in results)
    assert sum(v == first for v in versions) > 0 and sum(v == second for v in versions) > 0


def test_every_score_states_its_horizon_from_the_settings_the_labels_use(client, store):
    lead = client.post("/v1/leads/score", json=leads_payload(lead_frame(1, 96))[0]).json()
    assert lead["horizon"] == "converts (pays) within 30 days of the lead arriving"
    churn = client.post("/v1/customers/churn",
                        json=leads_payload(customer_frame(1, 97))).json()
    assert churn[0]["horizon"] == "churns (buys and pays nothing) within the next 90 days"

    from leadscore_assets.features.assets import ActivityFeaturesConfig, LeadFeaturesConfig

    settings = make_settings(store, lead_window_days=14, churn_horizon_days=60)
    app = create_app(settings, api_settings=ApiSettings(
        models=f"{LEAD_CONVERSION},{SNAPSHOT_CHURN}", prediction_log=False))
    with TestClient(app) as c:
        wait_ready(c)
        lead = c.post("/v1/leads/score", json=leads_payload(lead_frame(2, 98))).json()
        churn = c.post("/v1/customers/churn", json=leads_payload(customer_frame(1, 99))[0]
                       ).json()
    assert {r["horizon"] for r in lead} == {
        "converts (pays) within 14 days of the lead arriving"}
    assert churn["horizon"] == "churns (buys and pays nothing) within the next 60 days"
    # the features stage labels its training rows by the same settings, unless a run says
    assert LeadFeaturesConfig().days() == 30 and LeadFeaturesConfig(window_days=7).days() == 7
    assert ActivityFeaturesConfig().horizon() == 90


def test_a_profile_that_declares_its_horizon_is_stated_over_the_settings(store, tmp_path):
    from leadscore_core.profiles import SHIPPED_DIR

    for name, days in (("webform", 21), ("saas_accounts", 45)):
        shipped = (SHIPPED_DIR / f"{name}.yaml").read_text()
        (tmp_path / f"{name}.yaml").write_text(f"{shipped}\nhorizon_days: {days}\n")
    settings = make_settings(store, profiles_dir=tmp_path, lead_window_days=14)
    app = create_app(settings, api_settings=ApiSettings(
        models=f"{LEAD_CONVERSION},{SNAPSHOT_CHURN}", prediction_log=False))
    with TestClient(app) as c:
        wait_ready(c)
        lead = c.post("/v1/leads/score", json=leads_payload(lead_frame(1, 100))[0]).json()
        churn = c.post("/v1/customers/churn", json=leads_payload(customer_frame(1, 101))[0]
                       ).json()
        page = c.get("/ui/score").text
    assert lead["horizon"] == "converts (pays) within 21 days of the lead arriving"
    assert churn["horizon"] == ("churns (leaves, as the saas_accounts export's label says) "
                                "within the next 45 days")
    assert "converts within 21 days" in page


def test_suggest_names_the_actionable_change_that_helps_most_and_its_score(client):
    # the lead model rewards utm_medium = cpc; utm_medium and utm_campaign are the webform
    # profile's actionable features
    lead = {"business_type": "Gym", "business_size": "21-50", "utm_source": "google",
            "utm_medium": "email", "utm_campaign": "spring"}
    plain = client.post("/v1/leads/score", json=lead).json()
    assert plain["suggestion"] is None  # only when asked
    body = client.post("/v1/leads/score?suggest=true", json=lead).json()
    suggestion = body["suggestion"]
    # named as in the export (this test's models title-case their column names)
    field = suggestion["feature"].lower().replace(" ", "_")
    assert field in ("utm_medium", "utm_campaign")
    assert suggestion["value"] == lead[field]
    assert suggestion["probability"] > body["probability"]
    after = client.post("/v1/leads/score", json={**lead, field: suggestion["change_to"]}).json()
    assert after["probability"] == pytest.approx(suggestion["probability"])
    assert after["score"] == suggestion["score"]

    # churn: the change that lowers the risk most (saas_accounts: auto_renew, logins, ...)
    customer = {"business_type": "Gym", "plan": PLANS[0], "tenure_months": 3.0,
                "logins_30d": 1.0, "support_tickets_90d": 4.0, "auto_renew": False,
                "failed_payments_90d": 2.0}
    risk = client.post("/v1/customers/churn?suggest=true", json=[customer]).json()[0]
    suggestion = risk["suggestion"]
    field = suggestion["feature"].lower().replace(" ", "_")
    assert field in ("auto_renew", "logins_30d", "plan")
    assert suggestion["probability"] < risk["probability"]
    again = client.post("/v1/customers/churn", json={**customer, field: suggestion["change_to"]}
                        ).json()
    assert again["probability"] == pytest.approx(suggestion["probability"])
    assert again["risk"] == suggestion["risk"]


# -- every candidate kind ---------------------------------------------------------------------


def candidate_bundle(kind: str) -> ModelBundle:
    """The lead model's data as a logistic or a blend candidate, as training builds them."""
    from leadscore_assets.models.candidates import linear_decision
    from leadscore_assets.models.training import TrainConfig, fit_baseline
    from leadscore_core.explain import LinearPart

    tree = lead_model(3)
    frame = lead_frame(800, 3)
    X = tree.encoder.transform_frame(frame)
    y = (tree.predict_proba(X) > 0.5).astype(int)
    linear = LinearPart.from_decision(
        linear_decision(fit_baseline(tree.encoder, X, y, TrainConfig()), "binary", 2),
        tree.encoder, X)
    bundle = ModelBundle(booster=None if kind == "logistic" else tree.booster,
                         linear=linear, tree_weight=0.5, encoder=tree.encoder, task="binary",
                         classes=["0", "1"], calibration={"method": "platt", "a": 0.7, "b": 0.1},
                         metadata={"trained_at": "2026-01-02T03:04:05+00:00",
                                   "candidate": {"chosen": kind}})
    bundle.set_tier_boundaries(ModelBundle.score(bundle.predict_proba(X)))
    return bundle


@pytest.mark.parametrize("kind", ["logistic", "blend"])
def test_every_candidate_kind_is_served_with_its_reasons(kind, store, store_copy):
    bundle = candidate_bundle(kind)
    version = register(store_copy, LEAD_CONVERSION, bundle, store["tmp"])
    settings = Settings(data_dir=store["data_dir"], mlflow_tracking_uri=store_copy)
    app = create_app(settings, api_settings=ApiSettings(models=LEAD_CONVERSION,
                                                         prediction_log=False))
    frame = lead_frame(40, 55)
    X = bundle.encoder.transform_frame(frame)
    expected = bundle.explain(X)
    with TestClient(app) as c:
        wait_ready(c)
        body = c.post("/v1/leads/score", json=leads_payload(frame)).json()
        singles = [c.post("/v1/leads/score", json=leads_payload(frame.iloc[[i]])[0]).json()
                   for i in range(5)]
    assert {(r["model"], r["version"]) for r in body} == {(LEAD_CONVERSION, version)}
    np.testing.assert_allclose([r["probability"] for r in body], bundle.predict_proba(X),
                               atol=1e-12)
    check_reasons(body, bundle, X, bundle.explainer.contributions(X)[:, 0])
    for lead, e in zip(body, expected, strict=True):
        same_reasons(lead["reasons_for"], e.reasons_for)
        same_reasons(lead["reasons_against"], e.reasons_against)
    for i, one in enumerate(singles):
        assert one["probability"] == pytest.approx(body[i]["probability"], abs=1e-12)
        assert one["reasons_for"] == body[i]["reasons_for"]
        assert one["reasons_against"] == body[i]["reasons_against"]
