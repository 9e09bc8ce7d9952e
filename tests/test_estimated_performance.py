"""Performance estimated before labels arrive, end to end: a champion trained in a real
MLflow store, windows landed in a real DuckDB file, the estimate asset materialised in-process
and the retraining sensor evaluated on its records (estimated drop, cadence).

The customer snapshots are hand-made with a known truth: churn follows a hidden engagement
that two features (logins, days since the last login) measure equally well. Shuffling one of
them in a window leaves every feature's distribution unchanged (no drift test can see it),
but the two now disagree, the champion's probabilities pull towards the middle, and the
estimate drops, as the realised figure would weeks later.
"""

import json
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from leadscore_assets.models.assets import snapshot_churn_model
from leadscore_assets.models.champion import champion_asset
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.models.resources import MlflowTracking
from leadscore_assets.monitoring.automation import REASON_TAG, RetrainPolicy, retraining_sensor
from leadscore_assets.monitoring.estimated import (
    ERROR_TABLE,
    WINDOW_TABLE,
    EstimationConfig,
    estimate_vs_realised,
    estimated_assets,
    estimated_key,
    top_tier_mask,
)
from leadscore_assets.resources import SettingsResource
from leadscore_core.estimation import realised_metrics, summary_lines
from leadscore_core.registry import CHAMPION, ModelRegistry
from leadscore_core.warehouse import publish_snapshot, snapshot_dir, snapshot_reader
from tests.support.accounts import FEATURES, TRAINED_BEFORE, accounts, now
from tests.support.mlflow_store import tracking_store

MODEL = "snapshot_churn"
FAST = {"num_leaves": [7], "min_data_in_leaf": [20], "max_rounds": 150,
        "early_stopping_rounds": 20, "cv_folds": 3, "learning_rate": 0.1}


class Stack:
    def __init__(self, root):
        self.data = root / "data"
        (self.data / "mlflow").mkdir(parents=True)
        self.warehouse = self.data / "warehouse.duckdb"
        self.tracking_uri = tracking_store(self.data / "mlflow" / "mlflow.db")
        self.instance = dg.DagsterInstance.ephemeral()
        self.registry = ModelRegistry(self.tracking_uri)
        self.settings = SettingsResource(data_dir=str(self.data))
        self.resources = {
            "warehouse": DuckDBResource(database=str(self.warehouse)),
            "settings": self.settings,
            "mlflow": MlflowTracking(mlflow_tracking_uri=self.tracking_uri,
                                     artifact_root=str(self.data / "mlflow" / "artifacts")),
            "model_registry": ModelRegistryResource(tracking_uri=self.tracking_uri),
        }
        self.asset = next(a for a in estimated_assets if estimated_key(MODEL) in a.keys)

    def write(self, frame: pd.DataFrame, replace_window: bool = False) -> None:
        with duckdb.connect(str(self.warehouse)) as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS features")
            conn.register("frame", frame)
            if replace_window:
                conn.execute("DELETE FROM features.customer_snapshot WHERE _ingested_at > ?",
                             [TRAINED_BEFORE.to_pydatetime()])
                conn.execute("INSERT INTO features.customer_snapshot BY NAME "
                             "SELECT * FROM frame")
            else:
                conn.execute("CREATE OR REPLACE TABLE features.customer_snapshot AS "
                             "SELECT * FROM frame")
            conn.unregister("frame")
            # as the feature asset does: the model and drift read the published snapshot
            publish_snapshot(conn, "features.customer_snapshot", snapshot_dir(self.warehouse))

    def estimate(self) -> dict:
        result = dg.materialize([self.asset], instance=self.instance, resources=self.resources)
        meta = result.asset_materializations_for_node(self.asset.op.name)[0].metadata
        return {k: getattr(v, "value", v) for k, v in meta.items()}

    def tick(self, policy: RetrainPolicy, cursor: str | None = None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=cursor,
            resources={"model_registry": self.resources["model_registry"],
                       "retrain_policy": policy})
        return retraining_sensor(context)

    def champion_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        bundle = self.registry.load_bundle(MODEL, CHAMPION)
        return np.asarray(bundle.predict_frame(frame[FEATURES]))


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    s = Stack(tmp_path_factory.mktemp("estimated"))
    s.write(accounts(3_000, seed=1))
    result = dg.materialize([snapshot_churn_model, champion_asset(MODEL)], instance=s.instance,
                            resources=s.resources,
                            run_config={"ops": {"models__snapshot_churn": {"config": FAST}}})
    assert result.success
    assert str(s.registry.by_alias(MODEL, CHAMPION).version) == "1"
    return s


