"""Shadow challengers in the API: a real MLflow store, the app with its lifespan, the prediction
log's sealed files read back."""

from __future__ import annotations

import time

import numpy as np
import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.config import LEAD_CONVERSION, SNAPSHOT_CHURN, ApiSettings
from api.models import ServedModel, ServedModels
from api.scoring import LogRows
from api.shadow import ShadowScorer
from leadscore_core.predlog import PredictionLogWriter
from leadscore_core.published import shadow_evidence_path
from leadscore_core.registry import GatePolicy, ModelRegistry, decide
from leadscore_core.serving import ModelBundle
from leadscore_core.settings import Settings
from leadscore_core.shadow import LiveEvidence, evidence_json
from leadscore_core.tiers import risk_rule, tiers_of
from tests.support.api_models import (
    LEAD_FEATURES,
    customer_frame,
    lead_frame,
    lead_model,
    leads_payload,
    register,
    snapshot_churn_model,
    train_bundle,
    wait_for_challenger,
    wait_ready,
)
from tests.support.predlog import read_entries, sealed_files

MODELS = f"{LEAD_CONVERSION},{SNAPSHOT_CHURN}"


def logged(settings: Settings) -> list[dict]:
    return [e for f in sealed_files(settings.inbox("predictions")) for e in read_entries(f)]


def test_challenger_is_scored_and_logged_beside_an_unchanged_champion(store, store_copy,
                                                                      tmp_path):
    leads = leads_payload(lead_frame(30, 5).assign(id=[f"lead-{i}" for i in range(30)]))
    customers = leads_payload(customer_frame(12, 8).assign(id=[f"c{i}" for i in range(12)]))
    # the champion alone answers first (shadow scoring off): the reference answers
    reference = Settings(data_dir=tmp_path / "reference", mlflow_tracking_uri=store_copy)
    with TestClient(create_app(reference, api_settings=ApiSettings(models=MODELS,
                                                                   shadow=False))) as c:
        wait_ready(c)
        alone = [c.post("/v1/leads/score", json=leads).content,
                 c.post("/v1/leads/score", json=leads[0]).content,
                 c.post("/v1/customers/churn", json=customers).content]

    challenger_bundle, churn_challenger = lead_model(seed=3), snapshot_churn_model()
    version = register(store_copy, LEAD_CONVERSION, challenger_bundle, tmp_path, promote=False)
    churn_version = register(store_copy, SNAPSHOT_CHURN, churn_challenger, tmp_path,
                             promote=False)
    registry = ModelRegistry(store_copy)
    registry.set_challenger(LEAD_CONVERSION, version)
    registry.set_challenger(SNAPSHOT_CHURN, churn_version)
    settings = Settings(data_dir=tmp_path / "data", mlflow_tracking_uri=store_copy)
    app = create_app(settings, api_settings=ApiSettings(models=MODELS, poll_seconds=0.1))
    with TestClient(app) as c:
        wait_ready(c)
        wait_for_challenger(c, LEAD_CONVERSION, version)
        wait_for_challenger(c, SNAPSHOT_CHURN, churn_version)
        shadowed = [c.post("/v1/leads/score", json=leads).content,
                    c.post("/v1/leads/score", json=leads[0]).content,
                    c.post("/v1/customers/churn", json=customers).content]
        shadow = app.state.shadow
        # the models page: what is shadowed, and the published evidence on that pair
        page = c.get("/ui/models").text
        assert f"Version {version} is scored in the shadow of the champion" in page
        assert "No live evidence published yet." in page
        champion = str(ModelRegistry(store_copy).by_alias(LEAD_CONVERSION, "champion").version)
        path = shadow_evidence_path(settings.root / "monitoring")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(evidence_json([LiveEvidence("lead_conversion", champion, version, 200,
                                                    30, 80, 0.70, 0.74)]))
        live = c.get("/ui/models").text
        assert "85.0%" in live and "30 would change tier" in live
        assert "+0.0400" in live and "on 80 outcomes" in live
    assert shadowed == alone  # byte for byte: the champion's answer is unchanged
    assert shadow.scored == 31 + 12 and shadow.skipped == 0

    entries = logged(settings)
    assert len(entries) == 31 + 12
    lead_entries = [e for e in entries if e["model"] == LEAD_CONVERSION]
    champion_version = ModelRegistry(store_copy).by_alias(LEAD_CONVERSION, "champion").version
    assert {e["version"] for e in lead_entries} == {str(champion_version)}
    # the challenger's own answers, computed here from its bundle
    frame = lead_frame(30, 5)
    p = challenger_bundle.predict_proba(challenger_bundle.encoder.transform_frame(frame))
    scores = ModelBundle.score(p)
    tiers = tiers_of(scores, challenger_bundle.metadata["tier_boundaries"])
    batch = [e for e in lead_entries if e["endpoint"] == "/v1/leads/score"][:30]
    by_id = {e["inputs"]["id"]: e["outputs"]["challenger"] for e in batch}
    for i in range(30):
        answer = by_id[f"lead-{i}"]
        assert answer["version"] == version
        assert answer["probability"] == pytest.approx(float(p[i]), abs=1e-12)
        assert answer["score"] == int(scores[i]) and answer["tier"] == tiers[i]
    churn = [e for e in entries if e["model"] == SNAPSHOT_CHURN]
    p_churn = churn_challenger.predict_proba(
        churn_challenger.encoder.transform_frame(customer_frame(12, 8)))
    risk = risk_rule(settings.churn_high, settings.churn_medium)
    for e in churn:
        i = int(e["inputs"]["id"][1:])
        assert e["outputs"]["challenger"] == {
            "version": churn_version, "probability": pytest.approx(float(p_churn[i]), abs=1e-12),
            "risk": risk(float(p_churn[i]))}


