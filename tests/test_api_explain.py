"""The one explainer: per-class identity with the raw score, for every candidate kind."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from leadscore_assets.models.candidates import linear_decision
from leadscore_assets.models.training import TrainConfig, fit_baseline
from leadscore_core.explain import Explainer, LinearPart
from leadscore_core.serving import Encoder, ModelBundle


def data_for(task: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = 600
    frame = pd.DataFrame({
        "size": rng.choice(["small", "mid", "large"], n),
        "visits": rng.poisson(4, n).astype(float),
        "minutes": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2, 5, n)),
        "newsletter": rng.choice([True, False], n),
        "constant": np.ones(n),  # never split on: must get no tree contribution
    })
    kinds = {"size": "categorical", "visits": "numeric", "minutes": "numeric",
             "newsletter": "boolean", "constant": "numeric"}
    encoder = Encoder.fit(frame, kinds)
    X = encoder.transform_frame(frame)
    signal = (frame["size"] == "large") * 2 + frame["visits"] * 0.3 - frame["newsletter"] * 1.0
    if task == "binary":
        y = (signal + rng.normal(size=n) > 1.5).astype(int).to_numpy()
        params, classes = {"objective": "binary"}, ["0", "1"]
    else:
        y = np.digitize(signal + rng.normal(size=n), [0.5, 1.5, 2.5])
        params, classes = {"objective": "multiclass", "num_class": 4}, ["a", "b", "c", "d"]
    params.update(verbose=-1, num_leaves=15, min_data_in_leaf=5, seed=seed, num_threads=1)
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=encoder.categorical_indices),
                        num_boost_round=60)
    return booster, encoder, X, y, classes


def bundle_for(task: str, kind: str = "lightgbm", seed: int = 0
               ) -> tuple[ModelBundle, np.ndarray, object]:
    booster, encoder, X, y, classes = data_for(task, seed)
    pipeline = fit_baseline(encoder, X, y, TrainConfig())
    linear = LinearPart.from_decision(linear_decision(pipeline, task, len(classes)), encoder, X)
    parts = {"lightgbm": dict(booster=booster),
             "logistic": dict(booster=None, linear=linear),
             "blend": dict(booster=booster, linear=linear, tree_weight=0.25)}[kind]
    return ModelBundle(encoder=encoder, task=task, classes=classes, **parts), X, pipeline


@pytest.mark.parametrize("kind", ["lightgbm", "logistic", "blend"])
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_contributions_and_base_add_up_to_the_models_raw_score(task, kind):
    bundle, X, pipeline = bundle_for(task, kind)
    contrib = Explainer(bundle).contributions(X)
    raw = bundle.raw_score(X).reshape(len(X), -1)
    np.testing.assert_allclose(contrib.sum(axis=2), raw, atol=1e-9)
    # the raw score is what LightGBM and scikit-learn say, mixed by the blend's weight
    tree = bundle_for(task)[0].booster.predict(X, raw_score=True).reshape(len(X), -1)
    linear = linear_decision(pipeline, task, len(bundle.classes))(X)
    expected = {"lightgbm": tree, "logistic": linear, "blend": 0.25 * tree + 0.75 * linear}
    np.testing.assert_allclose(raw, expected[kind], atol=1e-9)


def test_logistic_probabilities_are_scikit_learns():
    bundle, X, pipeline = bundle_for("multiclass", "logistic")
    np.testing.assert_allclose(bundle.predict_proba(X), pipeline.predict_proba(X), atol=1e-9)
    assert isinstance(pipeline.named_steps["model"], LogisticRegression)


def test_linear_contributions_are_coefficient_times_centred_value():
    """A numeric feature's linear part is a line in its value, centred on the training mean;
    a blank gets the imputed value's part."""
    bundle, X, _ = bundle_for("binary", "logistic")
    contrib = bundle.explainer.contributions(X)[:, 0]
    j = bundle.encoder.names.index("visits")
    slope = np.polyfit(X[:, j], contrib[:, j], 1)[0]
    np.testing.assert_allclose(contrib[:, j], slope * (X[:, j] - X[:, j].mean()), atol=1e-9)
    assert abs(contrib[:, bundle.encoder.names.index("constant")]).max() < 1e-9


@pytest.mark.parametrize("kind", ["lightgbm", "logistic", "blend"])
def test_explanations_name_fields_and_values(kind):
    bundle, X, _ = bundle_for("binary", kind)
    contrib = bundle.explainer.contributions(X[:50])[:, 0]
    for i, e in enumerate(bundle.explain(X[:50])):
        assert e.base_value + contrib[i, :-1].sum() == pytest.approx(e.raw_score, abs=1e-9)
        listed = e.reasons_for + e.reasons_against
        by_name = {s.original_name: j for j, s in enumerate(bundle.encoder.specs)}
        for r in listed:
            j = by_name[r.feature]
            assert r.contribution == pytest.approx(contrib[i, j], abs=1e-12)
            assert r.value == bundle.encoder.specs[j].decode(X[i, j])
        assert all(r.contribution > 0 for r in e.reasons_for)
        assert all(r.contribution < 0 for r in e.reasons_against)


def test_a_batch_larger_than_a_block_matches_row_by_row():
    bundle, X, _ = bundle_for("multiclass", "blend")
    explainer = Explainer(bundle)
    batch = explainer.contributions(X)
    rows = np.concatenate([explainer.contributions(X[i:i + 1]) for i in range(0, 600, 37)])
    np.testing.assert_allclose(batch[::37], rows, atol=1e-12)


@pytest.mark.parametrize("kind", ["lightgbm", "logistic", "blend"])
def test_one_row_through_the_prepared_handle_explains_as_the_batch_does(kind):
    bundle, X, _ = bundle_for("binary", kind)
    explainer = Explainer(bundle)
    explainer.single_row_fast_path()
    batch = explainer.explain(X[:200])
    for i in range(0, 200, 7):
        [one] = explainer.explain(X[i:i + 1])
        assert one.raw_score == pytest.approx(batch[i].raw_score, abs=1e-12)
        assert one.base_value == batch[i].base_value
        assert one.reasons_for == batch[i].reasons_for
        assert one.reasons_against == batch[i].reasons_against


@pytest.mark.parametrize("kind", ["lightgbm", "logistic", "blend"])
def test_a_saved_bundle_of_every_kind_loads_and_scores_the_same(kind, tmp_path):
    bundle, X, _ = bundle_for("binary", kind)
    bundle.calibration = {"method": "platt", "a": 0.9, "b": -0.1}
    loaded = ModelBundle.load(bundle.save(tmp_path / kind))
    assert loaded.kind == kind
    np.testing.assert_allclose(loaded.predict_proba(X), bundle.predict_proba(X), atol=1e-12)
    assert loaded.explain(X[:3]) == bundle.explain(X[:3])