def step_1_no_window_yet_no_estimate_and_no_retraining(stack):
    meta = stack.estimate()
    assert meta["status"] == "too_few_rows" and meta["estimated_drop"] is False
    assert meta["champion_version"] == "1"
    # the held-out rows are the reference, and their labels are known: the champion's
    # calibration is good enough there for the realised figure to sit in its interval
    assert (meta["reference/roc_auc/low"] <= meta["reference_realised/roc_auc"]
            <= meta["reference/roc_auc/high"])
    assert stack.tick(RetrainPolicy()).run_requests == []


def step_2_estimate_holds_the_realised_figure_on_a_window_whose_truth_is_known(stack):
    window = accounts(2_000, seed=2, start=10_000, ingested=now())
    stack.write(window, replace_window=True)
    meta = stack.estimate()
    assert meta["status"] == "evaluated" and meta["window_rows"] == 2_000
    assert meta["estimated_drop"] is False, meta["verdict"]

    p = stack.champion_probabilities(window)
    top = top_tier_mask(MODEL, p, stack.settings.get())
    # the real outcomes of these customers (drawn from the hidden engagement) ...
    real = realised_metrics(p, window["churned"].to_numpy(), top)
    # ... and outcomes drawn from the champion's own probabilities
    drawn = realised_metrics(p, np.random.default_rng(9).random(p.size) < p, top)
    for metric in ("roc_auc", "top_tier_precision", "positive_rate", "brier"):
        low, high = meta[f"{metric}/low"], meta[f"{metric}/high"]
        assert low <= real[metric] <= high, (metric, low, real[metric], high)
        assert low <= drawn[metric] <= high, (metric, low, drawn[metric], high)
        assert low <= meta[f"{metric}/value"] <= high
    # published beside the feature snapshots (one part per evaluation), not in the warehouse
    with snapshot_reader(snapshot_dir(stack.warehouse)) as conn:
        rows = conn.execute(f"SELECT evaluated_on, metric, \"rows\" FROM {WINDOW_TABLE} "
                            "ORDER BY evaluated_on, metric").fetchall()
    assert ("window", "roc_auc", 2_000) in rows and len(rows) == 8
    # the summary the command line and the pages read says the same
    summary = json.loads(Path(meta["summary"]).read_text())
    assert summary["window"]["roc_auc"]["value"] == pytest.approx(meta["roc_auc/value"])
    lines = summary_lines(summary)
    assert "no drop" in lines[0] and lines[1].split()[0] == "ROC-AUC"
    assert f"{meta['roc_auc/value']:.3f} [{meta['roc_auc/low']:.3f}" in lines[1]


def step_3_a_shuffled_feature_lowers_the_estimate_and_a_sustained_drop_retrains(stack):
    before = stack.estimate()["roc_auc/value"]
    window = accounts(2_000, seed=3, start=20_000, ingested=now())
    window["logins_30d"] = np.random.default_rng(4).permutation(window["logins_30d"].to_numpy())
    stack.write(window, replace_window=True)

    drops = [stack.estimate() for _ in range(2)]
    for meta in drops:
        assert meta["roc_auc/value"] < before - 0.05, (before, meta["verdict"])
        assert meta["estimated_drop"] is True, meta["verdict"]
    # the realised figure on these rows fell too: the estimate saw a real loss
    p = stack.champion_probabilities(window)
    real = realised_metrics(p, window["churned"].to_numpy(), top_tier_mask(
        MODEL, p, stack.settings.get()))
    assert real["roc_auc"] < before - 0.05

    policy = RetrainPolicy(estimated_drop_evaluations=3)
    assert stack.tick(policy).run_requests == []  # two in a row are not yet sustained
    stack.estimate()
    tick = stack.tick(policy)
    assert [r.run_key for r in tick.run_requests] == [
        f"retrain/{MODEL}/champion-v1/estimated_drop"]
    assert tick.run_requests[0].tags[REASON_TAG] == "estimated_drop"
    assert tick.run_requests[0].asset_selection == [
        dg.AssetKey(["models", MODEL]), dg.AssetKey(["models", MODEL, "champion"])]
    assert json.loads(tick.cursor) == [f"retrain/{MODEL}/champion-v1/estimated_drop"]
    assert stack.tick(policy, tick.cursor).run_requests == []  # asked once
    assert stack.tick(RetrainPolicy(on_estimated_drop=False)).run_requests == []

    # an evaluation without a drop breaks the run of drops
    stack.write(accounts(2_000, seed=5, start=30_000, ingested=now()), replace_window=True)
    assert stack.estimate()["estimated_drop"] is False
    assert stack.tick(policy).run_requests == []


