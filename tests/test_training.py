"""Training on small synthetic frames: honest splits, calibration, baseline, metrics, plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.models.metrics import binary_metrics, lift_top_decile, multiclass_metrics
from leadscore_assets.models.plots import model_plots
from leadscore_assets.models.training import TrainConfig, frame_hash, train_model

FAST = TrainConfig(grid=[{"num_leaves": 7, "min_data_in_leaf": 20},
                         {"num_leaves": 3, "min_data_in_leaf": 40}],
                   cv_folds=3, max_rounds=200, early_stopping_rounds=20)
FEATURES = {"channel": "categorical", "visits": "numeric", "trial": "boolean"}


def lead_frame(n: int = 1200, positive_rate_shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice(["ads", "partner", "seo", "social"], n)
    visits = rng.exponential(3.0, n)
    trial = rng.random(n) < 0.3
    logit = -1.2 + positive_rate_shift + 1.8 * (channel == "partner") \
        - 1.0 * (channel == "social") + 0.35 * visits + 1.0 * trial
    label = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(n)],
        "created_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="h"),
        "channel": pd.array(channel, dtype="string"),
        "visits": pd.array(visits, dtype="Float64"),
        "trial": pd.array(trial, dtype="boolean"),
        "converted": pd.array(label, dtype="boolean"),
    })


@pytest.fixture(scope="module")
def timed():
    return train_model(lead_frame(), name="leads", task="binary", label="converted",
                       features=FEATURES, time_column="created_at", config=FAST)


def test_time_holdout_is_the_latest_slice_and_never_trained_on(timed):
    frame = lead_frame()
    assert timed.row_counts["train"] == 960 and timed.row_counts["holdout"] == 240
    held_ids = set(frame["lead_id"].iloc[-240:])
    # the held-out features are exactly the latest 240 leads, in time order
    expected = frame.iloc[-240:][list(FEATURES)].reset_index(drop=True)
    pd.testing.assert_frame_equal(timed.holdout[list(FEATURES)], expected)
    assert timed.row_counts["train_class_false"] + timed.row_counts["train_class_true"] == 960
    assert len(held_ids) == 240


def test_learns_the_signal_and_reports_both_models(timed):
    assert timed.metrics["roc_auc"] > 0.75
    assert timed.baseline_metrics["roc_auc"] > 0.7
    assert set(timed.metrics) == {"roc_auc", "pr_auc", "log_loss", "brier", "lift_top_decile"}
    assert timed.cv["chosen"] in [dict(p) for p in FAST.grid]
    assert len(timed.cv["grid"]) == 2
    importance = timed.bundle.metadata["feature_importance"]
    assert set(importance) == set(FEATURES) and abs(sum(importance.values()) - 1) < 1e-3


def test_holdout_lets_another_model_be_rescored_on_the_same_rows(timed):
    other = train_model(lead_frame(seed=5), name="other", task="binary", label="converted",
                        features=FEATURES, time_column="created_at", config=FAST)
    proba = other.bundle.predict_frame(timed.holdout)
    assert proba.shape == (240,)
    assert binary_metrics(timed.holdout_labels, proba)["roc_auc"] > 0.7


def test_shuffled_labels_learn_nothing():
    frame = lead_frame()
    frame["converted"] = frame["converted"].sample(frac=1, random_state=1).to_numpy()
    shuffled = train_model(frame, name="noise", task="binary", label="converted",
                           features=FEATURES, config=FAST)
    assert abs(shuffled.metrics["roc_auc"] - 0.5) < 0.1


def test_imbalanced_classes_are_weighted_then_calibrated():
    frame = lead_frame(n=3000, positive_rate_shift=-3.0)
    positives = frame["converted"].mean()
    assert positives < 0.2
    trained = train_model(frame, name="rare", task="binary", label="converted",
                          features=FEATURES, config=FAST)
    calibration = trained.cv["calibration"]
    # balanced weights inflate raw probabilities; Platt scaling is kept because it helps
    assert calibration["oof_log_loss_calibrated"] < calibration["oof_log_loss_uncalibrated"]
    assert trained.bundle.calibration["method"] == "platt"
    assert trained.holdout_proba.mean() == pytest.approx(positives, abs=0.05)


def test_group_holdout_is_the_latest_group_and_entities_stay_together():
    parts = []
    for k, cutoff in enumerate(pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])):
        part = lead_frame(n=400, seed=k)
        part["customer_id"] = [f"C{i}" for i in range(400)]
        part["cutoff"] = cutoff
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    trained = train_model(frame, name="churn", task="binary", label="converted",
                          features=FEATURES, group_column="cutoff", entity_column="customer_id",
                          config=FAST)
    assert trained.row_counts["holdout"] == 400 and trained.row_counts["train"] == 800
    pd.testing.assert_frame_equal(trained.holdout[list(FEATURES)],
                                  parts[-1][list(FEATURES)].reset_index(drop=True))


def test_multiclass_keeps_the_catalogue_order_and_scores_accuracy():
    rng = np.random.default_rng(3)
    n = 900
    size = rng.choice(["solo", "team", "company"], n)
    plan = np.where(size == "solo", "Now", np.where(size == "team", "Business", "Elite"))
    flip = rng.random(n) < 0.2
    plan = np.where(flip, rng.choice(["Now", "Business", "Elite"], n), plan)
    frame = pd.DataFrame({"size": pd.array(size, dtype="string"),
                          "seats": rng.integers(1, 50, n).astype(float),
                          "plan": pd.array(plan, dtype="string")})
    catalogue = ["Business", "Elite", "MVP", "Now"]  # MVP is never bought here
    trained = train_model(frame, name="plan", task="multiclass", label="plan",
                          features={"size": "categorical", "seats": "numeric"},
                          classes=catalogue, config=FAST)
    assert trained.bundle.classes == catalogue
    assert trained.holdout_proba.shape == (180, 4)
    np.testing.assert_allclose(trained.holdout_proba.sum(axis=1), 1.0)
    assert trained.metrics["accuracy"] > 0.75
    assert set(trained.baseline_metrics) == {"accuracy", "macro_f1", "log_loss"}


def test_reference_sample_and_data_hash(timed):
    assert list(timed.reference.columns) == list(FEATURES)
    assert len(timed.reference) == 960
    frame = lead_frame()
    columns = [*FEATURES, "converted", "created_at"]
    assert timed.data_hash == frame_hash(frame, columns)
    assert frame_hash(frame[::-1].reset_index(drop=True), columns) != timed.data_hash
    capped = train_model(frame, name="c", task="binary", label="converted", features=FEATURES,
                         config=TrainConfig(**{**FAST.__dict__, "reference_rows": 100}))
    assert len(capped.reference) == 100


def test_unlabelled_rows_are_counted_not_used():
    frame = lead_frame()
    frame.loc[:99, "converted"] = pd.NA
    trained = train_model(frame, name="x", task="binary", label="converted",
                          features=FEATURES, config=FAST)
    assert trained.row_counts["unlabelled"] == 100
    assert trained.row_counts["train"] + trained.row_counts["holdout"] == 1100


def test_missing_feature_column_is_named():
    with pytest.raises(KeyError, match="visits"):
        train_model(lead_frame().drop(columns="visits"), name="x", task="binary",
                    label="converted", features=FEATURES, config=FAST)


def test_metrics_by_hand():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2])
    # top decile = the single highest score (0.9, a positive): 1.0 / base rate 0.2 = 5
    assert lift_top_decile(y, p) == pytest.approx(5.0)
    m = binary_metrics(y, p)
    # 16 positive/negative pairs: (0.9 beats all 8), (0.2 beats 7 of 8) -> 15/16
    assert m["roc_auc"] == pytest.approx(15 / 16)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    mc = multiclass_metrics(np.array([0, 1, 2, 2]),
                            np.array([[.8, .1, .1], [.2, .7, .1], [.1, .1, .8], [.6, .2, .2]]))
    assert mc["accuracy"] == pytest.approx(0.75)
    # per-class F1: class 0 = 2/3, class 1 = 1, class 2 = 2/3
    assert mc["macro_f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)


def test_plots_are_written(timed, tmp_path):
    paths = model_plots(timed, tmp_path)
    assert sorted(p.name for p in paths) == ["calibration.png", "feature_importance.png",
                                             "precision_recall.png", "roc.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
