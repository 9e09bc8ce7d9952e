"""The batch leaf look-up gives LightGBM's own leaves, whatever the split kinds and values."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from leadscore_core.explain import Explainer
from leadscore_core.leaves import TreeLeaves
from leadscore_core.serving import Encoder, FeatureSpec, ModelBundle


def booster_for(objective: str, *, zero_as_missing: bool = False, num_leaves: int = 15,
                seed: int = 0) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 800
    X = np.column_stack([
        rng.integers(0, 12, n).astype(float),  # categorical codes
        np.where(rng.random(n) < 0.15, np.nan, rng.normal(size=n)),  # numeric, NaN
        np.where(rng.random(n) < 0.3, 0.0, rng.gamma(2, 3, n)),  # numeric, many zeros
        rng.integers(0, 2, n).astype(float),  # boolean
        np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 5, n)).astype(float),  # cat, NaN
    ])
    X[rng.random(n) < 0.1, 3] = np.nan
    signal = (np.isin(X[:, 0], [1, 4, 7]) * 1.5 + np.nan_to_num(X[:, 1]) + (X[:, 2] > 4)
              - (X[:, 3] == 1) + (X[:, 4] == 2))
    params = {"objective": objective, "verbose": -1, "num_leaves": num_leaves,
              "min_data_in_leaf": 5, "seed": seed, "num_threads": 1,
              "zero_as_missing": zero_as_missing, "max_cat_to_onehot": 4}
    if objective == "multiclass":
        y, params["num_class"] = np.digitize(signal + rng.normal(size=n), [0, 1, 2]), 4
    else:
        y = (signal + rng.normal(size=n) > 1).astype(int)
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[0, 4]),
                        num_boost_round=40)
    return booster, X


def edge_rows(X: np.ndarray, seed: int = 1) -> np.ndarray:
    """Rows mixing the data's values with the ones decisions treat specially."""
    rng = np.random.default_rng(seed)
    special = np.array([np.nan, 0.0, -0.0, 1e-40, -1e-40, -1.0, -0.5, 0.5, 2.5, 11.0, 12.0,
                        40.0, 1e300, -1e300])
    rows = X[rng.integers(0, len(X), 600)].copy()
    mask = rng.random(rows.shape) < 0.3
    rows[mask] = rng.choice(special, mask.sum())
    return rows


@pytest.mark.parametrize(("objective", "zero_as_missing", "num_leaves"), [
    ("binary", False, 15), ("binary", True, 15), ("multiclass", False, 7),
    ("binary", False, 63)])
def test_leaves_are_lightgbms_own(objective, zero_as_missing, num_leaves):
    booster, X = booster_for(objective, zero_as_missing=zero_as_missing,
                             num_leaves=num_leaves)
    leaves = TreeLeaves(booster.dump_model(), booster.model_to_string(), X.shape[1])
    for rows in (X, edge_rows(X), X[:1]):
        theirs = booster.predict(rows, pred_leaf=True, num_threads=1).reshape(len(rows), -1)
        np.testing.assert_array_equal(leaves(rows), theirs)
    assert leaves.matches(booster, X)


def test_a_model_whose_trees_do_not_fit_keeps_lightgbms_walk():
    booster, X = booster_for("binary", num_leaves=80)
    if max(t["num_leaves"] for t in booster.dump_model()["tree_info"]) <= 64:
        pytest.skip("no tree grew past 64 leaves")
    with pytest.raises(ValueError, match="64-bit"):
        TreeLeaves(booster.dump_model(), booster.model_to_string(), X.shape[1])
    specs = [FeatureSpec(f"f{j}", "numeric", f"f{j}") for j in range(X.shape[1])]
    bundle = ModelBundle(booster=booster, encoder=Encoder(specs), task="binary",
                         classes=["0", "1"])
    explainer = Explainer(bundle)
    raw = explainer.contributions(X[:50])[:, 0].sum(axis=1)
    assert explainer.tree.batch_leaves is None
    np.testing.assert_allclose(raw, booster.predict(X[:50], raw_score=True), atol=1e-9)


def binary_explainer() -> tuple[Explainer, np.ndarray]:
    """The explainer of a binary model on numeric columns, and the model's rows."""
    booster, X = booster_for("binary")
    specs = [FeatureSpec(f"f{j}", "numeric", f"f{j}") for j in range(X.shape[1])]
    bundle = ModelBundle(booster=booster, encoder=Encoder(specs), task="binary",
                         classes=["0", "1"])
    return Explainer(bundle), X


def test_explainer_uses_the_look_up_for_batches_with_the_same_contributions():
    explainer, X = binary_explainer()
    rows = edge_rows(X)
    fast = explainer.contributions(rows)
    assert explainer.tree.batch_leaves not in (None, True)  # built, and used
    explainer.tree.batch_leaves = None  # LightGBM's own walk
    np.testing.assert_array_equal(fast, explainer.contributions(rows))


def test_raw_scores_from_the_leaves_reached_are_lightgbms_and_the_contributions_sum():
    explainer, X = binary_explainer()
    rows = edge_rows(X)
    raw = explainer.tree.raw_scores(rows)
    np.testing.assert_allclose(raw, explainer.bundle.booster.predict(rows, raw_score=True),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(raw, explainer.contributions(rows)[:, 0].sum(axis=1), rtol=0,
                               atol=1e-12)
