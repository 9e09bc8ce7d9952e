"""Training: held-out split, cross-validated LightGBM selection, baseline, calibration.

``train_model`` is the one training routine behind every model (lead conversion, plan,
activity churn, snapshot churn):

1. A held-out split that training never sees: the latest slice by ``time_column``, the latest
   group (e.g. the latest cutoff of stacked activity snapshots) by ``group_column``, or else a
   stratified random slice.
2. Stratified K-fold cross-validation on the rest picks among a small grid of LightGBM
   settings (and the number of boosting rounds, by early stopping). Categorical features go in
   as the encoder's codes with ``categorical_feature``, so LightGBM splits on them natively.
   With ``tune`` on, Optuna's step-wise tuner then searches further from the grid's best
   within ``tuning_budget_seconds``, on the same folds (``models.tuning``); its settings
   replace the grid's only when their cross-validated score is better.
3. Class imbalance: below ``imbalance_threshold`` minority share, rows are weighted so classes
   weigh the same (balanced); the bias this puts in probabilities is then undone by
   calibration.
4. A scikit-learn logistic-regression baseline (one-hot + scaling) on the same split and
   folds, so every figure has a simple model beside it.
5. Three candidates (LightGBM, the baseline, a blend of both in log-odds): the winner on the
   cross-validation folds, confirmed on the held-out rows against the baseline, is the model
   (``models.candidates``).
6. Platt calibration of the winner's raw score, fitted on its out-of-fold predictions and
   kept only where it lowers log loss on out-of-fold rows it was not fitted on.

No Dagster imports: the Dagster assets, the ``evaluate`` command and the benchmark call this.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

from leadscore_assets.models.candidates import (
    BLEND_SHARES,
    CANDIDATES,
    Selection,
    choose,
    linear_decision,
    primary_score,
    squeeze,
)
from leadscore_assets.models.metrics import evaluate
from leadscore_assets.models.tuning import Tuning, tune
from leadscore_core.explain import LinearPart, mean_abs_share
from leadscore_core.registry import PRIMARY_METRIC
from leadscore_core.serving import Encoder, ModelBundle, boolean_value
from leadscore_core.settings import get_settings

Task = Literal["binary", "multiclass"]
IMPORTANCE_ROWS = 5_000  # training rows the feature importance is measured on


def _default_base_params() -> dict[str, Any]:
    return {
        "learning_rate": 0.05,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 5.0,
        "cat_smooth": 20.0,
        "cat_l2": 10.0,
        "min_data_per_group": 50,
        "max_cat_to_onehot": 8,
    }


def _default_grid() -> list[dict[str, Any]]:
    return [
        {"num_leaves": 7, "min_data_in_leaf": 60},
        {"num_leaves": 15, "min_data_in_leaf": 40},
    ]


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained (the assets expose it as ``dg.Config``)."""

    base_params: dict[str, Any] = field(default_factory=_default_base_params)
    grid: list[dict[str, Any]] = field(default_factory=_default_grid)
    max_rounds: int = 1000
    early_stopping_rounds: int = 40
    cv_folds: int = 5
    imbalance: Literal["auto", "balanced", "none"] = "auto"
    imbalance_threshold: float = 0.3  # "auto" weights classes when the minority share is below
    calibrate: bool = True
    holdout_fraction: float = 0.2
    seed: int = 42
    # OpenMP threads spin-wait: on a busy 2-core machine one thread per model is fastest.
    # Also the BLAS threads of the logistic baseline's fits (same results, one thread each).
    num_threads: int = 1
    baseline_c: float = 1.0
    reference_rows: int = 100_000
    # Permute the training labels (seeded; held-out labels stay true): a deliberately useless
    # model whose held-out score shows what chance looks like, to rehearse the champion gate.
    shuffle_labels: bool = False
    # Tune LightGBM beyond the grid (Optuna, cross-validation folds only) within this budget
    # per model; defaults: LEADSCORE_TUNING, LEADSCORE_TUNING_BUDGET_SECONDS.
    tune: bool = field(default_factory=lambda: get_settings().tuning)
    tuning_budget_seconds: float = field(
        default_factory=lambda: get_settings().tuning_budget_seconds)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class TrainedModel:
    """A trained model with everything the tracking, the champion gate and drift need."""

    bundle: ModelBundle
    metrics: dict[str, float]  # LightGBM on the held-out rows
    baseline_metrics: dict[str, float]  # logistic regression on the same rows
    cv: dict[str, Any]  # per grid point: CV score and rounds; the chosen one
    holdout: pd.DataFrame  # features + label of the held-out rows (re-score another model)
    holdout_proba: np.ndarray  # this model's held-out probabilities (plots)
    reference: pd.DataFrame  # sample of training features (drift reference)
    params: dict[str, Any]  # LightGBM parameters of the chosen model, rounds, config
    row_counts: dict[str, int]
    data_hash: str
    label: str
    split: dict[str, Any] = field(default_factory=dict)  # how the held-out rows were chosen
    baseline: Pipeline = field(repr=False, default=None)
    timings: dict[str, float] = field(default_factory=dict)
    selection: Selection | None = None  # which candidate won, and by how much
    tuning: Tuning | None = None  # the tuner's trials, when tuning was on

    @property
    def holdout_labels(self) -> np.ndarray:
        return label_codes(self.holdout[self.label], self.bundle.task, self.bundle.classes)[0]


