"""Tuning LightGBM's parameters within a time budget, on the cross-validation folds only.

One more step of the LightGBM candidate's selection (``training._select``): after the small
grid, Optuna's step-wise LightGBM tuner (``optuna_integration.lightgbm.LightGBMTunerCV``)
searches feature fraction, tree size, bagging, L1/L2 regularisation and rows per leaf, one
group after another, each trial scored by ``lightgbm.cv`` on the very folds the grid and the
other candidates use. It is given the training part's ``Dataset`` and those folds, nothing
else: the held-out rows never reach it, so they still judge the winner honestly.

The budget: Optuna starts no trial once ``budget_seconds`` have passed since tuning began
(the trial running then finishes). The tuned settings replace the grid's only when their
cross-validated score is better; either way every trial is kept for the run's record.

No Dagster imports.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np

# The tuner's steps, in order, with the trials each asks for (its defaults). The second
# feature-fraction step tries up to 6 values around the first step's best, within [0.4, 1].
STEPS = (("feature_fraction", 7), ("num_leaves", 20), ("bagging", 10),
         ("feature_fraction_stage2", 6), ("regularization_factors", 20),
         ("min_child_samples", 5))
TUNED_PARAMS = ("feature_fraction", "num_leaves", "bagging_fraction", "bagging_freq",
                "lambda_l1", "lambda_l2", "min_child_samples")
# The tuner renames LightGBM aliases to these names; the grid uses the alias below.
ALIASES = {"min_data_in_leaf": "min_child_samples"}
_STEP_KEY = "lightgbm_tuner:step_name"
_PARAMS_KEY = "lightgbm_tuner:lgbm_params"
_ELAPSED_KEY = "lightgbm_tuner:elapsed_secs"


@dataclass
class Tuning:
    """What tuning tried and found. ``params``/``rounds``/``cvbooster`` are the best trial's
    (None when no trial finished within the budget)."""

    budget_seconds: float
    seconds: float
    stop_reason: str  # "completed" (every step ran) or "budget" (the budget ran out first)
    trials: list[dict[str, Any]]
    best_score: float | None
    params: dict[str, Any] | None = None
    rounds: int | None = None
    cvbooster: Any = field(default=None, repr=False)
    rows: int = 0  # rows of the Dataset the tuner was given
    fold_sizes: list[tuple[int, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The record without the boosters (``cv.json``; trials go to their own table)."""
        return {"budget_seconds": self.budget_seconds, "seconds": round(self.seconds, 3),
                "stop_reason": self.stop_reason, "trials": len(self.trials),
                "best_cv_score": self.best_score, "rows": self.rows,
                "best_params": ({k: self.params[k] for k in TUNED_PARAMS if k in self.params}
                                if self.params else None), "rounds": self.rounds}


def tune(X: np.ndarray, y: np.ndarray, weights: np.ndarray | None, cat_idx: list[int],
         params: dict[str, Any], splits: list[tuple[np.ndarray, np.ndarray]], *,
         budget_seconds: float, max_rounds: int, early_stopping_rounds: int,
         seed: int) -> Tuning:
    """Run the step-wise tuner from ``params`` (the grid's best) on the training part's rows
    ``X``, ``y`` and its folds ``splits``."""
    import optuna
    from optuna_integration.lightgbm import LightGBMTunerCV

    # A Dataset of its own, not yet built: each trial builds a copy of it, and a copy of a
    # Dataset already built would share (and free) the original's native handle.
    data = lgb.Dataset(X, y, weight=weights, categorical_feature=cat_idx, free_raw_data=False,
                       params={"feature_pre_filter": False})

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    higher_better = params["metric"] == "auc"
    study = optuna.create_study(direction="maximize" if higher_better else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    start = {ALIASES.get(k, k): v for k, v in params.items()}
    tuner = LightGBMTunerCV(
        start, data, num_boost_round=max_rounds, folds=splits,
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
        time_budget=budget_seconds, study=study, show_progress_bar=False,
        return_cvbooster=True, optuna_seed=seed)
    t0 = time.perf_counter()
    tuner.run()
    seconds = time.perf_counter() - t0

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    trials = [{
        "trial": t.number,
        "step": t.system_attrs.get(_STEP_KEY),
        "cv_score": float(t.value),
        "seconds": round(float(t.system_attrs.get(_ELAPSED_KEY, 0.0)), 3),
        **{k: v for k, v in json.loads(t.system_attrs[_PARAMS_KEY]).items()
           if k in TUNED_PARAMS},
    } for t in finished]
    last_step, last_count = STEPS[-1]
    ran_last = sum(1 for t in trials if t["step"] == last_step)
    stop_reason = "completed" if ran_last >= last_count else "budget"
    result = Tuning(budget_seconds=budget_seconds, seconds=seconds, stop_reason=stop_reason,
                    trials=trials, best_score=None, rows=len(X),
                    fold_sizes=[(len(fit), len(valid)) for fit, valid in splits])
    if not finished:
        return result
    cvbooster = tuner.get_best_booster()
    best = dict(tuner.best_params)
    result.best_score = float(tuner.best_score)
    result.params = best
    result.rounds = int(cvbooster.best_iteration) if cvbooster.best_iteration > 0 else max_rounds
    result.cvbooster = cvbooster
    return result
