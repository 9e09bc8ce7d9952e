"""Path contributions precomputed per leaf: the identity with the raw score, per class."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from api.explain import PathExplainer
from leadscore_core.serving import Encoder, ModelBundle


def bundle_for(task: str, seed: int = 0) -> tuple[ModelBundle, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 600
    frame = pd.DataFrame({
        "size": rng.choice(["small", "mid", "large"], n),
        "visits": rng.poisson(4, n).astype(float),
        "minutes": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2, 5, n)),
        "newsletter": rng.choice([True, False], n),
        "constant": np.ones(n),  # never split on: must get no contribution
    })
    kinds = {"size": "categorical", "visits": "numeric", "minutes": "numeric",
             "newsletter": "boolean", "constant": "numeric"}
    encoder = Encoder.fit(frame, kinds)
    X = encoder.transform_frame(frame)
    signal = (frame["size"] == "large") * 2 + frame["visits"] * 0.3 - frame["newsletter"] * 1.0
    if task == "binary":
        y = (signal + rng.normal(size=n) > 1.5).astype(int)
        params, classes = {"objective": "binary"}, ["0", "1"]
    else:
        y = np.digitize(signal + rng.normal(size=n), [0.5, 1.5, 2.5])
        params, classes = {"objective": "multiclass", "num_class": 4}, ["a", "b", "c", "d"]
    params.update(verbose=-1, num_leaves=15, min_data_in_leaf=5, seed=seed, num_threads=1)
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=encoder.categorical_indices),
                        num_boost_round=60)
    return ModelBundle(booster, encoder, task, classes), X


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_contributions_and_base_add_up_to_the_boosters_raw_score(task):
    bundle, X = bundle_for(task)
    contributions = PathExplainer(bundle).contributions(X)
    raw = bundle.booster.predict(X, raw_score=True).reshape(len(X), -1)
    assert contributions.shape == (len(X), raw.shape[1], X.shape[1] + 1)
    np.testing.assert_allclose(contributions.sum(axis=2), raw, rtol=0, atol=1e-9)
    # the base value is the same for every row: the trees' expected output
    assert np.ptp(contributions[:, :, -1], axis=0).max() == 0
    assert np.abs(contributions[:, :, 4]).max() == 0  # the constant feature
    assert np.abs(contributions[:, :, 0]).max() > 0.1  # the strongest signal


def test_explanations_name_fields_and_values_like_the_bundle():
    bundle, X = bundle_for("binary", seed=3)
    path = PathExplainer(bundle).explain(X[:50])
    shap = bundle.explain(X[:50])
    raw = bundle.booster.predict(X[:50], raw_score=True)
    for p, s, r in zip(path, shap, raw, strict=True):
        assert p.raw_score == pytest.approx(r, abs=1e-9) and s.raw_score == pytest.approx(r)
        for reason in p.reasons_for + p.reasons_against:
            assert reason.feature in {"size", "visits", "minutes", "newsletter"}
        assert all(a.contribution >= b.contribution
                   for a, b in zip(p.reasons_for, p.reasons_for[1:], strict=False))
    # both attributions agree on the strongest reason for most rows
    same = sum(bool(p.reasons_for and s.reasons_for
                    and p.reasons_for[0].feature == s.reasons_for[0].feature)
               for p, s in zip(path, shap, strict=True))
    assert same >= 35


def test_a_batch_larger_than_a_block_matches_row_by_row():
    bundle, X = bundle_for("binary", seed=5)
    explainer = PathExplainer(bundle)
    whole = explainer.contributions(X)
    assert len(X) > 512
    np.testing.assert_allclose(whole[:3], np.concatenate(
        [explainer.contributions(X[i:i + 1]) for i in range(3)]), atol=1e-12)
    np.testing.assert_allclose(whole[-1:], explainer.contributions(X[-1:]), atol=1e-12)


def test_one_row_through_the_prepared_handle_explains_as_the_batch_does():
    """The single-row path (LightGBM's prepared handle, plain-Python ranking) names the same
    reasons in the same order, with the same values, as the batch path."""
    bundle, X = bundle_for("binary", seed=7)
    explainer = PathExplainer(bundle)
    batch = explainer.explain(X[:200])
    explainer.single_row_fast_path()
    for i in range(200):
        [one] = explainer.explain(X[i:i + 1])
        assert one.raw_score == pytest.approx(batch[i].raw_score, abs=1e-12)
        assert one.base_value == batch[i].base_value
        for mine, theirs in ((one.reasons_for, batch[i].reasons_for),
                             (one.reasons_against, batch[i].reasons_against)):
            assert [(r.feature, r.value) for r in mine] == [(r.feature, r.value) for r in theirs]
            assert [r.contribution for r in mine] == pytest.approx(
                [r.contribution for r in theirs], abs=1e-12)
