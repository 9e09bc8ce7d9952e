"""The prediction API against small real models registered in a temporary MLflow store."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from litestar.testing import AsyncTestClient, TestClient
from mlflow import MlflowClient

from api.app import create_app
from api.config import ACTIVITY_CHURN, LEAD_CONVERSION, PLAN, SNAPSHOT_CHURN, ApiSettings
from leadscore_core.predlog import closed_files, read_log_file
from leadscore_core.registry import ModelRegistry, ensure_experiment
from leadscore_core.serving import Encoder, LeadscorePyfunc, ModelBundle
from leadscore_core.settings import Settings

LEAD_FEATURES = {"business_type": "categorical", "business_size": "categorical",
                 "utm_source": "categorical", "utm_medium": "categorical",
                 "utm_campaign": "categorical"}
CUSTOMER_FEATURES = {"business_type": "categorical", "plan": "categorical",
                     "tenure_months": "numeric", "logins_30d": "numeric",
                     "support_tickets_90d": "numeric", "auto_renew": "boolean",
                     # a payment aggregate the profile does not declare: only the model knows it
                     "failed_payments_90d": "numeric"}
ACTIVITY_FEATURES = {"recency_days": "numeric", "frequency": "numeric",
                     "monetary": "numeric", "country": "categorical"}
PLANS = ["Business", "Elite", "MVP", "Now"]


# -- small real models -----------------------------------------------------------------------


def lead_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "business_type": rng.choice(["Cafe", "salon", "Gym", "Bakery", "Agency"], n),
        "business_size": rng.choice(["1-5", "6-20", "21-50", "50+"], n),
        "utm_source": rng.choice(["google", "Facebook", "newsletter", None], n),
        "utm_medium": rng.choice(["cpc", "email", "organic"], n),
        "utm_campaign": rng.choice(["spring", "summer", "brand"], n),
    })


def customer_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "business_type": rng.choice(["Cafe", "Salon", "Gym"], n),
        "plan": rng.choice(PLANS, n),
        "tenure_months": rng.integers(0, 48, n).astype(float),
        "logins_30d": rng.poisson(12, n).astype(float),
        "support_tickets_90d": rng.poisson(1, n).astype(float),
        "auto_renew": rng.choice([True, False], n),
        "failed_payments_90d": rng.poisson(0.3, n).astype(float),
    })


def activity_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "recency_days": rng.integers(0, 300, n).astype(float),
        "frequency": rng.integers(1, 40, n).astype(float),
        "monetary": rng.gamma(2.0, 300.0, n),
        "country": rng.choice(["United Kingdom", "France", "Germany"], n),
    })


def train_bundle(frame: pd.DataFrame, features: dict[str, str], y: np.ndarray, *,
                 task: str = "binary", classes: list[str] | None = None, rounds: int = 40,
                 seed: int = 0, calibration: dict | None = None) -> ModelBundle:
    encoder = Encoder.fit(frame, features, {n: n.replace("_", " ").title() for n in features})
    X = encoder.transform_frame(frame)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 7, "min_data_in_leaf": 10,
              "seed": seed, "num_threads": 1}
    if task == "multiclass":
        params.update(objective="multiclass", num_class=len(classes))
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=encoder.categorical_indices),
                        num_boost_round=rounds)
    bundle = ModelBundle(booster, encoder, task, classes or ["0", "1"], calibration, metadata={
        "trained_at": "2026-01-02T03:04:05+00:00", "metrics": {"roc_auc": 0.8 + seed / 100}})
    if task == "binary":
        bundle.set_tier_boundaries(ModelBundle.score(bundle.predict_proba(X)))
    return bundle


def lead_model(seed: int = 0) -> ModelBundle:
    frame = lead_frame(800, seed)
    logit = (frame.business_size.isin(["21-50", "50+"]) * 1.5
             + (frame.utm_medium == "cpc") * 1.0 - (frame.business_type == "Cafe") * 1.0)
    y = (np.random.default_rng(seed + 1).random(len(frame)) < 1 / (1 + np.exp(1 - logit)))
    # Platt-calibrated, as training does when it improves log loss
    return train_bundle(frame, LEAD_FEATURES, y.astype(int), seed=seed,
                        calibration={"method": "platt", "a": 0.8, "b": -0.2})


def plan_model() -> ModelBundle:
    frame = lead_frame(800, 7)
    y = frame.business_size.map({"1-5": 0, "6-20": 1, "21-50": 2, "50+": 3}).to_numpy()
    noise = np.random.default_rng(3).integers(0, 4, len(y))
    y = np.where(np.random.default_rng(4).random(len(y)) < 0.3, noise, y)
    return train_bundle(frame, LEAD_FEATURES, y, task="multiclass", classes=PLANS, rounds=20)


def snapshot_churn_model() -> ModelBundle:
    frame = customer_frame(800, 11)
    logit = frame.support_tickets_90d * 0.8 - frame.logins_30d * 0.1 + frame.failed_payments_90d
    y = np.random.default_rng(5).random(len(frame)) < 1 / (1 + np.exp(-logit))
    return train_bundle(frame, CUSTOMER_FEATURES, y.astype(int))


def activity_churn_model() -> ModelBundle:
    frame = activity_frame(800, 13)
    logit = frame.recency_days / 60 - frame.frequency / 10
    y = np.random.default_rng(6).random(len(frame)) < 1 / (1 + np.exp(-logit))
    return train_bundle(frame, ACTIVITY_FEATURES, y.astype(int))


def register(uri: str, name: str, bundle: ModelBundle, tmp: Path, *, promote: bool = True
             ) -> str:
    """Log the bundle as the project's pyfunc model, register it, optionally make it champion."""
    directory = bundle.save(tmp / f"{name}-{time.monotonic_ns()}")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    ensure_experiment(uri, tmp / "artifacts")
    mlflow.set_experiment("leadscore")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=LeadscorePyfunc(), artifacts={"bundle": str(directory)},
            registered_model_name=name, pip_requirements=["lightgbm", "pandas", "mlflow"])
    version = str(info.registered_model_version)
    if promote:
        ModelRegistry(uri).promote(name, version)
    return version


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One MLflow store with all four models registered as champion, and a serving snapshot."""
    tmp = tmp_path_factory.mktemp("api")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    bundles = {LEAD_CONVERSION: lead_model(), PLAN: plan_model(),
               SNAPSHOT_CHURN: snapshot_churn_model(), ACTIVITY_CHURN: activity_churn_model()}
    versions = {name: register(uri, name, b, tmp) for name, b in bundles.items()}
    data_dir = tmp / "data"
    customers = activity_frame(50, 21)
    customers.insert(0, "customer_id", [f"{17000 + i}.0" for i in range(50)])
    customers["as_of"] = "2026-01-01"
    write_snapshot(data_dir / "serving" / "snapshot.parquet", customers)
    return {"uri": uri, "tmp": tmp, "bundles": bundles, "versions": versions,
            "data_dir": data_dir, "customers": customers}


def write_snapshot(path: Path, frame: pd.DataFrame) -> None:
    """As Dagster publishes it: written beside, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), partial)
    os.replace(partial, path)