def test_the_challenger_scores_the_champions_codes_only_when_it_encodes_alike(tmp_path):
    champion = ServedModel(LEAD_CONVERSION, "1", lead_model(seed=0))
    alike = ServedModel(LEAD_CONVERSION, "2", lead_model(seed=3))
    # trained without one business type: its categories, hence its codes, differ
    narrower = lead_frame(800, 4)
    narrower = narrower[narrower.business_type != "Gym"].reset_index(drop=True)
    labels = np.random.default_rng(2).integers(0, 2, len(narrower))
    other = ServedModel(LEAD_CONVERSION, "3", train_bundle(narrower, LEAD_FEATURES, labels))
    records = leads_payload(lead_frame(40, 9))
    X = champion.bundle.encoder.transform_records(records)
    rows = LogRows([(r, {}) for r in records], codes=X, encoder=champion.bundle.encoder)
    writer = PredictionLogWriter(tmp_path / "log")
    scorer = ShadowScorer(ServedModels([LEAD_CONVERSION]), writer,
                          tier_bounds=lambda name, version: None, risk=str)
    try:
        assert scorer.codes(alike, rows) is X
        own = scorer.codes(other, rows)
        np.testing.assert_array_equal(own, other.bundle.encoder.transform_records(records))
        assert not np.array_equal(own, X, equal_nan=True)
        # rows logged without codes (a plain list) are encoded from their inputs
        np.testing.assert_array_equal(scorer.codes(alike, list(rows)), X)
    finally:
        scorer.close()
        writer.close()


def test_no_challenger_means_no_shadow_work(store, store_copy, tmp_path):
    registry = ModelRegistry(store_copy)
    champion = str(registry.by_alias(LEAD_CONVERSION, "champion").version)
    # the alias on the champion itself (as after a promotion) is no challenger
    registry.set_challenger(LEAD_CONVERSION, champion)
    settings = Settings(data_dir=tmp_path / "data", mlflow_tracking_uri=store_copy)
    app = create_app(settings, api_settings=ApiSettings(models=LEAD_CONVERSION,
                                                         poll_seconds=0.1))
    with TestClient(app) as c:
        wait_ready(c)
        time.sleep(0.3)  # a few looks at the registry
        assert c.get("/v1/models").json()[0]["challenger"] is None
        c.post("/v1/leads/score", json=leads_payload(lead_frame(10, 2)))
        shadow = app.state.shadow
    assert shadow.scored == 0 and shadow.skipped == 0
    entries = logged(settings)
    assert len(entries) == 10
    assert all("challenger" not in e["outputs"] for e in entries)


def test_the_challenger_rule(store_copy, tmp_path):
    """A newer version the gate has not promoted is a challenger; the champion, an older
    version, and a promoted version rolled back from are not."""
    registry = ModelRegistry(store_copy)
    assert registry.challenger(LEAD_CONVERSION) is None  # no alias at all
    first = str(registry.by_alias(LEAD_CONVERSION, "champion").version)
    newer = register(store_copy, LEAD_CONVERSION, lead_model(seed=2), tmp_path, promote=False)
    registry.set_challenger(LEAD_CONVERSION, newer)
    assert str(registry.challenger(LEAD_CONVERSION).version) == newer
    registry.set_challenger(LEAD_CONVERSION, first)
    assert registry.challenger(LEAD_CONVERSION) is None
    registry.set_challenger(LEAD_CONVERSION, newer)
    registry.promote(LEAD_CONVERSION, newer, decide("binary", 0.9, 0.8, GatePolicy()))
    assert registry.challenger(LEAD_CONVERSION) is None  # it is the champion now
    registry.rollback(LEAD_CONVERSION)
    assert str(registry.by_alias(LEAD_CONVERSION, "champion").version) == first
    assert registry.challenger(LEAD_CONVERSION) is None  # promoted once: not a challenger
