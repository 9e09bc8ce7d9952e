"""Model assets: train, track in MLflow, register a challenger version.

One asset per model. Each reads its feature table, trains with ``models.training.train_model``
(LightGBM selected by cross-validation, a logistic-regression baseline, held-out evaluation)
and logs everything a person would want to look at later to MLflow: parameters, held-out
metrics of the model and of the baseline, the data's row counts and hash, plots, the model as
a ``LeadscorePyfunc`` with signature and input example, the held-out rows (so the champion
gate can re-score another version on the same rows), the drift reference and the keys of the
rows it learned from (``features.seen``: the drift window is the rows it has not seen).

MLflow runs: the ``mlflow`` resource (dagster-mlflow) opens one MLflow run per Dagster run;
each model logs to its own nested child run, because one Dagster run usually trains several
models and their parameters would collide in a single MLflow run. Every training registers a
new version and points the alias ``challenger`` at it; the champion asset
(``models/champion.py``) decides whether it becomes ``champion``.
"""

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from mlflow.entities import Metric
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema

from leadscore_assets.features.activity import ACTIVITY_FEATURES
from leadscore_assets.features.assets import (
    active_profile,
    markdown_table,
    original_names,
    required_table,
    table_feature_kinds,
    table_profile,
)
from leadscore_assets.features.leads import TIME_FEATURES, lead_feature_kinds
from leadscore_assets.features.seen import TRAINING_ROWS_ARTIFACT, training_rows_frame
from leadscore_assets.features.snapshot import PAYMENT_FEATURES, snapshot_feature_kinds
from leadscore_assets.models.candidates import Selection, label
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.models.quality import ACTIVITY_OVERRIDES
from leadscore_assets.models.resources import MlflowTracking
from leadscore_assets.models.training import TrainConfig, TrainedModel, train_model
from leadscore_assets.models.tuning import Tuning
from leadscore_assets.resources import SettingsResource, published_snapshots
from leadscore_core.plans import PlanCatalogue
from leadscore_core.registry import (
    HOLDOUT_ARTIFACT,
    MODEL_ARTIFACT,
    MODELS,
    PRIMARY_METRIC,
    REFERENCE_ARTIFACT,
    TAG_CANDIDATE,
    TAG_CANDIDATE_REASON,
    TAG_LABEL,
    TAG_PROFILE,
    TAG_TASK,
)
from leadscore_core.serving import LeadscorePyfunc, ModelBundle
from leadscore_core.settings import get_settings

GROUP = "models"
KINDS = {"lightgbm", "mlflow"}
TAG_TUNING = "leadscore.tuning"  # "tuned" or "grid": whose settings the LightGBM candidate has
TAG_TUNING_STOP = "leadscore.tuning_stop"  # "completed" or "budget"
TUNING_TRIALS_ARTIFACT = "tuning/trials.json"

# -- hyper-parameters ------------------------------------------------------------------------


class ModelConfig(dg.Config):
    """Training settings a run may override; unset fields keep the model's defaults.

    The defaults live in one place, ``models.training.TrainConfig`` (plus the activity
    model's overrides in ``models.quality``), the same settings the quality bars are
    measured with.
    """

    learning_rate: float | None = None
    num_leaves: list[int] | None = None
    """Grid of tree sizes tried by cross-validation, paired with ``min_data_in_leaf``."""
    min_data_in_leaf: list[int] | None = None
    max_rounds: int | None = None
    early_stopping_rounds: int | None = None
    cv_folds: int | None = None
    imbalance: str | None = None
    """auto | balanced | none: class weights for a rare class."""
    calibrate: bool | None = None
    holdout_fraction: float | None = None
    seed: int | None = None
    num_threads: int | None = None
    shuffle_labels: bool | None = None
    """Train on permuted labels (held-out labels stay true): a deliberately useless model,
    to rehearse the champion gate."""
    tune: bool | None = None
    """Tune LightGBM beyond the grid (default: ``LEADSCORE_TUNING``)."""
    tuning_budget_seconds: float | None = None
    """Tuning's time budget (default: ``LEADSCORE_TUNING_BUDGET_SECONDS``)."""

    def train_config(self, base: TrainConfig) -> TrainConfig:
        changes: dict[str, Any] = {
            name: getattr(self, name)
            for name in ("max_rounds", "early_stopping_rounds", "cv_folds", "imbalance",
                         "calibrate", "holdout_fraction", "seed", "num_threads",
                         "shuffle_labels", "tune", "tuning_budget_seconds")
            if getattr(self, name) is not None
        }
        if self.learning_rate is not None:
            changes["base_params"] = {**base.base_params, "learning_rate": self.learning_rate}
        if self.num_leaves is not None or self.min_data_in_leaf is not None:
            leaves = self.num_leaves or [p["num_leaves"] for p in base.grid]
            per_leaf = self.min_data_in_leaf or [p["min_data_in_leaf"] for p in base.grid]
            if len(leaves) != len(per_leaf):
                raise ValueError("num_leaves and min_data_in_leaf must have the same length")
            changes["grid"] = [{"num_leaves": n, "min_data_in_leaf": m}
                               for n, m in zip(leaves, per_leaf, strict=True)]
        return replace(base, **changes)