# -- public entry point -------------------------------------------------------------------------


def train_model(
    frame: pd.DataFrame,
    *,
    name: str,
    task: Task,
    label: str,
    features: Mapping[str, str],
    time_column: str | None = None,
    group_column: str | None = None,
    entity_column: str | None = None,
    config: TrainConfig | None = None,
    original_names: Mapping[str, str] | None = None,
    classes: list[str] | None = None,
) -> TrainedModel:
    """Train and evaluate one model; see the module docstring for the steps.

    ``features`` maps feature column -> kind (categorical | numeric | boolean);
    ``original_names`` maps them to the export's column names (for reasons); ``classes`` fixes
    the class list of a multi-class model (e.g. the plan catalogue), else the sorted labels.
    ``entity_column`` (e.g. the customer of stacked cutoffs) keeps all rows of one entity in
    one cross-validation fold, so selection is not fooled by a customer seen twice.
    Rows without a label are not used (and counted in ``row_counts['unlabelled']``).
    Every thread pool (LightGBM's, BLAS under the baseline) uses ``config.num_threads``.
    """
    config = config or TrainConfig()
    with threadpool_limits(config.num_threads):
        return _train(frame, name=name, task=task, label=label, features=features,
                      time_column=time_column, group_column=group_column,
                      entity_column=entity_column, config=config,
                      original_names=original_names, classes=classes)


