"""The serving encoder and model bundle: one encoding for every path, exact explanations."""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from leadscore_assets.models.training import TrainConfig, train_model
from leadscore_core.serving import Encoder, FeatureSpec, ModelBundle
from tests.support.mlflow_store import tracking_store

FEATURES = {"source": "categorical", "visits": "numeric", "newsletter": "boolean"}
ORIGINAL = {"source": "Lead Source", "visits": "Total Visits", "newsletter": "Newsletter"}


def training_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    source = rng.choice(["google", "referral", "olark chat", "direct"], n)
    visits = rng.gamma(2.0, 2.0, n)
    newsletter = rng.random(n) < 0.4
    logit = -1.0 + 1.5 * (source == "referral") - 0.8 * (source == "direct") + 0.3 * visits \
        + 0.7 * newsletter
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "source": pd.array(source, dtype="string"),
        "visits": pd.array(visits, dtype="Float64"),
        "newsletter": pd.array(newsletter, dtype="boolean"),
        "converted": pd.array(converted, dtype="boolean"),
    })
    frame.loc[::17, "visits"] = pd.NA
    frame.loc[::23, "source"] = pd.NA
    return frame


@pytest.fixture(scope="module")
def trained():
    config = TrainConfig(grid=[{"num_leaves": 7, "min_data_in_leaf": 20}], cv_folds=3,
                         max_rounds=150)
    return train_model(training_frame(), name="leads", task="binary", label="converted",
                       features=FEATURES, original_names=ORIGINAL, config=config)


# Awkward inputs as an API client or a CSV row would send them.
RECORDS = [
    {"source": "Google", "visits": 3, "newsletter": True},
    {"source": " REFERRAL ", "visits": "4.5", "newsletter": "Yes"},
    {"source": "tiktok", "visits": None, "newsletter": "no"},  # unseen category
    {"visits": 2.0},  # missing fields
    {"source": "", "visits": "", "newsletter": "false"},  # blanks
    {"source": "direct", "visits": "n/a", "newsletter": 1},  # unreadable number
    {"source": "olark chat", "visits": 0, "newsletter": "TRUE"},
]


def test_encoder_codes_are_sorted_categories():
    enc = Encoder.fit(training_frame(), FEATURES)
    assert enc.specs[0].categories == ["direct", "google", "olark chat", "referral"]
    X = enc.transform_records(RECORDS)
    assert X[0].tolist() == [1.0, 3.0, 1.0]
    assert X[1].tolist() == [3.0, 4.5, 1.0]
    assert math.isnan(X[2, 0]) and math.isnan(X[2, 1]) and X[2, 2] == 0.0
    assert np.isnan(X[3, [0, 2]]).all() and X[3, 1] == 2.0
    assert np.isnan(X[4, :2]).all() and X[4, 2] == 0.0
    assert X[5, 0] == 0.0 and math.isnan(X[5, 1]) and X[5, 2] == 1.0


def test_records_and_frame_paths_encode_identically():
    enc = Encoder.fit(training_frame(), FEATURES)
    frame = pd.DataFrame(RECORDS)  # object columns, as read from JSON
    np.testing.assert_array_equal(enc.transform_records(RECORDS), enc.transform_frame(frame))
    typed = training_frame().head(50)  # typed columns, as read from the warehouse
    records = [{k: (None if pd.isna(v) else v) for k, v in row.items()}
               for row in typed.to_dict("records")]
    np.testing.assert_array_equal(enc.transform_records(records), enc.transform_frame(typed))


def test_bundle_predicts_what_the_booster_predicts_on_the_training_encoding(trained):
    bundle = trained.bundle
    frame = trained.holdout
    X = bundle.encoder.transform_frame(frame)
    raw = bundle.raw_score(X)
    cal = bundle.calibration or {"a": 1.0, "b": 0.0}
    expected = 1 / (1 + np.exp(-(cal["a"] * raw + cal["b"])))
    np.testing.assert_allclose(bundle.predict_frame(frame), expected, rtol=0, atol=1e-12)
    if bundle.kind == "lightgbm":
        np.testing.assert_allclose(raw, bundle.booster.predict(X, raw_score=True), atol=1e-12)
    records = [{k: (None if pd.isna(v) else v) for k, v in row.items()}
               for row in frame.to_dict("records")]
    np.testing.assert_array_equal(bundle.predict_records(records), bundle.predict_frame(frame))