class LeadConversionConfig(ModelConfig):
    pass


class PlanConfig(ModelConfig):
    pass


class ActivityChurnConfig(ModelConfig):
    pass


class SnapshotChurnConfig(ModelConfig):
    pass


# -- training and logging ------------------------------------------------------------------


@dataclass
class TrainingSet:
    """What one model learns from: rows, label, inputs and how the hold-out is chosen."""

    frame: pd.DataFrame
    task: str
    label: str
    features: dict[str, str]
    original_names: dict[str, str]
    time_column: str | None = None
    group_column: str | None = None
    entity_column: str | None = None
    classes: list[str] | None = None
    base_config: TrainConfig = field(default_factory=TrainConfig)
    profile: str | None = None  # the source profile the rows were typed with


MIN_LABELLED_ROWS = 50


def learnable(data: TrainingSet) -> str | None:
    """Why this training set cannot make a model (None when it can)."""
    labels = data.frame[data.label].dropna()
    if len(labels) < MIN_LABELLED_ROWS:
        return f"{len(labels)} labelled rows (at least {MIN_LABELLED_ROWS} needed)"
    if labels.astype(str).nunique() < 2:
        return f"every labelled row has the same {data.label!r}"
    return None


def train_and_register(context: dg.AssetExecutionContext, model: str, data: TrainingSet,
                       config: ModelConfig, registry: ModelRegistryResource,
                       tracking: MlflowTracking) -> Iterator[dg.MaterializeResult]:
    """Train, log the run to MLflow, register a version and make it the challenger.

    A business without data for this model (no plans sold yet, no customer snapshots) gets
    no new version: nothing is yielded, so the asset is not materialised and its gate and
    the scores downstream are skipped rather than failed.
    """
    reason = learnable(data)
    if reason is not None:
        context.log.warning(f"{model}: not trained: {reason}")
        return
    frame = data.frame
    # which rows this version has seen: the drift window is the rows it has not
    seen = training_rows_frame(frame)
    started = time.perf_counter()
    trained = train_model(
        frame, name=model, task=data.task, label=data.label, features=data.features,
        time_column=data.time_column, group_column=data.group_column,
        entity_column=data.entity_column, config=config.train_config(data.base_config),
        original_names=data.original_names,
        classes=data.classes)
    seconds = time.perf_counter() - started
    context.log.info(f"{model}: trained in {seconds:.1f}s on {trained.row_counts['train']} rows")

    registered = MODELS[model]
    parent = tracking.active_run()  # the Dagster run's MLflow run, opened by the resource
    with mlflow.start_run(run_name=model, nested=parent is not None,
                          tags={"leadscore.model": model,
                                "dagster_run_id": context.run.run_id,
                                "data_hash": trained.data_hash}) as run, \
            tempfile.TemporaryDirectory() as tmp:
        _log_run(trained, Path(tmp), seconds, config)
        seen.to_parquet(Path(tmp) / TRAINING_ROWS_ARTIFACT, index=False)
        mlflow.log_artifact(str(Path(tmp) / TRAINING_ROWS_ARTIFACT))
        info = _log_model(trained, Path(tmp), frame, data)
        selection = trained.selection
        version = mlflow.register_model(
            info.model_uri, registered,
            tags={TAG_TASK: data.task, TAG_LABEL: data.label, "data_hash": trained.data_hash,
                  TAG_CANDIDATE: selection.chosen, TAG_CANDIDATE_REASON: selection.reason,
                  **({TAG_PROFILE: data.profile} if data.profile else {})})
    registry.registry().set_challenger(model, version.version)

    yield dg.MaterializeResult(metadata={
        "registered_model": registered,
        "version": int(version.version),
        "mlflow_run_id": run.info.run_id,
        "candidate": selection.chosen,
        "candidate_reason": selection.reason,
        "candidates": dg.MetadataValue.md(_candidates_table(selection)),
        # a link a person can open (make mlflow serves the UI)
        "mlflow_run": dg.MetadataValue.url(
            get_settings().mlflow_run_url(run.info.experiment_id, run.info.run_id)),
        "metrics": dg.MetadataValue.md(_metrics_table(trained)),
        f"holdout_{PRIMARY_METRIC[data.task]}": trained.metrics[PRIMARY_METRIC[data.task]],
        f"baseline_{PRIMARY_METRIC[data.task]}":
            trained.baseline_metrics[PRIMARY_METRIC[data.task]],
        "row_counts": dg.MetadataValue.json(trained.row_counts),
        "data_hash": trained.data_hash,
        "features": len(data.features),
        "top_features": dg.MetadataValue.md(markdown_table(pd.DataFrame(
            list(trained.bundle.metadata["feature_importance"].items())[:10],
            columns=["feature", "gain share"]))),
        "training_seconds": round(seconds, 2),
        "calibrated": trained.bundle.calibration is not None,
        **({"tuning": dg.MetadataValue.json(trained.cv["tuning"])}
           if "tuning" in trained.cv else {}),
    })