def _train(frame: pd.DataFrame, *, name: str, task: Task, label: str,
           features: Mapping[str, str], time_column: str | None, group_column: str | None,
           entity_column: str | None, config: TrainConfig,
           original_names: Mapping[str, str] | None,
           classes: list[str] | None) -> TrainedModel:
    started = time.perf_counter()
    missing = [c for c in [label, *features] if c not in frame.columns]
    if missing:
        raise KeyError(f"{name}: training frame lacks columns {missing}")
    labelled = frame[frame[label].notna()].reset_index(drop=True)
    y_all, classes = label_codes(labelled[label], task, classes)
    keep = y_all >= 0
    labelled, y_all = labelled[keep].reset_index(drop=True), y_all[keep]
    if len(labelled) < 20 or len(np.unique(y_all)) < 2:
        raise ValueError(f"{name}: {len(labelled)} labelled rows with "
                         f"{len(np.unique(y_all))} class(es); need at least 20 rows, 2 classes")

    train_idx, hold_idx = split_holdout(labelled, y_all, time_column=time_column,
                                        group_column=group_column, config=config)
    train, hold = labelled.iloc[train_idx], labelled.iloc[hold_idx]
    y_train, y_hold = y_all[train_idx], y_all[hold_idx]
    if len(np.unique(y_hold)) < 2:
        raise ValueError(f"{name}: the held-out split holds a single class")
    if config.shuffle_labels:
        y_train = np.random.default_rng(config.seed).permutation(y_train)

    encoder = Encoder.fit(train, features, original_names)
    X_train, X_hold = encoder.transform_frame(train), encoder.transform_frame(hold)
    weights = sample_weights(y_train, task, config)
    params = _objective(task, len(classes), config)
    cat_idx = encoder.categorical_indices

    t0 = time.perf_counter()
    entities = train[entity_column].to_numpy() if entity_column else None
    cv_summary, best_params, rounds, oof_tree, splits, tuning = _select(
        X_train, y_train, weights, params, cat_idx, config, entities)
    booster = lgb.train(best_params, lgb.Dataset(X_train, y_train, weight=weights,
                                                 categorical_feature=cat_idx,
                                                 free_raw_data=False), num_boost_round=rounds)
    timings = {"select_and_fit_s": time.perf_counter() - t0}

    t0 = time.perf_counter()
    baseline = fit_baseline(encoder, X_train, y_train, config)
    oof_linear = np.empty_like(oof_tree)
    for fit, valid in splits:
        fold = fit_baseline(encoder, X_train[fit], y_train[fit], config)
        oof_linear[valid] = squeeze(task, linear_decision(fold, task, len(classes))(
            X_train[valid]))
    linear = LinearPart.from_decision(linear_decision(baseline, task, len(classes)), encoder,
                                      X_train)
    timings["baseline_s"] = time.perf_counter() - t0

    selection, oof_chosen, bundle = _choose_candidate(
        task, classes, y_train, y_hold, X_hold, oof_tree, oof_linear, booster, linear,
        encoder)
    cv_summary["candidates"] = selection.to_json()
    calibration = None
    if task == "binary" and config.calibrate:
        calibration, cv_summary["calibration"] = _platt_if_better(oof_chosen, y_train,
                                                                  config.seed)
    bundle.calibration = calibration
    proba = bundle.predict_proba(X_hold)
    metrics = evaluate(task, y_hold, proba)
    baseline_metrics = evaluate(task, y_hold, linear_probability(baseline, X_hold, task,
                                                                 len(classes)))

    importance_rows = X_train if len(X_train) <= IMPORTANCE_ROWS else X_train[
        np.random.default_rng(config.seed).choice(len(X_train), IMPORTANCE_ROWS,
                                                  replace=False)]
    importance = feature_importance(bundle, importance_rows)
    bundle.metadata.update({
        "name": name,
        "task": task,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
        "baseline_metrics": baseline_metrics,
        "feature_importance": importance,
        "label": label,
        "candidate": selection.to_json(),
    })
    if task == "binary":
        bundle.set_tier_boundaries(ModelBundle.score(proba))
        bundle.metadata["tier_boundaries_from"] = "held-out scores"

    columns = [*features, label]
    kept = [c for c in (time_column, group_column, entity_column) if c and c not in columns]
    sample = train[list(features)]
    if len(sample) > config.reference_rows:
        sample = sample.sample(config.reference_rows, random_state=config.seed)
    timings["total_s"] = time.perf_counter() - started
    return TrainedModel(
        bundle=bundle,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        cv=cv_summary,
        holdout=hold[columns + kept].reset_index(drop=True),
        holdout_proba=proba,
        reference=sample.reset_index(drop=True),
        params={**best_params, "num_boost_round": rounds,
                "config": {k: v for k, v in asdict(config).items() if k != "grid"}},
        row_counts={
            "rows": len(frame),
            "unlabelled": int(len(frame) - len(labelled)),
            "train": len(train),
            "holdout": len(hold),
            **{f"train_class_{c}": int((y_train == i).sum()) for i, c in enumerate(classes)},
        },
        data_hash=frame_hash(frame, [c for c in [*columns, time_column, group_column] if c]),
        label=label,
        split=describe_split(train, hold, time_column, group_column),
        baseline=baseline,
        timings=timings,
        selection=selection,
        tuning=tuning,
    )