@pytest.fixture
def store_copy(store: dict, tmp_path: Path) -> str:
    """A registry of its own for a test that moves aliases (a copy: no slow initialisation)."""
    shutil.copy(store["tmp"] / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def make_settings(store: dict, **overrides) -> Settings:
    return Settings(data_dir=store["data_dir"], mlflow_tracking_uri=store["uri"], **overrides)


def wait_ready(client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"API not ready within {timeout}s: {client.get('/ready').text}")


@pytest.fixture(scope="module")
def client(store: dict):
    app = create_app(make_settings(store), api_settings=ApiSettings(poll_seconds=0.2))
    with TestClient(app) as c:
        wait_ready(c)
        yield c


def leads_payload(frame: pd.DataFrame) -> list[dict]:
    return [{k: v for k, v in row.items() if v is not None and v == v}
            for row in frame.to_dict(orient="records")]


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
    add up to the booster's raw score wherever every non-zero contribution is listed."""
    raw = bundle.booster.predict(X, raw_score=True)
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


def test_shap_reasons_are_lightgbms_own_contributions(store, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", mlflow_tracking_uri=store["uri"])
    app = create_app(settings, api_settings=ApiSettings(models=LEAD_CONVERSION, explain="shap",
                                                         prediction_log=False))
    frame = lead_frame(60, 98)
    with TestClient(app) as c:
        wait_ready(c)
        body = c.post("/v1/leads/score", json=leads_payload(frame)).json()
    bundle = store["bundles"][LEAD_CONVERSION]
    X = bundle.encoder.transform_frame(frame)
    check_reasons(body, bundle, X, bundle.booster.predict(X, pred_contrib=True))


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


def test_known_customer_churn_reads_the_snapshot_and_follows_its_replacement(client, store):
    customers = store["customers"]
    bundle = store["bundles"][ACTIVITY_CHURN]
    first = client.get("/v1/customers/17003/churn")
    assert first.status_code == 200, first.text
    expected = bundle.predict_frame(customers.iloc[[3]])[0]
    assert first.json()["probability"] == pytest.approx(expected, abs=1e-12)
    assert first.json()["as_of"] == "2026-01-01"
    assert client.get("/v1/customers/99999/churn").status_code == 404

    changed = customers.copy()
    changed.loc[3, "recency_days"] = 299.0 if customers.loc[3, "recency_days"] < 150 else 1.0
    changed["as_of"] = "2026-02-01"
    path = store["data_dir"] / "serving" / "snapshot.parquet"
    try:
        write_snapshot(path, changed)
        second = client.get("/v1/customers/17003/churn").json()
        assert second["as_of"] == "2026-02-01"
        assert second["probability"] == pytest.approx(
            bundle.predict_frame(changed.iloc[[3]])[0], abs=1e-12)
        assert second["probability"] != first.json()["probability"]
    finally:
        write_snapshot(path, customers)


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
    files = closed_files(settings.predictions_dir)
    entries = [e for f in files for e in read_log_file(f)[0]]
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