def _log_run(trained: TrainedModel, tmp: Path, seconds: float, config: ModelConfig) -> None:
    params = {k: v for k, v in trained.params.items() if k != "config"}
    params.update({f"config.{k}": v for k, v in trained.params.get("config", {}).items()
                   if k != "base_params"})
    mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
    mlflow.log_metrics({k: float(v) for k, v in trained.metrics.items() if np.isfinite(v)})
    mlflow.log_metrics({f"baseline_{k}": float(v) for k, v in trained.baseline_metrics.items()
                        if np.isfinite(v)})
    mlflow.log_metrics({f"rows_{k}": float(v) for k, v in trained.row_counts.items()})
    mlflow.log_metric("training_seconds", seconds)
    mlflow.set_tag("data_hash", trained.data_hash)
    mlflow.log_dict(trained.cv, "cv.json")
    selection = trained.selection
    mlflow.set_tags({TAG_CANDIDATE: selection.chosen, TAG_CANDIDATE_REASON: selection.reason})
    for candidate in selection.cv:
        mlflow.log_metric(f"cv_{selection.metric}_{candidate}", selection.cv[candidate])
        mlflow.log_metric(f"holdout_{selection.metric}_{candidate}",
                          selection.holdout[candidate])
    mlflow.log_metric("candidate_cv_margin", selection.cv_margin)
    mlflow.log_metric("candidate_holdout_vs_baseline", selection.holdout_vs_baseline)
    if trained.tuning is not None:
        _log_tuning(trained.tuning, trained.cv["tuning"]["chosen"])

    plots = tmp / "plots"
    plots.mkdir()
    for path in _plots(trained, plots):
        mlflow.log_artifact(str(path), "plots")
    for artifact, frame in ((HOLDOUT_ARTIFACT, trained.holdout),
                            (REFERENCE_ARTIFACT, trained.reference)):
        path = tmp / artifact
        _parquet_safe(frame).to_parquet(path, index=False)
        mlflow.log_artifact(str(path))


def _log_tuning(tuning: Tuning, chosen: str) -> None:
    """Tuning's record in the model's run: its outcome as tags and metrics, every trial's
    cross-validated score as the steps of ``tuning_trial_cv_score`` (a curve in the UI) and
    the trials table (``tuning/trials.json``: step, score, seconds, parameters tried)."""
    mlflow.set_tags({TAG_TUNING: chosen, TAG_TUNING_STOP: tuning.stop_reason})
    mlflow.log_metrics({"tuning_trials": len(tuning.trials), "tuning_seconds": tuning.seconds,
                        "tuning_budget_seconds": tuning.budget_seconds})
    if tuning.best_score is not None:
        mlflow.log_metric("tuning_best_cv_score", tuning.best_score)
    if not tuning.trials:
        return
    now = int(time.time() * 1000)
    run_id = mlflow.active_run().info.run_id
    mlflow.MlflowClient().log_batch(run_id, metrics=[
        Metric("tuning_trial_cv_score", t["cv_score"], now, t["trial"]) for t in tuning.trials])
    mlflow.log_table(pd.DataFrame(tuning.trials), TUNING_TRIALS_ARTIFACT)