# -- steps --------------------------------------------------------------------------------------


def label_codes(values: pd.Series, task: str,
                classes: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Labels -> integer codes (-1 for a label outside ``classes``) and the class names."""
    if task == "binary":
        mapped = values.map(boolean_value)
        if mapped.isna().any():
            bad = values[mapped.isna()].iloc[0]
            raise ValueError(f"binary label {values.name!r}: unreadable value {bad!r}")
        return mapped.to_numpy(dtype=np.int64), ["false", "true"]
    text = values.astype("string")
    classes = list(classes) if classes else sorted(text.dropna().unique().tolist())
    index = {c: i for i, c in enumerate(classes)}
    return text.map(lambda v: index.get(v, -1)).to_numpy(dtype=np.int64), classes


def split_holdout(frame: pd.DataFrame, y: np.ndarray, *, time_column: str | None,
                  group_column: str | None, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training part and of the held-out part."""
    positions = np.arange(len(frame))
    if group_column:
        groups = frame[group_column]
        latest = groups.max()
        hold = (groups == latest).to_numpy()
        if hold.all():
            raise ValueError(f"{group_column!r} has a single value: nothing left to train on")
        return positions[~hold], positions[hold]
    if time_column:
        times = pd.to_datetime(frame[time_column])
        # Rows without a time cannot be placed in time: they stay on the training side.
        order = times.fillna(pd.Timestamp.min).to_numpy().argsort(kind="stable")
        n_hold = max(1, int(round(config.holdout_fraction * len(frame))))
        return np.sort(order[:-n_hold]), np.sort(order[-n_hold:])
    train, hold = train_test_split(positions, test_size=config.holdout_fraction,
                                   random_state=config.seed, stratify=y)
    return np.sort(train), np.sort(hold)


def describe_split(train: pd.DataFrame, hold: pd.DataFrame, time_column: str | None,
                   group_column: str | None) -> dict[str, Any]:
    """What separates training from held-out rows (for the run's record and for review)."""
    column = group_column or time_column
    if not column:
        return {"kind": "stratified_random"}
    return {"kind": "group" if group_column else "time", "column": column,
            "train_until": str(train[column].max()), "holdout_from": str(hold[column].min())}


def sample_weights(y: np.ndarray, task: str, config: TrainConfig) -> np.ndarray | None:
    """Balanced class weights where the minority class is rare enough to need them."""
    if config.imbalance == "none":
        return None
    if config.imbalance == "auto":
        counts = np.bincount(y)
        minority = counts[counts > 0].min() / len(y)
        if minority >= config.imbalance_threshold:
            return None
    return compute_sample_weight("balanced", y)


def _objective(task: str, n_classes: int, config: TrainConfig) -> dict[str, Any]:
    params = {**config.base_params, "verbose": -1, "seed": config.seed,
              "num_threads": config.num_threads, "deterministic": True,
              "force_col_wise": True}
    if task == "binary":
        params.update(objective="binary", metric="auc")
    else:
        params.update(objective="multiclass", num_class=n_classes, metric="multi_logloss")
    return params


def _select(X: np.ndarray, y: np.ndarray, weights: np.ndarray | None, params: dict[str, Any],
            cat_idx: list[int], config: TrainConfig, entities: np.ndarray | None = None):
    """Stratified K-fold CV over the grid, then tuning (when on) from the grid's best; returns
    summary, params, rounds, out-of-fold raw scores, the folds (the other candidates are
    cross-validated on the same folds) and the tuning record."""
    counts = np.bincount(y)
    folds = min(config.cv_folds, int(counts[counts > 0].min()))
    if folds < 2:
        raise ValueError("a class has fewer than 2 training rows: cannot cross-validate")
    if entities is not None:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=config.seed)
        splits = list(splitter.split(X, y, groups=entities))
    else:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=config.seed)
        splits = list(splitter.split(X, y))
    # One Dataset serves the whole grid; min_data_in_leaf varies, so no pre-filtering.
    data = lgb.Dataset(X, y, weight=weights, categorical_feature=cat_idx, free_raw_data=False,
                       params={"feature_pre_filter": False})
    metric = params["metric"]
    higher_better = metric == "auc"
    results = []
    best = None
    for point in config.grid:
        trial = {**params, **point}
        res = lgb.cv(trial, data, num_boost_round=config.max_rounds, folds=splits,
                     callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
                     return_cvbooster=True)
        scores = res[f"valid {metric}-mean"]
        entry = {**point, "cv_" + metric: float(scores[-1]),
                 "cv_std": float(res[f"valid {metric}-stdv"][-1]), "rounds": len(scores)}
        results.append(entry)
        better = best is None or (scores[-1] > best[0] if higher_better else scores[-1] < best[0])
        if better:
            best = (scores[-1], trial, len(scores), res["cvbooster"])
    grid_score, best_params, rounds, cvbooster = best
    summary = {"metric": metric, "folds": folds, "grid": results,
               "chosen": {k: best_params[k] for k in config.grid[0]}, "rounds": rounds,
               "cv_score": float(grid_score)}
    tuning = None
    if config.tune:
        tuning = tune(X, y, weights, cat_idx, best_params, splits,
                      budget_seconds=config.tuning_budget_seconds,
                      max_rounds=config.max_rounds,
                      early_stopping_rounds=config.early_stopping_rounds, seed=config.seed)
        better = tuning.best_score is not None and (
            tuning.best_score > grid_score if higher_better else tuning.best_score < grid_score)
        summary["tuning"] = {**tuning.summary(), "grid_cv_score": float(grid_score),
                             "chosen": "tuned" if better else "grid"}
        if better:
            best_params, rounds, cvbooster = tuning.params, tuning.rounds, tuning.cvbooster
            summary.update(rounds=rounds, cv_score=tuning.best_score, chosen={"tuned": True})
    binary = params["objective"] == "binary"
    oof = np.empty(len(y) if binary else (len(y), params["num_class"]))
    for booster, (_, valid) in zip(cvbooster.boosters, splits, strict=True):
        oof[valid] = booster.predict(X[valid], raw_score=True, num_iteration=rounds,
                                     num_threads=config.num_threads)
    return summary, best_params, rounds, oof, splits, tuning


