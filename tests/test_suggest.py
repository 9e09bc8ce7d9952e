"""The best single actionable change, against a brute-force search over a fine grid."""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from leadscore_core.serving import Encoder, ModelBundle
from leadscore_core.suggest import actionable_indices, best_change, split_thresholds

FEATURES = {"channel": "categorical", "visits": "numeric", "newsletter": "boolean",
            "size": "numeric"}


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    rng = np.random.default_rng(0)
    n = 2_000
    frame = pd.DataFrame({"channel": rng.choice(["ads", "email", "referral"], n),
                          "visits": rng.uniform(0, 40, n), "newsletter": rng.random(n) < 0.5,
                          "size": rng.uniform(1, 100, n)})
    logit = (-2 + 0.08 * frame.visits + (frame.channel == "referral") * 1.5
             + frame.newsletter * 0.7 + 0.01 * frame["size"])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    encoder = Encoder.fit(frame, FEATURES, {f: f for f in FEATURES})
    X = encoder.transform_frame(frame)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7,
                         "num_threads": 1}, lgb.Dataset(X, y, categorical_feature=
                                                        encoder.categorical_indices), 60)
    return ModelBundle(booster, encoder, "binary", ["0", "1"],
                       {"method": "platt", "a": 0.9, "b": 0.1})


def brute_force(bundle: ModelBundle, x: np.ndarray, columns: list[int]) -> float:
    """The best probability over every category and a 0.01-step grid of each number."""
    best = -1.0
    for j in columns:
        spec = bundle.encoder.specs[j]
        values = (np.arange(len(spec.categories)) if spec.kind == "categorical"
                  else np.array([0.0, 1.0]) if spec.kind == "boolean"
                  else np.arange(-5, 105, 0.01))
        rows = np.repeat(x[None, :], len(values), axis=0)
        rows[:, j] = values
        best = max(best, float(bundle.predict_proba(rows).max()))
    return best


def test_the_change_found_is_the_best_one_and_scores_what_it_says(bundle):
    columns = actionable_indices(bundle, ["channel", "visits", "newsletter"])
    assert [bundle.encoder.specs[j].name for j in columns] == ["channel", "visits",
                                                                "newsletter"]
    thresholds = split_thresholds(bundle)
    lead = bundle.encoder.transform_records([{"channel": "ads", "visits": 5.0,
                                              "newsletter": False, "size": 50.0}])[0]
    change = best_change(bundle, lead, columns, thresholds)
    now = float(bundle.predict_proba(lead[None, :])[0])
    assert change is not None and change.probability > now
    assert change.probability == pytest.approx(brute_force(bundle, lead, columns), abs=1e-12)
    # applying the change gives the probability it promised
    changed = {"channel": "ads", "visits": 5.0, "newsletter": False, "size": 50.0,
               change.feature: change.change_to}
    assert float(bundle.predict_records([changed])[0]) == pytest.approx(change.probability)
    assert change.value == {"channel": "ads", "visits": 5.0, "newsletter": False}[
        change.feature]
    # size is not actionable: never suggested, even where it would help
    assert all(bundle.encoder.specs[j].name != "size" for j in columns)


def test_lowering_a_churn_probability_and_nothing_to_suggest(bundle):
    columns = actionable_indices(bundle, ["newsletter"])
    row = bundle.encoder.transform_records([{"channel": "referral", "visits": 30.0,
                                             "newsletter": True, "size": 50.0}])[0]
    lower = best_change(bundle, row, columns, split_thresholds(bundle), higher_is_better=False)
    assert lower is not None and lower.change_to is False
    assert lower.probability < float(bundle.predict_proba(row[None, :])[0])
    # already at the best value of the only actionable feature: nothing to suggest
    assert best_change(bundle, row, columns, split_thresholds(bundle)) is None
    assert best_change(bundle, row, [], split_thresholds(bundle)) is None
