"""Label-free performance estimation (CBPE) as pure functions, checked against scikit-learn
and against labels drawn from the probabilities (the truth known by construction)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from leadscore_core.estimation import (
    estimate,
    expected_roc_auc,
    realised_metrics,
)


def test_expected_roc_auc_equals_the_weighted_roc_auc_of_every_row_as_both_outcomes():
    # each row counts as a positive with weight p and as a negative with weight 1 - p: the
    # ROC-AUC of that weighted set is the expected TPR/FPR curve's area, computed by sklearn
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(2, 5, 500), 2)  # rounded: many ties
    y = np.r_[np.ones(p.size), np.zeros(p.size)]
    weights = np.r_[p, 1 - p]
    expected = roc_auc_score(y, np.r_[p, p], sample_weight=weights)
    assert expected_roc_auc(p) == pytest.approx(expected, abs=1e-12)


def test_expected_roc_auc_limits():
    assert expected_roc_auc(np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert expected_roc_auc(np.full(10, 0.3)) == pytest.approx(0.5)
    assert np.isnan(expected_roc_auc(np.zeros(5)))


def test_realised_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(4)
    p = rng.uniform(size=300)
    y = rng.uniform(size=300) < p
    top = p >= np.quantile(p, 0.75)
    got = realised_metrics(p, y, top)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert got["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert got["top_tier_precision"] == pytest.approx(y[top].mean())
    assert got["positive_rate"] == pytest.approx(y.mean())


def test_realised_figures_fall_in_the_stated_interval_as_often_as_stated():
    # 60 windows whose labels are drawn from the (calibrated) probabilities: a 95% interval
    # should hold the realised figure about 57 times; one too narrow would hold far fewer
    rng = np.random.default_rng(5)
    hits = {m: 0 for m in ("roc_auc", "top_tier_precision", "positive_rate", "brier")}
    windows = 60
    for i in range(windows):
        p = rng.beta(1.5, 4, 800)
        top = p >= np.quantile(p, 0.75)
        estimates = estimate(p, top, draws=300, seed=i)
        realised = realised_metrics(p, rng.uniform(size=p.size) < p, top)
        for m in hits:
            hits[m] += estimates[m].contains(realised[m])
    for m, n in hits.items():
        assert n >= 0.85 * windows, (m, n)
    # nor uselessly wide: a model that cannot rank (AUC 0.5) is outside this window's interval
    p = rng.beta(1.5, 4, 800)
    assert not estimate(p, p >= np.quantile(p, 0.75))["roc_auc"].contains(0.5)


def test_less_confident_probabilities_lower_the_estimate_and_a_larger_window_narrows_it():
    rng = np.random.default_rng(6)
    sharp = rng.beta(0.5, 1.5, 2_000)
    blurred = 0.5 * sharp + 0.5 * sharp.mean()  # the same order, pulled to the mean
    top_sharp = sharp >= np.quantile(sharp, 0.75)
    est_sharp, est_blurred = estimate(sharp, top_sharp), estimate(blurred, top_sharp)
    assert est_blurred["roc_auc"].value < est_sharp["roc_auc"].value - 0.05
    assert est_blurred["roc_auc"].high < est_sharp["roc_auc"].low
    small = estimate(sharp[:200], top_sharp[:200])["roc_auc"]
    large = est_sharp["roc_auc"]
    assert (small.high - small.low) > 2 * (large.high - large.low)
    # the same window always gets the same interval
    again = estimate(sharp, top_sharp)["roc_auc"]
    assert (again.low, again.high) == (large.low, large.high)


def test_shapes_must_agree_and_an_empty_window_estimates_nothing():
    with pytest.raises(ValueError, match="shape"):
        estimate(np.array([0.1, 0.2]), np.array([True]))
    empty = estimate(np.array([]), np.array([], dtype=bool))
    assert empty["roc_auc"].rows == 0 and np.isnan(empty["roc_auc"].value)
