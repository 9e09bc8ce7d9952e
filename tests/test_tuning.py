"""Tuning LightGBM within a time budget: the budget stops it, only training folds reach it,
and with tuning off training is what it was. (Its trials in the MLflow run:
``test_models_pipeline``.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import optuna_integration.lightgbm as optuna_lightgbm
import pandas as pd
import pytest

from leadscore_assets.models.training import TrainConfig, train_model
from leadscore_assets.models.tuning import STEPS

FEATURES = {"channel": "categorical", "visits": "numeric", "marker": "numeric"}
# Small and quick: a few hundred rows, short boosting, three folds.
SMALL = TrainConfig(grid=[{"num_leaves": 3, "min_data_in_leaf": 20}], cv_folds=3,
                    max_rounds=30, early_stopping_rounds=10, tune=False)


def small_frame(n: int = 360, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice(["ads", "partner", "seo"], n)
    visits = rng.exponential(3.0, n)
    logit = -1.0 + 1.5 * (channel == "partner") + 0.3 * visits
    return pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(n)],
        "created_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="h"),
        "channel": pd.array(channel, dtype="string"),
        "visits": pd.array(visits, dtype="Float64"),
        # a distinct value per row: which rows reached the tuner can be read off its data
        "marker": pd.array(np.arange(n) + 0.5, dtype="Float64"),
        "converted": pd.array(rng.random(n) < 1 / (1 + np.exp(-logit)), dtype="boolean"),
    })


def train(config: TrainConfig):
    return train_model(small_frame(), name="leads", task="binary", label="converted",
                       features=FEATURES, time_column="created_at", config=config)


class TunerSpy(optuna_lightgbm.LightGBMTunerCV):
    """The real tuner, keeping what it was given."""

    given: list[dict] = []

    def __init__(self, params, train_set, *args, **kwargs):
        TunerSpy.given.append({"data": np.asarray(train_set.data).copy(),
                               "folds": list(kwargs["folds"])})
        super().__init__(params, train_set, *args, **kwargs)


@pytest.fixture()
def spy(monkeypatch):
    TunerSpy.given = []
    monkeypatch.setattr(optuna_lightgbm, "LightGBMTunerCV", TunerSpy)
    return TunerSpy.given


def test_a_spent_budget_stops_tuning_and_the_grid_keeps_its_choice(spy):
    trained = train(replace(SMALL, tune=True, tuning_budget_seconds=1e-6))
    record = trained.cv["tuning"]
    assert len(spy) == 1  # the tuner ran, and stopped at once
    assert record["stop_reason"] == "budget"
    assert record["trials"] == len(trained.tuning.trials) == 0
    assert record["chosen"] == "grid" and trained.cv["chosen"] == SMALL.grid[0]


def test_a_generous_budget_runs_every_step_of_the_tuner():
    trained = train(replace(SMALL, tune=True, tuning_budget_seconds=3600))
    tuning = trained.tuning
    assert tuning.stop_reason == "completed"
    per_step = pd.Series([t["step"] for t in tuning.trials]).value_counts().to_dict()
    # every step ran all its trials; the second feature-fraction step tries what lies in
    # [0.4, 1] around the first step's best
    for step, count in STEPS:
        if step == "feature_fraction_stage2":
            assert 1 <= per_step[step] <= count
        else:
            assert per_step[step] == count, step
    best = max(t["cv_score"] for t in tuning.trials)
    assert tuning.best_score == pytest.approx(best)
    # the tuned settings are kept only when cross-validation says they are better
    grid_score = trained.cv["tuning"]["grid_cv_score"]
    assert trained.cv["tuning"]["chosen"] == ("tuned" if best > grid_score else "grid")
    assert trained.cv["cv_score"] == pytest.approx(max(best, grid_score))


def test_the_tuner_sees_only_the_training_part(spy):
    trained = train(replace(SMALL, tune=True, tuning_budget_seconds=2))
    (given,) = spy
    column = trained.bundle.feature_names.index("marker")
    tuned_rows = set(given["data"][:, column])
    held_out = set(trained.holdout["marker"].astype(float))
    assert len(held_out) == trained.row_counts["holdout"] == 72
    assert tuned_rows.isdisjoint(held_out)
    assert len(given["data"]) == trained.row_counts["train"] == len(tuned_rows)
    # its folds split exactly those rows, each once into validation
    validated = np.sort(np.concatenate([valid for _, valid in given["folds"]]))
    np.testing.assert_array_equal(validated, np.arange(len(given["data"])))


def test_tuning_off_never_starts_the_tuner_and_trains_as_before(spy):
    off = train(SMALL)
    assert spy == [] and off.tuning is None
    assert set(off.cv) == {"metric", "folds", "grid", "chosen", "rounds", "cv_score",
                           "candidates", "calibration"}
    assert off.cv["chosen"] == SMALL.grid[0]
    assert off.cv["cv_score"] == off.cv["grid"][0]["cv_auc"]
    # the same model as a training that asked for tuning and got no trial in
    spent = train(replace(SMALL, tune=True, tuning_budget_seconds=1e-6))
    assert spent.metrics == off.metrics and spent.params["num_boost_round"] == \
        off.params["num_boost_round"]


def test_settings_decide_the_default_and_a_run_config_wins(monkeypatch):
    from leadscore_assets.models.assets import ModelConfig

    monkeypatch.setenv("LEADSCORE_TUNING", "true")
    monkeypatch.setenv("LEADSCORE_TUNING_BUDGET_SECONDS", "12.5")
    assert TrainConfig().tune is True and TrainConfig().tuning_budget_seconds == 12.5
    base = TrainConfig()
    assert ModelConfig().train_config(base).tune is True
    overridden = ModelConfig(tune=False, tuning_budget_seconds=3).train_config(base)
    assert overridden.tune is False and overridden.tuning_budget_seconds == 3
    monkeypatch.setenv("LEADSCORE_TUNING", "false")
    assert TrainConfig().tune is False