def step_4_a_cadence_retrains_once_per_tick_and_is_off_by_default(stack, monkeypatch):
    from leadscore_assets.monitoring import automation

    assert stack.tick(RetrainPolicy(on_estimated_drop=False)).run_requests == []
    every_minute = RetrainPolicy(on_estimated_drop=False, cadence="* * * * *")
    # the clock stands at the champion's training: the latest tick came before it, nothing
    # is due (however long the steps before took on a busy machine)
    champion = stack.registry.by_alias(MODEL, CHAMPION)
    trained = pd.Timestamp(champion.creation_timestamp, unit="ms").to_pydatetime()
    monkeypatch.setattr(automation, "utc_now", lambda: trained)
    assert stack.tick(every_minute).run_requests == []
    # two minutes on (a week, for a weekly cadence), a tick has passed since the training
    later = trained + pd.Timedelta(minutes=2)
    monkeypatch.setattr(automation, "utc_now", lambda: later)
    tick = stack.tick(every_minute)
    expected = f"retrain/{MODEL}/champion-v1/cadence/{later:%Y%m%dT%H%M}"
    assert [r.run_key for r in tick.run_requests] == [expected]
    assert tick.run_requests[0].tags[REASON_TAG] == "cadence"
    assert json.loads(tick.cursor) == [expected]
    assert stack.tick(every_minute, tick.cursor).run_requests == []  # once per tick
    # the next tick asks again (the gate may have kept the champion: a fixed rhythm)
    monkeypatch.setattr(automation, "utc_now", lambda: later + pd.Timedelta(minutes=1))
    following = stack.tick(every_minute, tick.cursor)
    assert [r.run_key for r in following.run_requests] == [
        f"retrain/{MODEL}/champion-v1/cadence/{later + pd.Timedelta(minutes=1):%Y%m%dT%H%M}"]
    with pytest.raises(ValueError, match="not a cron schedule"):
        stack.tick(RetrainPolicy(cadence="weekly"))


def test_the_estimate_loop_step_by_step(stack, monkeypatch):
    """One scenario in order: each step starts from what the one before left."""
    step_1_no_window_yet_no_estimate_and_no_retraining(stack)
    step_2_estimate_holds_the_realised_figure_on_a_window_whose_truth_is_known(stack)
    step_3_a_shuffled_feature_lowers_the_estimate_and_a_sustained_drop_retrains(stack)
    step_4_a_cadence_retrains_once_per_tick_and_is_off_by_default(stack, monkeypatch)


def test_estimate_against_realised_per_served_version():
    rng = np.random.default_rng(7)
    p = rng.beta(1.5, 3, 1_500)
    judged = pd.DataFrame({"model": MODEL, "version": np.where(np.arange(p.size) < 1_000,
                                                               "1", "2"),
                           "probability": p, "outcome": rng.random(p.size) < p})
    table = estimate_vs_realised(MODEL, judged, EstimationConfig(),
                                 SettingsResource(data_dir="data").get())
    assert set(table["version"]) == {"1", "2"}
    assert table.groupby("version")["metric"].nunique().tolist() == [4, 4]
    auc = table[(table["version"] == "1") & (table["metric"] == "roc_auc")].iloc[0]
    from sklearn.metrics import roc_auc_score
    first = judged[judged["version"] == "1"]
    assert auc["realised"] == pytest.approx(roc_auc_score(first["outcome"],
                                                          first["probability"]))
    assert auc["error"] == pytest.approx(auc["estimated"] - auc["realised"])
    assert table["within_interval"].mean() >= 0.75
    assert ERROR_TABLE == "monitoring.estimate_vs_realised"
