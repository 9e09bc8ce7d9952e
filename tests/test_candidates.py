"""Which candidate becomes the model: the rule, and real trainings where each kind wins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.models.candidates import CANDIDATES, choose
from leadscore_assets.models.training import TrainConfig, train_model


def test_the_cross_validation_winner_is_kept_when_it_beats_the_baseline_on_held_out():
    s = choose("roc_auc", {"logistic": 0.80, "lightgbm": 0.84, "blend": 0.83},
               {"logistic": 0.81, "lightgbm": 0.85, "blend": 0.86}, 0.5)
    assert (s.nominee, s.chosen) == ("lightgbm", "lightgbm")
    assert s.cv_margin == pytest.approx(0.01) and s.holdout_vs_baseline == pytest.approx(0.04)
    assert s.reason.startswith("lightgbm won: cross-validated roc_auc 0.8400 against blend")


def test_a_nominee_that_loses_to_its_baseline_on_held_out_is_passed_over():
    # the demo's lead model: LightGBM led cross-validation, then lost 0.781 to 0.803
    s = choose("roc_auc", {"logistic": 0.80, "lightgbm": 0.83, "blend": 0.82},
               {"logistic": 0.803, "lightgbm": 0.781, "blend": 0.805}, 0.25)
    assert (s.nominee, s.chosen) == ("lightgbm", "blend")
    assert "lightgbm 0.7810 led cross-validation but scored below" in s.reason
    s = choose("macro_f1", {"logistic": 0.40, "lightgbm": 0.41, "blend": 0.42},
               {"logistic": 0.429, "lightgbm": 0.406, "blend": 0.41}, 0.5)
    assert s.chosen == "logistic" and s.holdout_vs_baseline == 0.0
    assert s.reason.startswith("logistic won:")


def test_a_tie_goes_to_the_simpler_candidate():
    s = choose("roc_auc", dict.fromkeys(CANDIDATES, 0.8), dict.fromkeys(CANDIDATES, 0.8), 0.5)
    assert s.chosen == "logistic"


def linear_leads(n: int, seed: int) -> pd.DataFrame:
    """A signal that is a straight line in two numbers: what a logistic regression is for."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"visits": rng.normal(size=n), "minutes": rng.normal(size=n),
                          "noise": rng.normal(size=n),
                          "source": rng.choice(["a", "b", "c"], n)})
    logit = 1.2 * frame["visits"] - 0.9 * frame["minutes"]
    frame["converted"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    return frame


def stepped_leads(n: int, seed: int) -> pd.DataFrame:
    """A signal made of thresholds and an interaction: what trees are for."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"visits": rng.uniform(0, 10, n), "minutes": rng.uniform(0, 10, n),
                          "source": rng.choice(["a", "b", "c"], n)})
    hit = ((frame["visits"] > 5) ^ (frame["minutes"] > 5)) & (frame["source"] != "c")
    frame["converted"] = np.where(rng.random(n) < 0.9, hit, ~hit)
    return frame


KINDS = {"visits": "numeric", "minutes": "numeric", "noise": "numeric",
         "source": "categorical"}


def train(frame: pd.DataFrame):
    kinds = {k: v for k, v in KINDS.items() if k in frame.columns}
    return train_model(frame, name="leads", task="binary", label="converted", features=kinds,
                       config=TrainConfig(cv_folds=3, max_rounds=200))


def test_a_straight_line_makes_the_logistic_regression_or_a_blend_the_model():
    trained = train(linear_leads(600, 1))
    s = trained.selection
    assert s.chosen in {"logistic", "blend"}
    assert s.holdout[s.chosen] >= s.holdout["logistic"]
    assert trained.bundle.kind == s.chosen
    # the registered figures are the chosen candidate's, the baseline's beside them
    assert trained.metrics["roc_auc"] == pytest.approx(s.holdout[s.chosen])
    assert trained.baseline_metrics["roc_auc"] == pytest.approx(s.holdout["logistic"])
    assert trained.bundle.metadata["candidate"]["chosen"] == s.chosen


def test_thresholds_and_an_interaction_make_lightgbm_the_model():
    trained = train(stepped_leads(3000, 2))
    s = trained.selection
    assert s.chosen in {"lightgbm", "blend"} and s.holdout[s.chosen] > s.holdout["logistic"]
    assert trained.metrics["roc_auc"] > trained.baseline_metrics["roc_auc"] + 0.1


@pytest.mark.parametrize("make", [linear_leads, stepped_leads])
def test_the_model_never_scores_below_its_own_baseline_on_held_out(make):
    for seed in range(3):
        trained = train(make(500, 10 + seed))
        assert trained.metrics["roc_auc"] >= trained.baseline_metrics["roc_auc"] - 1e-12
