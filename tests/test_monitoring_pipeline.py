"""Prediction log -> raw/predictions, drift reports, drift checks, retraining, realised
performance: materialised in-process against a temporary DuckDB file and MLflow store.

The customer snapshots are hand-made with a known signal (churn follows the monthly fee,
logins and days since the last login), so the fee is one of the model's top features and a
30% price rise is a drift the model cares about.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import AlertChannel
from leadscore_assets.features.assets import PURCHASES, PURCHASES_SQL
from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.landing import LandingZone
from leadscore_assets.ingest.sensors import INBOX_SENSORS
from leadscore_assets.models.assets import snapshot_churn_model
from leadscore_assets.models.champion import champion_asset
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.models.resources import MlflowTracking
from leadscore_assets.monitoring.assets import (
    api_window,
    drift_key,
    monitoring_assets,
    served_predictions,
)
from leadscore_assets.monitoring.automation import (
    REASON_TAG,
    RetrainPolicy,
    _retrain_reasons,
    retraining_sensor,
)
from leadscore_assets.monitoring.checks import DRIFT_CHECK, drift_checks
from leadscore_assets.monitoring.estimated import estimated_assets, estimated_key
from leadscore_assets.resources import SettingsResource
from leadscore_core.predlog import PredictionLogWriter
from leadscore_core.registry import CHAMPION, ModelRegistry
from leadscore_core.warehouse import (
    part_dir,
    publish_snapshot,
    snapshot_dir,
    snapshot_reader,
    table_exists,
)
from tests.support.accounts import account_rows
from tests.support.mlflow_store import tracking_store
from tests.support.predlog import land_prediction_log, sealed_files

MODEL = "snapshot_churn"
REGISTERED = "leadscore-snapshot-churn"
FAST = {"num_leaves": [7], "min_data_in_leaf": [10], "max_rounds": 80,
        "early_stopping_rounds": 15, "cv_folds": 3, "learning_rate": 0.1}
FEES = [150.0, 250.0, 350.0, 500.0]
TRAINED_BEFORE = pd.Timestamp("2026-01-05")


def customers(n: int, seed: int, start: int = 0, ingested: pd.Timestamp = TRAINED_BEFORE,
              price_rise: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fee = rng.choice(FEES, n)
    logins = rng.poisson(10, n).astype(float)
    idle = rng.uniform(0, 30, n)
    risk = -2.0 + 0.006 * fee - 0.25 * logins + 0.08 * idle
    churned = rng.random(n) < 1 / (1 + np.exp(-risk))
    return account_rows(rng, churned, logins, idle, start, ingested, fee=fee * price_rise)


def utc_now() -> pd.Timestamp:
    """Landing time of rows that arrive after the champion was trained (naive UTC, as the
    warehouse stores it)."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def write_table(warehouse: Path, table: str, frame: pd.DataFrame, append: bool = False) -> None:
    schema = table.split(".")[0]
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.register("frame", frame)
        if append:
            conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")
        else:
            conn.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM frame")
        conn.unregister("frame")
        if schema == "features":  # as the feature assets do: models and drift read this
            publish_snapshot(conn, table, snapshot_dir(warehouse))