def _log_model(trained: TrainedModel, tmp: Path, frame: pd.DataFrame, data: TrainingSet):
    bundle_dir = trained.bundle.save(tmp / "bundle")
    example = _input_example(trained.holdout.head(5), data.features)
    wrapper = LeadscorePyfunc()
    wrapper.bundle = ModelBundle.load(bundle_dir)
    signature = ModelSignature(
        inputs=_input_schema(data.features),
        outputs=infer_signature(example, wrapper.predict(None, example)).outputs)
    return mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=LeadscorePyfunc(),
        artifacts={LeadscorePyfunc.ARTIFACT: str(bundle_dir)},
        signature=signature,
        input_example=example,
        # Pinned here so MLflow does not spend seconds inferring them on every training; the
        # pyfunc imports ``leadscore_core.serving``, so serve it from the project's env.
        pip_requirements=_requirements(),
    )


_SCHEMA_TYPE = {"categorical": "string", "numeric": "double", "boolean": "boolean"}


def _input_schema(features: dict[str, str]) -> Schema:
    """Every input optional: a blank field is a missing value the model handles, not an error."""
    return Schema([ColSpec(_SCHEMA_TYPE[kind], name, required=False)
                   for name, kind in features.items()])


def _input_example(frame: pd.DataFrame, features: dict[str, str]) -> pd.DataFrame:
    """Rows as a caller would send them: text, floats, true/false, None where blank."""
    out = pd.DataFrame(index=range(len(frame)))
    for name, kind in features.items():
        s = frame[name].reset_index(drop=True)
        if kind == "numeric":
            out[name] = pd.to_numeric(s.astype(object).where(s.notna(), None),
                                      errors="coerce").astype("float64")
        elif kind == "boolean":
            out[name] = pd.Series([None if pd.isna(v) else bool(v) for v in s], dtype=object)
        else:
            out[name] = pd.Series([None if pd.isna(v) else str(v) for v in s], dtype=object)
    return out


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding mixed Python values become text so Parquet accepts them."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].astype("string")
    return out


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "lightgbm", "numpy", "pandas")]


def _plots(trained: TrainedModel, directory: Path) -> list[Path]:
    from leadscore_assets.models.plots import model_plots

    return list(model_plots(trained, directory))


def _candidates_table(selection: Selection) -> str:
    rows = [{"candidate": label(c, selection.blend_share),
             f"cv {selection.metric}": round(selection.cv[c], 4),
             f"held-out {selection.metric}": round(selection.holdout[c], 4),
             "chosen": "yes" if c == selection.chosen else ""} for c in selection.cv]
    return markdown_table(pd.DataFrame(rows))


def _metrics_table(trained: TrainedModel) -> str:
    rows = [{"metric": k, "model": round(v, 4),
             "baseline": round(trained.baseline_metrics.get(k, float("nan")), 4)}
            for k, v in trained.metrics.items()]
    return markdown_table(pd.DataFrame(rows))


# -- training sets ---------------------------------------------------------------------------


def lead_training_set(conn, settings: SettingsResource) -> TrainingSet:
    frame = required_table(conn, "features.lead_features")
    profile_kinds = table_feature_kinds(conn, "features.lead_features",
                                        exclude=_not_inputs(TIME_FEATURES))
    has_time = frame["created_at"].notna().any()
    return TrainingSet(
        frame=frame, task="binary", label="converted",
        features=lead_feature_kinds(profile_kinds, frame),
        original_names=original_names(active_profile(settings, "leads", conn)),
        profile=table_profile(conn, "leads"),
        time_column="created_at" if has_time else None,
    )


def plan_training_set(conn, settings: SettingsResource) -> TrainingSet:
    frame = required_table(conn, "features.plan_labels")
    profile_kinds = table_feature_kinds(conn, "features.plan_labels",
                                        exclude=_not_inputs(TIME_FEATURES))
    catalogue = PlanCatalogue.load(settings.get().plan_catalogue_path)
    seen = set(frame["plan"].dropna().astype(str))
    return TrainingSet(
        frame=frame, task="multiclass", label="plan",
        features=lead_feature_kinds(profile_kinds, frame),
        original_names=original_names(active_profile(settings, "leads", conn)),
        profile=table_profile(conn, "leads"),
        time_column="created_at" if frame["created_at"].notna().any() else None,
        # the catalogue's order, limited to plans someone bought (a class with no rows
        # cannot be learned, and stratified CV needs every class present)
        classes=[p.name for p in catalogue.plans if p.name in seen],
    )