def test_contributions_plus_base_equal_the_raw_score(trained):
    bundle = trained.bundle
    X = bundle.encoder.transform_records(RECORDS)
    raw = bundle.raw_score(X)
    contrib = bundle.explainer.contributions(X)[:, 0]
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-9)
    for row, explanation in enumerate(bundle.explain(X, top_k=3)):
        assert explanation.raw_score == pytest.approx(raw[row], abs=1e-9)
        assert explanation.base_value == pytest.approx(contrib[row, -1])
        assert all(r.contribution > 0 for r in explanation.reasons_for)
        assert all(r.contribution < 0 for r in explanation.reasons_against)
        for reason in explanation.reasons_for + explanation.reasons_against:
            j = list(ORIGINAL.values()).index(reason.feature)
            assert reason.contribution == pytest.approx(contrib[row, j])


def test_reasons_name_original_features_and_values(trained):
    bundle = trained.bundle
    X = bundle.encoder.transform_records([{"source": "Referral", "visits": 9,
                                           "newsletter": "yes"}])
    (explanation,) = bundle.explain(X)
    values = {r.feature: r.value for r in explanation.reasons_for + explanation.reasons_against}
    assert set(values) <= set(ORIGINAL.values())
    if "Lead Source" in values:
        assert values["Lead Source"] == "referral"
    if "Newsletter" in values:
        assert values["Newsletter"] is True


def test_save_load_round_trip_gives_identical_predictions(trained, tmp_path):
    bundle = trained.bundle
    bundle.save(tmp_path / "bundle")
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == (
        ["bundle.json"] if bundle.kind == "logistic" else ["booster.txt", "bundle.json"])
    loaded = ModelBundle.load(tmp_path / "bundle")
    X = bundle.encoder.transform_records(RECORDS)
    np.testing.assert_array_equal(loaded.predict_proba(X), bundle.predict_proba(X))
    np.testing.assert_array_equal(loaded.encoder.transform_records(RECORDS), X)
    assert loaded.metadata["tier_boundaries"] == bundle.metadata["tier_boundaries"]
    assert loaded.encoder.specs == bundle.encoder.specs


def test_scores_and_tiers():
    bundle = ModelBundle(booster=None, encoder=Encoder([]), task="binary",
                         classes=["false", "true"])
    assert ModelBundle.score([0.004, 0.005, 0.424, 0.996]).tolist() == [0, 0, 42, 100]
    assert bundle.set_tier_boundaries([10, 20, 30, 40, 50]) == [20.0, 30.0, 40.0]
    assert bundle.tier([5, 20, 29, 30, 39, 40, 99]) == ["D", "C", "C", "B", "B", "A", "A"]


def test_multiclass_explanations_use_the_predicted_class(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = np.argmax(X @ rng.normal(size=(2, 3)), axis=1)
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1,
                         "min_data_in_leaf": 5}, lgb.Dataset(X, y), 20)
    enc = Encoder([FeatureSpec("a", "numeric", "A"), FeatureSpec("b", "numeric", "B")])
    bundle = ModelBundle(booster, enc, "multiclass", ["Business", "Elite", "MVP"])
    proba = bundle.predict_proba(X[:5])
    raw = booster.predict(X[:5], raw_score=True)
    for i, explanation in enumerate(bundle.explain(X[:5])):
        k = int(np.argmax(proba[i]))
        assert explanation.explained_class == bundle.classes[k]
        assert explanation.raw_score == pytest.approx(raw[i, k], abs=1e-9)
    bundle.save(tmp_path / "m")
    np.testing.assert_array_equal(ModelBundle.load(tmp_path / "m").predict_proba(X), 
                                  bundle.predict_proba(X))


def test_load_names_the_missing_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model bundle"):
        ModelBundle.load(tmp_path)


def test_mlflow_pyfunc_serves_the_same_predictions(trained, tmp_path):
    import mlflow

    from leadscore_core.registry import ensure_experiment
    from leadscore_core.serving import LeadscorePyfunc

    bundle_dir = trained.bundle.save(tmp_path / "bundle")
    previous = mlflow.get_tracking_uri()
    uri = tracking_store(tmp_path / "mlflow.db")
    mlflow.set_tracking_uri(uri)
    try:
        # artifacts under tmp_path, not ./mlruns of the working directory
        mlflow.set_experiment(
            experiment_id=ensure_experiment(uri, tmp_path / "artifacts", "pyfunc"))
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model", python_model=LeadscorePyfunc(),
                artifacts={LeadscorePyfunc.ARTIFACT: str(bundle_dir)})
        served = mlflow.pyfunc.load_model(info.model_uri).predict(pd.DataFrame(RECORDS))
    finally:
        mlflow.set_tracking_uri(previous)
    expected = trained.bundle.predict_records(RECORDS)
    np.testing.assert_array_equal(served["probability"].to_numpy(), expected)
    assert served["score"].tolist() == ModelBundle.score(expected).tolist()
    assert served["tier"].tolist() == trained.bundle.tier(ModelBundle.score(expected))