class Stack:
    def __init__(self, root: Path):
        self.data = root / "data"
        (self.data / "mlflow").mkdir(parents=True)
        self.warehouse = self.data / "warehouse.duckdb"
        self.tracking_uri = tracking_store(self.data / "mlflow" / "mlflow.db")
        self.alerts_log = self.data / "alerts.jsonl"
        self.instance = dg.DagsterInstance.ephemeral()
        self.registry = ModelRegistry(self.tracking_uri)
        self.resources = {
            "warehouse": DuckDBResource(database=str(self.warehouse)),
            "settings": SettingsResource(data_dir=str(self.data)),
            "mlflow": MlflowTracking(mlflow_tracking_uri=self.tracking_uri,
                                     artifact_root=str(self.data / "mlflow" / "artifacts")),
            "model_registry": ModelRegistryResource(tracking_uri=self.tracking_uri),
            "alerts": AlertChannel(log_path=str(self.alerts_log)),
            # every window below brings far more labelled rows than the first training had:
            # only drift may trigger here; the new-label rule is tested on its own
            "retrain_policy": RetrainPolicy(new_label_ratio=100.0),
        }
        self.defs = dg.Definitions(
            assets=[snapshot_churn_model, champion_asset(MODEL), *monitoring_assets],
            asset_checks=[*drift_checks],
            sensors=[retraining_sensor],
            resources=self.resources,
        )

    def train(self, **config: object) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            [snapshot_churn_model, champion_asset(MODEL)], instance=self.instance,
            resources=self.resources, raise_on_error=False,
            run_config={"ops": {"models__snapshot_churn": {"config": {**FAST, **config}}}})
        # a rejected challenger is a green outcome: the model itself was trained and
        # registered either way, and only a promotion materialises the champion
        assert result.success
        assert result.asset_materializations_for_node("models__snapshot_churn")
        return result

    def drift(self) -> tuple[dict, dg.AssetCheckEvaluation]:
        drift_asset = next(a for a in monitoring_assets if drift_key(MODEL) in a.keys)
        check = next(c for c in drift_checks if drift_key(MODEL) in
                     {k.asset_key for k in c.check_keys})
        result = dg.materialize([drift_asset, check], instance=self.instance,
                                resources=self.resources)
        meta = result.asset_materializations_for_node(drift_asset.op.name)[0].metadata
        evaluation = result.get_asset_check_evaluations()[0]
        assert evaluation.check_name == DRIFT_CHECK
        return {k: getattr(v, "value", v) for k, v in meta.items()}, evaluation

    def retraining_tick(self, cursor: str | None = None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=cursor, definitions=self.defs,
            resources={k: self.resources[k] for k in ("model_registry", "retrain_policy")})
        return retraining_sensor(context)

    def champion(self) -> str:
        return str(self.registry.by_alias(MODEL, CHAMPION).version)

    def alerts(self) -> list[dict]:
        if not self.alerts_log.exists():
            return []
        return [json.loads(line) for line in self.alerts_log.read_text().splitlines()]


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    s = Stack(tmp_path_factory.mktemp("monitoring"))
    # a first champion held back on purpose (500 rows, three shallow trees) so that a later,
    # properly trained version has room to beat it at the gate
    write_table(s.warehouse, "features.customer_snapshot", customers(500, seed=1))
    s.train(max_rounds=3, early_stopping_rounds=1, num_leaves=[3], min_data_in_leaf=[40])
    assert s.champion() == "1"
    return s


# -- the drift loop, in order ------------------------------------------------------------------


def step_1_nothing_arrived_since_training_gives_no_verdict(stack):
    meta, check = stack.drift()
    assert meta["status"] == "too_few_rows"
    assert meta["champion_version"] == "1"
    assert check.passed
    assert stack.retraining_tick().run_requests == []


def step_1b_old_rows_landed_again_under_a_new_name_are_not_new(stack):
    # the champion's own training rows, landed again as another file a day later: the
    # features table as the clean stage leaves it then (the re-landed copies superseding
    # the first), every row with a new file name and landing time
    again = customers(500, seed=1).assign(
        _source_file="customers-export-again.csv",
        _ingested_at=pd.Series([utc_now()] * 500, dtype="datetime64[us]"))
    write_table(stack.warehouse, "features.customer_snapshot", again)
    meta, check = stack.drift()
    assert meta["current_rows_from_features"] == 0
    assert meta["status"] == "too_few_rows"
    assert meta["labelled_rows"] == meta["labelled_rows_at_training"] == 500
    assert check.passed
    assert _retrain_reasons(meta, RetrainPolicy()) == []
    assert stack.retraining_tick().run_requests == []
    # the same holds for the performance estimate, whose window is the drift window
    estimate = next(a for a in estimated_assets if estimated_key(MODEL) in a.keys)
    result = dg.materialize([estimate], instance=stack.instance, resources=stack.resources)
    estimated = result.asset_materializations_for_node(estimate.op.name)[0].metadata
    assert estimated["window_rows"].value == 0
    assert estimated["status"].value == "too_few_rows"