def activity_training_set(conn) -> TrainingSet:
    frame = required_table(conn, "features.customer_activity")
    # one customer appears once per cutoff: CV folds keep a customer's rows together
    return TrainingSet(frame=frame, task="binary", label="churned",
                       features=dict(ACTIVITY_FEATURES), original_names={},
                       group_column="cutoff", entity_column="customer_id",
                       base_config=replace(TrainConfig(), **ACTIVITY_OVERRIDES))


def snapshot_training_set(conn, settings: SettingsResource) -> TrainingSet:
    frame = required_table(conn, "features.customer_snapshot")
    profile_kinds = table_feature_kinds(conn, "features.customer_snapshot",
                                        exclude=_not_inputs(PAYMENT_FEATURES))
    # A snapshot is one moment: the customers' signup dates are not a time axis to hold
    # out on, so the held-out rows are a stratified random slice.
    return TrainingSet(frame=frame, task="binary", label="churned",
                       features=snapshot_feature_kinds(profile_kinds, frame),
                       original_names=original_names(active_profile(settings, "customers", conn)),
                       profile=table_profile(conn, "customers"))


def _not_inputs(extra: dict[str, str]) -> frozenset[str]:
    from leadscore_assets.features.assets import NOT_FEATURES

    return NOT_FEATURES | frozenset(extra)


# -- assets ----------------------------------------------------------------------------------

# No writer pool: a model reads the Parquet snapshots the feature assets publish, never the
# warehouse, so files keep landing while it trains.
_COMMON: dict[str, Any] = dict(group_name=GROUP, kinds=KINDS, output_required=False)


@dg.asset(key=["models", "lead_conversion"], deps=[dg.AssetKey(["features", "lead_features"])],
          **_COMMON)
def lead_conversion_model(context: dg.AssetExecutionContext, config: LeadConversionConfig,
                          warehouse: DuckDBResource, settings: SettingsResource,
                          model_registry: ModelRegistryResource,
                          mlflow: MlflowTracking) -> Iterator[dg.MaterializeResult]:
    """Will this lead convert? Binary LightGBM on the lead's profile features and arrival time,
    held out on the latest leads; registered as ``leadscore-lead-conversion``."""
    with published_snapshots(warehouse) as conn:
        data = lead_training_set(conn, settings)
    yield from train_and_register(context, "lead_conversion", data, config, model_registry, mlflow)


@dg.asset(key=["models", "plan"], deps=[dg.AssetKey(["features", "plan_labels"])], **_COMMON)
def plan_model(context: dg.AssetExecutionContext, config: PlanConfig,
               warehouse: DuckDBResource, settings: SettingsResource,
               model_registry: ModelRegistryResource,
               mlflow: MlflowTracking) -> Iterator[dg.MaterializeResult]:
    """Which plan will a converted lead buy? Multi-class over the plan catalogue; registered as
    ``leadscore-plan``."""
    with published_snapshots(warehouse) as conn:
        data = plan_training_set(conn, settings)
    yield from train_and_register(context, "plan", data, config, model_registry, mlflow)


@dg.asset(key=["models", "activity_churn"],
          deps=[dg.AssetKey(["features", "customer_activity"])], **_COMMON)
def activity_churn_model(context: dg.AssetExecutionContext, config: ActivityChurnConfig,
                         warehouse: DuckDBResource,
                         model_registry: ModelRegistryResource,
               mlflow: MlflowTracking) -> Iterator[dg.MaterializeResult]:
    """Will a customer stop buying within the horizon? Trained on several cutoffs, held out on
    the latest; registered as ``leadscore-activity-churn``."""
    with published_snapshots(warehouse) as conn:
        data = activity_training_set(conn)
    yield from train_and_register(context, "activity_churn", data, config, model_registry, mlflow)


@dg.asset(key=["models", "snapshot_churn"],
          deps=[dg.AssetKey(["features", "customer_snapshot"])], **_COMMON)
def snapshot_churn_model(context: dg.AssetExecutionContext, config: SnapshotChurnConfig,
                         warehouse: DuckDBResource, settings: SettingsResource,
                         model_registry: ModelRegistryResource,
               mlflow: MlflowTracking) -> Iterator[dg.MaterializeResult]:
    """Will a customer with this account snapshot leave? Registered as
    ``leadscore-snapshot-churn``."""
    with published_snapshots(warehouse) as conn:
        data = snapshot_training_set(conn, settings)
    yield from train_and_register(context, "snapshot_churn", data, config, model_registry, mlflow)


model_assets = [lead_conversion_model, plan_model, activity_churn_model, snapshot_churn_model]