def _platt_if_better(raw: np.ndarray, y: np.ndarray,
                     seed: int) -> tuple[dict[str, Any] | None, dict[str, float]]:
    """Platt scaling of the raw score, kept only if it lowers cross-fitted log loss."""
    from sklearn.metrics import log_loss

    raw2 = raw.reshape(-1, 1)
    cross = np.empty(len(y))
    for fit, apply in StratifiedKFold(5, shuffle=True, random_state=seed).split(raw2, y):
        lr = LogisticRegression(C=1e4).fit(raw2[fit], y[fit])
        cross[apply] = lr.predict_proba(raw2[apply])[:, 1]
    before = float(log_loss(y, 1 / (1 + np.exp(-raw)), labels=[0, 1]))
    after = float(log_loss(y, cross, labels=[0, 1]))
    report = {"oof_log_loss_uncalibrated": before, "oof_log_loss_calibrated": after}
    if after >= before:
        return None, report
    lr = LogisticRegression(C=1e4).fit(raw2, y)
    return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}, report


def fit_baseline(encoder: Encoder, X: np.ndarray, y: np.ndarray, config: TrainConfig) -> Pipeline:
    """Logistic regression on one-hot categories and scaled numbers (missing -> indicator)."""
    cat = encoder.categorical_indices
    num = [i for i in range(X.shape[1]) if i not in set(cat)]
    steps = []
    if cat:
        steps.append(("categorical", make_pipeline(
            SimpleImputer(strategy="constant", fill_value=-1.0),
            OneHotEncoder(handle_unknown="ignore", min_frequency=5)), cat))
    if num:
        steps.append(("numeric", make_pipeline(
            # a column never filled in (CodePro's rarer interactions) stays, as a constant 0
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler()), num))
    model = Pipeline([
        ("encode", ColumnTransformer(steps)),
        ("model", LogisticRegression(C=config.baseline_c, max_iter=2000,
                                     class_weight="balanced" if sample_weights(
                                         y, "", config) is not None else None)),
    ])
    return model.fit(X, y)