def step_2_same_distribution_window_is_not_flagged(stack):
    write_table(stack.warehouse, "features.customer_snapshot",
                customers(1_500, seed=2, start=10_000, ingested=utc_now()),
                append=True)
    meta, check = stack.drift()
    assert meta["status"] == "evaluated"
    assert meta["current_rows_from_features"] == 1_500
    assert meta["dataset_drifted"] is False, meta["verdict"]
    assert check.passed
    assert "monthly_fee" in meta["top_features"]
    assert Path(meta["report"]).read_text().startswith("<!doctype html>")
    # a link a person opens: the report as the prediction service's pages serve it
    assert meta["report_url"].startswith("http") and meta["report_url"].endswith(
        f"/ui/reports/{MODEL}_drift.html")
    assert stack.retraining_tick().run_requests == []


def step_3_price_rise_is_detected_the_check_fails_and_retraining_is_requested(stack):
    with duckdb.connect(str(stack.warehouse)) as conn:  # the window step 2 added goes
        conn.execute("DELETE FROM features.customer_snapshot WHERE _ingested_at > ? "
                     "AND _source_file = 'handmade.csv'", [TRAINED_BEFORE.to_pydatetime()])
    write_table(stack.warehouse, "features.customer_snapshot",
                customers(1_500, seed=3, start=20_000, price_rise=1.3,
                          ingested=utc_now()), append=True)
    meta, check = stack.drift()
    assert meta["dataset_drifted"] is True
    assert "monthly_fee" in meta["drifted_features"]
    assert "top feature" in meta["verdict"] and "monthly_fee" in meta["verdict"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    summary = json.loads(Path(meta["summary"]).read_text())
    assert summary["dataset_drifted"] is True and summary["n_current"] == 1_500

    alerts = [a for a in stack.alerts() if a["check"] == DRIFT_CHECK]
    assert len(alerts) == 1 and alerts[0]["severity"] == "error"
    assert "monthly_fee" in alerts[0]["detail"]

    tick = stack.retraining_tick()
    assert len(tick.run_requests) == 1
    request = tick.run_requests[0]
    assert request.asset_selection == [dg.AssetKey(["models", MODEL]),
                                       dg.AssetKey(["models", MODEL, "champion"])]
    assert request.run_key == f"retrain/{MODEL}/champion-v1/drift"
    assert request.tags[REASON_TAG].startswith("drift")
    # asked once: the next tick with the cursor asks for nothing
    assert stack.retraining_tick(tick.cursor).run_requests == []

    stack.drift()  # the same drift seen again alerts nobody again
    assert len([a for a in stack.alerts() if a["check"] == DRIFT_CHECK]) == 1


def step_4_a_worse_retrained_model_is_not_promoted_and_the_reference_stays(stack):
    stack.train(shuffle_labels=True)
    assert stack.champion() == "1"
    meta, check = stack.drift()
    assert meta["champion_version"] == "1" and meta["dataset_drifted"] is True
    assert not check.passed
    # still champion v1: the retraining it already asked for is not asked for again
    first = stack.retraining_tick()
    assert [r.run_key for r in first.run_requests] == [f"retrain/{MODEL}/champion-v1/drift"]
    assert stack.retraining_tick(first.cursor).run_requests == []


def step_5_a_better_retrained_model_is_promoted_and_becomes_the_reference(stack):
    stack.train()  # learns from the 500 + 1,500 rows, prices raised included
    assert stack.champion() == "3"
    meta, check = stack.drift()
    assert meta["champion_version"] == "3"
    assert meta["reference_rows"] > 1_500  # the new champion's own training sample
    assert meta["status"] == "too_few_rows"  # nothing arrived since it was trained
    assert check.passed
    assert stack.retraining_tick().run_requests == []  # no loop


def test_new_labelled_rows_trigger_retraining_by_ratio():
    policy = RetrainPolicy(new_label_ratio=0.2)
    base = {"status": "too_few_rows", "dataset_drifted": False,
            "labelled_rows_at_training": 1_000}
    assert _retrain_reasons({**base, "labelled_rows": 1_199}, policy) == []
    assert _retrain_reasons({**base, "labelled_rows": 1_200}, policy) == ["new_labels"]
    drifted = {**base, "status": "evaluated", "dataset_drifted": True, "labelled_rows": 1_000}
    assert _retrain_reasons(drifted, policy) == ["drift"]
    assert _retrain_reasons(drifted, RetrainPolicy(on_drift=False)) == []


# -- the prediction log ------------------------------------------------------------------------


def test_prediction_log_lands_through_its_inbox_and_re_landing_leaves_the_window_as_it_was(
        tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    landing = LandingZone(root=str(data), settle_seconds=0)
    warehouse = DuckDBResource(database=str(data / "warehouse.duckdb"))
    inbox = landing.inbox("predictions")
    kinds = {"monthly_fee": "numeric"}
    sensor = INBOX_SENSORS["predictions"]
    assert sensor(dg.build_sensor_context(resources={"landing": landing})).run_requests == []

    writer = PredictionLogWriter(data / "predictions", inbox=inbox)
    writer.log_many(REGISTERED, "1", "/v1/customers/churn",
                    [({"id": f"c{i}", "monthly_fee": 150.0 + i}, {"probability": 0.1})
                     for i in range(5)])
    writer.flush()
    assert sensor(dg.build_sensor_context(resources={"landing": landing})).run_requests == []
    writer.close()  # sealed: renamed into the inbox
    (inbox / "predictions-20260101T000000-other-1-0000.jsonl").write_text(
        '{"time": "2026-01-01T00:00:00+00:00", "model": "m", "version": "1", '
        '"endpoint": "/x", "inputs": {}, "outputs": {}}\n{broken\n')

    tick = sensor(dg.build_sensor_context(resources={"landing": landing}))
    assert len(tick.run_requests) == 2  # one partition per sealed file
    assert all(r.success for r in land_prediction_log(data, warehouse))

    def state() -> tuple[int, int, list[float]]:
        with warehouse.get_connection() as conn:
            served = served_predictions(conn)
            malformed = conn.execute("SELECT count(*) FROM raw.predictions "
                                     "WHERE _malformed IS NOT NULL").fetchone()[0]
            window = api_window(conn, REGISTERED, pd.Timestamp("2026-01-01").to_pydatetime(),
                                kinds)
        return len(served), malformed, sorted(window["monthly_fee"].tolist())

    assert state() == (6, 1, [150.0, 151.0, 152.0, 153.0, 154.0])

    # the same old rows land again, in a file of another name (a copy, a re-export): each
    # prediction is known by its id and the time it was served, so nothing becomes new
    [ours] = [p for p in sealed_files(inbox) if "-other-" not in p.name]
    (inbox / "predictions-copy.jsonl").write_bytes(ours.read_bytes() + b"\n")
    tick = sensor(dg.build_sensor_context(cursor=tick.cursor, resources={"landing": landing}))
    assert [r.tags["leadscore/file"] for r in tick.run_requests] == ["predictions-copy.jsonl"]
    assert all(r.success for r in land_prediction_log(data, warehouse))
    assert state() == (6, 1, [150.0, 151.0, 152.0, 153.0, 154.0])
    with warehouse.get_connection() as conn:
        assert conn.execute("SELECT count(*) FROM raw.predictions").fetchone()[0] == 12
        partitions = conn.execute("SELECT count(DISTINCT _partition) FROM raw.predictions"
                                  ).fetchone()[0]
    # published for the monitoring assets as one Parquet part per landed file, which they
    # read as the table
    parts = sorted(part_dir(snapshot_dir(warehouse.database), "raw.predictions").glob("*.parquet"))
    assert partitions == len(parts) == 3
    with snapshot_reader(snapshot_dir(warehouse.database)) as conn:
        assert len(served_predictions(conn)) == 6
        assert conn.execute("SELECT count(*) FROM raw.predictions").fetchone()[0] == 12
        # a window that starts after they were served holds none of them, however late
        # they landed
        assert api_window(conn, REGISTERED, pd.Timestamp.now(tz="UTC").tz_localize(None)
                          .to_pydatetime(), kinds).empty


def test_a_landing_writes_its_own_part_and_restores_missing_ones(tmp_path):
    data = tmp_path / "data"
    inbox = data / "inbox" / "predictions"
    inbox.mkdir(parents=True)
    warehouse = DuckDBResource(database=str(data / "warehouse.duckdb"))
    entry = ('{{"id": "p{0}", "time": "2026-01-0{0}T00:00:00+00:00", "model": "m", '
             '"version": "1", "endpoint": "/x", "inputs": {{}}, "outputs": {{}}}}\n')
    folder = part_dir(snapshot_dir(warehouse.database), "raw.predictions")

    def land(day: int) -> None:
        (inbox / f"predictions-{day}.jsonl").write_text(entry.format(day))
        landing = LandingZone(root=str(data), settle_seconds=0)
        assert land_file("predictions", f"predictions-{day}.jsonl", landing=landing,
                         warehouse=warehouse).success

    def published() -> list[str]:
        with snapshot_reader(snapshot_dir(warehouse.database)) as conn:
            return [r[0] for r in conn.execute(
                "SELECT prediction_id FROM raw.predictions ORDER BY 1").fetchall()]

    land(1)
    land(2)
    assert published() == ["p1", "p2"] and len(list(folder.glob("*.parquet"))) == 2
    first, second = sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    before = second.stat().st_mtime_ns
    # a part lost (a landing stopped between its commit and its part), and a whole-table
    # copy left from before parts: the next landing writes the lost part, leaves the others
    first.unlink()
    with duckdb.connect() as conn:
        conn.execute(f"COPY (SELECT 1 AS x) TO '{folder.parent / 'raw.predictions.parquet'}'")
    land(3)
    assert published() == ["p1", "p2", "p3"]
    assert second.stat().st_mtime_ns == before
    assert not (folder.parent / "raw.predictions.parquet").exists()


# -- realised performance ----------------------------------------------------------------------


def pair_counting_auc(probabilities: list[float], outcomes: list[bool]) -> float:
    """ROC-AUC as the share of (positive, negative) pairs ranked right; ties count half."""
    pos = [p for p, y in zip(probabilities, outcomes, strict=True) if y]
    neg = [p for p, y in zip(probabilities, outcomes, strict=True) if not y]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def test_realised_performance_reproduces_a_hand_computed_roc_auc(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    warehouse = data / "warehouse.duckdb"
    # eight scored leads: served probability and whether the lead paid within its window
    served = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2]
    paid = [True, False, True, True, False, False, True, False]
    # a ninth lead is still inside its window and a tenth was never scored
    leads = pd.DataFrame({
        "lead_id": [f"lead{i}@example.com" for i in range(10)],
        "email": [f"lead{i}@example.com" for i in range(10)],
        "converted": pd.array([*paid, None, True], dtype="boolean"),
        "label_source": [*(["payments"] * 8), "open", "payments"],
    })
    write_table(warehouse, "features.lead_features", leads)
    at = "2026-02-01T10:00:00+00:00"
    entries = [{"time": at, "model": "leadscore-lead-conversion", "version": "2",
                "endpoint": "/v1/leads/score", "inputs": {"id": f"Lead{i}@example.com"},
                "outputs": {"probability": p, "score": round(100 * p)}}
               for i, p in enumerate([*served, 0.5])]
    # activity churn: scored 2011-01-01 with a 90-day horizon; the data runs to 2011-06-01
    entries += [{"time": "2011-01-01T00:00:00+00:00", "model": "leadscore-activity-churn",
                 "version": "1", "endpoint": "/v1/customers/churn",
                 "inputs": {"id": cid}, "outputs": {"probability": p}}
                for cid, p in (("17850", 0.8), ("12345", 0.3), ("13000", 0.6))]
    log = data / "inbox" / "predictions" / "predictions-20260201T100000-h-1-0000.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    invoices = pd.DataFrame({
        "customer_id": ["17850", "12345", "12345", "13000"],
        "invoice_date": pd.to_datetime(["2010-12-15", "2011-02-01", "2011-06-01",
                                        "2011-05-01"]),
        "quantity": [3, 2, 1, 5], "is_return": [False, False, False, False],
    })
    write_table(warehouse, "clean.invoices", invoices)
    with duckdb.connect(str(warehouse)) as conn:  # as the activity features publish them
        publish_snapshot(conn, PURCHASES, snapshot_dir(warehouse), PURCHASES_SQL)

    resources = {"warehouse": DuckDBResource(database=str(warehouse)),
                 "settings": SettingsResource(data_dir=str(data))}
    perf = next(a for a in monitoring_assets
                if dg.AssetKey(["monitoring", "realised_performance"]) in a.keys)
    land_prediction_log(data, resources["warehouse"])
    result = dg.materialize([perf], resources=resources)
    meta = result.asset_materializations_for_node("monitoring__realised_performance")[0].metadata

    expected = pair_counting_auc(served, paid)
    # by hand: 0.9 beats all 4 negatives, 0.7 and 0.6 beat 3 each, 0.3 beats 1: 11 of 16
    assert expected == pytest.approx(11 / 16)
    assert meta["roc_auc/lead_conversion/v2"].value == pytest.approx(expected, abs=1e-12)
    # 17850 bought nothing after 2011-01-01 (churned), 12345 bought on 2011-02-01, 13000 only
    # after its horizon ended (churned): positives 0.8 and 0.6 above the negative 0.3
    assert meta["roc_auc/activity_churn/v1"].value == pytest.approx(1.0)
    # published beside the feature snapshots, never written to the warehouse
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert not table_exists(conn, "monitoring.realised_performance")
    with snapshot_reader(snapshot_dir(warehouse)) as conn:
        rows = conn.execute("SELECT model, version, predictions, positives, observed_rate "
                            "FROM monitoring.realised_performance ORDER BY model").fetchall()
        calib = conn.execute("SELECT sum(predictions) FROM monitoring.realised_calibration "
                             "WHERE model = 'lead_conversion'").fetchone()[0]
    assert rows == [("activity_churn", "1", 3, 2, pytest.approx(2 / 3)),
                    ("lead_conversion", "2", 8, 4, 0.5)]
    assert calib == 8
    # over calendar time, for the models page: the week each prediction was made in (from
    # Monday), realised beside the estimate from the served probabilities alone
    from leadscore_core.estimation import expected_roc_auc
    from leadscore_core.published import realised_over_time_path

    weeks = {r["model"]: r for r in json.loads(
        realised_over_time_path(data / "monitoring").read_text())}
    lead = weeks["lead_conversion"]
    assert (lead["window_start"], lead["window_end"]) == ("2026-01-26", "2026-02-01")
    assert lead["predictions"] == 8 and lead["roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert lead["estimated_roc_auc"] == pytest.approx(expected_roc_auc(np.array(served)))
    churn = weeks["activity_churn"]
    assert (churn["window_start"], churn["roc_auc"]) == ("2010-12-27", pytest.approx(1.0))


def step_6_what_the_api_scored_is_part_of_the_window(stack):
    # the API scores 150 customers with the new champion; their fees are far above anything
    # the champion trained on
    asked = customers(150, seed=6, start=30_000, price_rise=2.0)
    features = ["business_type", "business_size", "tenure_months", "monthly_fee", "seats",
                "logins_30d", "active_users_30d", "support_tickets_90d",
                "days_since_last_login", "auto_renew"]
    with PredictionLogWriter(stack.data / "predictions",
                             inbox=stack.data / "inbox" / "predictions") as writer:
        writer.log_many(REGISTERED, stack.champion(), "/v1/customers/churn", [
            ({"id": row["customer_id"], **{f: row[f] for f in features}}, {"probability": 0.5})
            for row in asked.to_dict("records")])
    [landed] = land_prediction_log(stack.data, stack.resources["warehouse"], stack.instance)
    assert landed.asset_materializations_for_node("raw__predictions")[0].metadata[
        "rows_landed"].value == 150

    meta, check = stack.drift()
    assert meta["current_rows_from_api"] == 150
    assert meta["current_rows_from_features"] == 0
    assert meta["status"] == "evaluated"
    assert "monthly_fee" in meta["drifted_features"]
    assert not check.passed


def test_the_drift_loop_step_by_step(stack):
    """One scenario in order: each step starts from what the one before left (the champion,
    the rows that arrived, the sensor's cursor)."""
    step_1_nothing_arrived_since_training_gives_no_verdict(stack)
    step_1b_old_rows_landed_again_under_a_new_name_are_not_new(stack)
    step_2_same_distribution_window_is_not_flagged(stack)
    step_3_price_rise_is_detected_the_check_fails_and_retraining_is_requested(stack)
    step_4_a_worse_retrained_model_is_not_promoted_and_the_reference_stays(stack)
    step_5_a_better_retrained_model_is_promoted_and_becomes_the_reference(stack)
    step_6_what_the_api_scored_is_part_of_the_window(stack)


# -- the graph ---------------------------------------------------------------------------------


def test_monitoring_stage_is_wired_into_the_code_location():
    from leadscore_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    shape = {}
    for key in graph.get_all_asset_keys():
        if key.path[0] == "monitoring" or key == dg.AssetKey(["raw", "predictions"]):
            node = graph.get(key)
            shape[key.to_user_string()] = (
                node.group_name, sorted(p.to_user_string() for p in node.parent_keys),
                node.automation_condition.get_label() if node.automation_condition else None)
    hourly = "hourly, or when the model, its features or the prediction log change"
    assert shape == {
        "raw/predictions": ("ingest", [], None),
        "monitoring/lead_conversion_drift": (
            "monitoring", ["features/lead_features", "models/lead_conversion/champion",
                           "raw/predictions"], hourly),
        "monitoring/plan_drift": (
            "monitoring", ["features/plan_labels", "models/plan/champion", "raw/predictions"],
            hourly),
        "monitoring/activity_churn_drift": (
            "monitoring", ["features/customer_activity", "features/customer_activity_latest",
                           "models/activity_churn/champion", "raw/predictions"], hourly),
        "monitoring/snapshot_churn_drift": (
            "monitoring", ["features/customer_snapshot", "models/snapshot_churn/champion",
                           "raw/predictions"], hourly),
        "monitoring/realised_performance": (
            "monitoring", ["features/customer_activity_latest", "features/customer_snapshot",
                           "features/lead_features", "raw/predictions"], "daily at 05:00"),
        "monitoring/shadow_evidence": (
            "monitoring", ["features/customer_activity_latest", "features/customer_snapshot",
                           "features/lead_features", "features/plan_labels",
                           "raw/predictions"], hourly),
        "monitoring/lead_conversion_estimated_performance": (
            "monitoring", ["features/lead_features", "models/lead_conversion/champion",
                           "raw/predictions"], hourly),
        "monitoring/activity_churn_estimated_performance": (
            "monitoring", ["features/customer_activity", "features/customer_activity_latest",
                           "models/activity_churn/champion", "raw/predictions"], hourly),
        "monitoring/snapshot_churn_estimated_performance": (
            "monitoring", ["features/customer_snapshot", "models/snapshot_churn/champion",
                           "raw/predictions"], hourly),
    }
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {(f"monitoring/{m}_drift", DRIFT_CHECK) for m in
            ("lead_conversion", "plan", "activity_churn", "snapshot_churn")} <= checks
    sensors = {s.name for s in defs.sensors}
    assert {"predictions_inbox_sensor", "retraining_sensor",
            "monitoring_automation_sensor"} <= sensors