def _full_proba(model: Pipeline, proba: np.ndarray, n_classes: int) -> np.ndarray:
    """Widen a classifier's probabilities to every class (a class may be absent in training)."""
    out = np.zeros((len(proba), n_classes))
    out[:, model.classes_] = proba
    return out


def feature_importance(bundle: ModelBundle, X: np.ndarray) -> dict[str, float]:
    """Each feature's share of the mean absolute contribution (the one explainer's, on the
    training rows ``X``), by the export's column name, largest first: the same measure for a
    tree, a linear model or a blend."""
    shares = mean_abs_share(bundle.explainer, X)
    pairs = sorted(zip((s.original_name for s in bundle.encoder.specs), shares, strict=True),
                   key=lambda p: -p[1])
    return {name: round(float(share), 6) for name, share in pairs}


def linear_probability(pipeline: Pipeline, X: np.ndarray, task: str,
                       n_classes: int) -> np.ndarray:
    """The baseline's probabilities: positive class (binary) or every class."""
    proba = pipeline.predict_proba(X)
    return proba[:, 1] if task == "binary" else _full_proba(pipeline, proba, n_classes)


def _choose_candidate(task: str, classes: list[str], y_train: np.ndarray, y_hold: np.ndarray,
                      X_hold: np.ndarray, oof_tree: np.ndarray, oof_linear: np.ndarray,
                      booster: lgb.Booster, linear: LinearPart, encoder: Encoder
                      ) -> tuple[Selection, np.ndarray, ModelBundle]:
    """Score the three candidates out-of-fold and on the held-out rows; ``candidates.choose``
    picks. Returns the selection, the winner's out-of-fold raw scores and its bundle."""
    metric = PRIMARY_METRIC[task]
    shares = {w: primary_score(task, y_train, w * oof_tree + (1 - w) * oof_linear)
              for w in BLEND_SHARES}
    share = max(BLEND_SHARES, key=lambda w: shares[w])  # first best: the smaller LightGBM share
    bundles = {
        "lightgbm": ModelBundle(booster=booster, encoder=encoder, task=task, classes=classes),
        "logistic": ModelBundle(booster=None, linear=linear, encoder=encoder, task=task,
                                classes=classes),
        "blend": ModelBundle(booster=booster, linear=linear, tree_weight=share,
                             encoder=encoder, task=task, classes=classes),
    }
    oof = {"lightgbm": oof_tree, "logistic": oof_linear,
           "blend": share * oof_tree + (1 - share) * oof_linear}
    cv = {c: primary_score(task, y_train, oof[c]) for c in CANDIDATES}
    holdout = {c: primary_score(task, y_hold, bundles[c].raw_score(X_hold))
               for c in CANDIDATES}
    selection = choose(metric, cv, holdout, share)
    return selection, oof[selection.chosen], bundles[selection.chosen]


def frame_hash(frame: pd.DataFrame, columns: list[str]) -> str:
    """Stable SHA-256 of the given columns (names, order-independent of column order)."""
    digest = hashlib.sha256()
    for col in sorted(set(columns)):
        digest.update(col.encode())
        values = pd.util.hash_pandas_object(frame[col].astype("string"), index=False)
        digest.update(values.to_numpy().tobytes())
    return digest.hexdigest()
