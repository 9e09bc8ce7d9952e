"""Live evidence from shadow scoring: the API's real log landed in a real warehouse, the
evidence asset, the gate's live-evidence rule, its sensor, and ``leadscore models``."""

from __future__ import annotations

import json
from contextlib import contextmanager

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster_duckdb import DuckDBResource
from litestar.testing import TestClient
from sklearn.metrics import roc_auc_score

from api.app import create_app
from api.config import LEAD_CONVERSION, PLAN, ApiSettings
from leadscore_assets.cli import main
from leadscore_assets.models.checks import CHAMPION_GATE
from leadscore_assets.monitoring.shadow import shadow_evidence, shadow_gate_sensor
from leadscore_assets.resources import SettingsResource
from leadscore_core.published import estimated_summary_path, shadow_evidence_path
from leadscore_core.registry import CHAMPION, GatePolicy, ModelRegistry, decide
from leadscore_core.serving import ModelBundle
from leadscore_core.settings import Settings
from leadscore_core.shadow import LiveEvidence, evidence_json, read_evidence
from leadscore_core.tiers import tiers_of
from leadscore_core.warehouse import publish_snapshot, snapshot_dir, snapshot_reader
from tests.support.api_models import (
    LEAD_FEATURES,
    PLANS,
    lead_frame,
    lead_model,
    leads_payload,
    register,
    train_bundle,
    wait_for_challenger,
    wait_ready,
)
from tests.support.pipeline import MODEL_KEYS, Stack, fast
from tests.support.predlog import land_prediction_log

# -- from the API's log to the evidence ------------------------------------------------------


def in_the_shadow(store: str, tmp_path, model: str, bundle: ModelBundle
                  ) -> tuple[str, str, object]:
    """Register ``bundle`` as ``model``'s challenger: the champion's version, the
    challenger's, and a data folder for the API's log."""
    version = register(store, model, bundle, tmp_path, promote=False)
    ModelRegistry(store).set_challenger(model, version)
    champion = str(ModelRegistry(store).by_alias(model, CHAMPION).version)
    return champion, version, tmp_path / "data"


@contextmanager
def shadow_api(store: str, data, model: str, challenger: str):
    """The API serving ``model``, ready and scoring ``challenger`` in the shadow."""
    settings = Settings(data_dir=data, mlflow_tracking_uri=store)
    app = create_app(settings, api_settings=ApiSettings(models=model, poll_seconds=0.1))
    with TestClient(app) as c:
        wait_ready(c)
        wait_for_challenger(c, model, challenger)
        yield c


def test_agreement_and_lift_from_the_logged_requests(store_copy, tmp_path):
    challenger_bundle = lead_model(seed=4)
    champion, version, data = in_the_shadow(store_copy, tmp_path, LEAD_CONVERSION,
                                            challenger_bundle)
    frame = lead_frame(80, 21)
    ids = [f"lead-{i}" for i in range(80)]
    with shadow_api(store_copy, data, LEAD_CONVERSION, version) as c:
        answered = c.post("/v1/leads/score",
                          json=leads_payload(frame.assign(id=ids))).json()

    # what the challenger would have said, from its own bundle
    p = challenger_bundle.predict_proba(challenger_bundle.encoder.transform_frame(frame))
    tiers = tiers_of(ModelBundle.score(p), challenger_bundle.metadata["tier_boundaries"])
    expected_changes = sum(a["tier"] != t for a, t in zip(answered, tiers, strict=True))
    assert 0 < expected_changes < 80  # the two models differ, but not everywhere

    warehouse = DuckDBResource(database=str(data / "warehouse.duckdb"))
    assert all(r.success for r in land_prediction_log(data, warehouse))
    resources = {"warehouse": warehouse, "settings": SettingsResource(data_dir=str(data))}
    dg.materialize([shadow_evidence], resources=resources)
    [before] = read_evidence(shadow_evidence_path(data / "monitoring"))
    assert (before.model, before.champion_version, before.challenger_version) == (
        "lead_conversion", champion, version)
    assert (before.requests, before.changed) == (80, expected_changes)
    assert before.disagreement == pytest.approx(expected_changes / 80)
    assert before.judged == 0 and before.lift is None

    # outcomes arrive for the first 60 leads: those the challenger ranks in its top half
    judged = np.arange(60)
    converted = p[judged] > np.median(p[judged])
    with duckdb.connect(str(data / "warehouse.duckdb")) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS features")
        outcomes = pd.DataFrame({"lead_id": [ids[i] for i in judged], "converted": converted,
                                 "label_source": "payment"})
        conn.register("outcomes", outcomes)
        conn.execute("CREATE TABLE features.lead_features AS SELECT * FROM outcomes")
        # as the feature assets do: monitoring reads the published snapshot
        publish_snapshot(conn, "features.lead_features", snapshot_dir(data / "warehouse.duckdb"))
    dg.materialize([shadow_evidence], resources=resources)
    [after] = read_evidence(shadow_evidence_path(data / "monitoring"))
    champion_auc = roc_auc_score(converted, [answered[i]["probability"] for i in judged])
    assert after.requests == 80 and after.judged == 60
    assert after.challenger_realised == pytest.approx(1.0)
    assert after.champion_realised == pytest.approx(champion_auc)
    assert after.lift == pytest.approx(1.0 - champion_auc)
    with snapshot_reader(snapshot_dir(data / "warehouse.duckdb")) as conn:
        assert conn.execute("SELECT requests, changed, judged FROM monitoring.shadow_evidence"
                            ).fetchall() == [(80, expected_changes, 60)]


def test_a_plan_challenger_is_judged_by_the_plans_leads_then_bought(store_copy, tmp_path):
    """Plan recommendations have no probability to rank: once leads buy, the lift is the
    challenger's share recommended the plan they bought minus the champion's."""
    frame = lead_frame(800, 8)
    # another rule than the champion's: the plan follows the traffic's medium
    y = frame.utm_medium.map({"cpc": 0, "email": 1, "organic": 3}).to_numpy()
    challenger_bundle = train_bundle(frame, LEAD_FEATURES, y, task="multiclass",
                                     classes=PLANS, rounds=20)
    champion, version, data = in_the_shadow(store_copy, tmp_path, PLAN, challenger_bundle)
    leads = lead_frame(60, 22)
    ids = [f"lead-{i}@example.com" for i in range(60)]
    with shadow_api(store_copy, data, PLAN, version) as c:
        answered = c.post("/v1/leads/plan", json=leads_payload(leads.assign(id=ids))).json()
    champion_plans = [a["plan"] for a in answered]
    proba = challenger_bundle.predict_proba(challenger_bundle.encoder.transform_frame(leads))
    challenger_plans = [PLANS[int(k)] for k in np.argmax(proba, axis=1)]
    assert champion_plans != challenger_plans

    warehouse = DuckDBResource(database=str(data / "warehouse.duckdb"))
    assert all(r.success for r in land_prediction_log(data, warehouse))
    # the first 40 leads buy the plan the challenger recommended, in the export's case
    bought = pd.DataFrame({"lead_id": ids[:40],
                           "plan": [p.upper() for p in challenger_plans[:40]]})
    with duckdb.connect(str(data / "warehouse.duckdb")) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS features")
        conn.register("bought", bought)
        conn.execute("CREATE TABLE features.plan_labels AS SELECT * FROM bought")
        publish_snapshot(conn, "features.plan_labels", snapshot_dir(data / "warehouse.duckdb"))
    resources = {"warehouse": warehouse, "settings": SettingsResource(data_dir=str(data))}
    dg.materialize([shadow_evidence], resources=resources)
    [evidence] = read_evidence(shadow_evidence_path(data / "monitoring"))
    champion_right = sum(a == b for a, b in zip(champion_plans[:40], challenger_plans[:40],
                                                 strict=True)) / 40
    assert (evidence.model, evidence.champion_version, evidence.challenger_version) == (
        "plan", champion, version)
    assert evidence.requests == 60 and evidence.judged == 40
    assert evidence.metric == "accuracy"
    assert evidence.challenger_realised == pytest.approx(1.0)
    assert evidence.champion_realised == pytest.approx(champion_right)
    assert evidence.lift == pytest.approx(1.0 - champion_right)
    assert "realised accuracy (the plan bought) 1.0000" in evidence.describe()


# -- the rule ----------------------------------------------------------------------------------


LIVE = GatePolicy(require_live=True, live_min_requests=500, live_max_disagreement=0.2)


def live(requests: int, changed: int, judged: int = 0, champion: float | None = None,
         challenger: float | None = None) -> LiveEvidence:
    return LiveEvidence("lead_conversion", "3", "4", requests, changed, judged, champion,
                        challenger)


def test_live_evidence_is_not_required_by_default():
    assert decide("binary", 0.85, 0.80, GatePolicy()).promote
    assert decide("binary", 0.85, 0.80, GatePolicy(), live(10, 9)).promote


@pytest.mark.parametrize(("evidence", "promote", "waiting", "says"), [
    (None, False, True, "waiting for live evidence: 0 of 500"),
    (live(499, 0), False, True, "waiting for live evidence: 499 of 500"),
    (live(600, 180), False, False, "live tier changes 30.0% exceed 20.0%"),
    (live(600, 60), True, False, "live evidence holds"),
])
def test_live_evidence_blocks_or_permits_promotion(evidence, promote, waiting, says):
    decision = decide("binary", 0.85, 0.80, LIVE, evidence)
    assert (decision.promote, decision.waiting) == (promote, waiting)
    assert says in decision.reason


def test_a_required_lift_waits_for_outcomes_then_decides():
    policy = GatePolicy(require_live=True, live_min_requests=100, live_min_lift=0.01,
                        live_min_outcomes=50)
    waiting = decide("binary", 0.85, 0.80, policy, live(600, 10, 20, 0.70, 0.75))
    assert not waiting.promote and waiting.waiting and "20 of 50" in waiting.reason
    too_little = decide("binary", 0.85, 0.80, policy, live(600, 10, 80, 0.70, 0.705))
    assert not too_little.promote and not too_little.waiting
    assert "lift +0.0050 is below +0.0100" in too_little.reason
    assert decide("binary", 0.85, 0.80, policy, live(600, 10, 80, 0.70, 0.72)).promote


def test_live_evidence_never_overrides_the_held_out_rule():
    assert not decide("binary", 0.801, 0.80, LIVE, live(5000, 0)).promote
    assert not decide("binary", 0.55, None, LIVE, live(5000, 0)).promote
    assert decide("binary", 0.80, None, LIVE).promote  # no champion: nothing to shadow


# -- the gate on a real registry -----------------------------------------------------------


MODEL = "snapshot_churn"
GATE_SELECTION = dg.AssetSelection.assets(["features", "customer_snapshot"], ["models", MODEL],
                                          ["models", MODEL, "champion"])
REQUIRE = {"require_live": True, "live_min_requests": 200, "live_max_disagreement": 0.25}


def gate_of(result):
    [evaluation] = [e for e in result.get_asset_check_evaluations()
                    if e.check_name == CHAMPION_GATE]
    return evaluation


def publish(stack: Stack, requests: int, changed: int) -> None:
    path = shadow_evidence_path(stack.data / "monitoring")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(evidence_json([LiveEvidence(MODEL, "1", "2", requests, changed)]))


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory):
    """A useless champion (shuffled labels, floor 0), then an honest challenger that wins on
    its held-out rows but must wait for live evidence."""
    stack = Stack(tmp_path_factory.mktemp("live_gate"))
    first = stack.materialize(GATE_SELECTION, {MODEL_KEYS[MODEL]: fast(shuffle_labels=True)},
                              gate={"floor_binary": 0.0})
    assert first.success and stack.registry.aliases(MODEL)[CHAMPION] == "1"
    second = stack.materialize(GATE_SELECTION, {MODEL_KEYS[MODEL]: fast()}, gate=REQUIRE)
    return stack, second


def test_a_winning_challenger_waits_for_live_evidence_in_the_shadow(waiting):
    stack, result = waiting
    gate = gate_of(result)
    assert result.success and gate.passed
    assert "waiting for live evidence: 0 of 200 shadow-scored requests" in gate.description
    assert stack.registry.aliases(MODEL)[CHAMPION] == "1"
    assert str(stack.registry.challenger(MODEL).version) == "2"  # so the API shadows it
    [v2] = [v for v in stack.registry.versions(MODEL) if v.version == "2"]
    assert v2.tags["leadscore.gate"] == "waiting"


def sensor_tick(stack: Stack, **gate: object):
    resources = {k: v for k, v in stack.resources(**gate).items()
                 if k in ("model_registry", "settings")}
    return shadow_gate_sensor(dg.build_sensor_context(resources=resources))


def test_the_sensor_judges_a_waiting_challenger_again_as_evidence_grows(waiting, tmp_path):
    stack = waiting[0].copy(tmp_path)
    assert sensor_tick(stack, **REQUIRE).run_requests == []  # no evidence published yet
    publish(stack, 120, 10)
    [request] = sensor_tick(stack, **REQUIRE).run_requests
    assert request.asset_selection == [dg.AssetKey(["models", MODEL, "champion"])]
    assert request.run_key.endswith("/120-0")
    assert not sensor_tick(stack).run_requests  # not required: the sensor does nothing


def judge_again(stack: Stack):
    return stack.materialize(dg.AssetSelection.assets(["models", MODEL, "champion"]),
                             gate=REQUIRE)


def test_enough_agreeing_live_evidence_promotes(waiting, tmp_path):
    stack = waiting[0].copy(tmp_path)
    publish(stack, 150, 10)
    still = gate_of(judge_again(stack))
    assert "waiting for live evidence: 150 of 200" in still.description
    assert stack.registry.aliases(MODEL)[CHAMPION] == "1"
    publish(stack, 400, 40)
    result = judge_again(stack)
    gate = gate_of(result)
    assert gate.description.startswith("promoted v2: ")
    assert "400 shadow-scored requests, 10.0% would change tier" in gate.description
    assert gate.metadata["live/requests"].value == 400
    assert stack.registry.aliases(MODEL)[CHAMPION] == "2"
    assert stack.registry.challenger(MODEL) is None


def test_live_disagreement_over_the_limit_keeps_the_champion(waiting, tmp_path):
    stack = waiting[0].copy(tmp_path)
    publish(stack, 400, 160)
    gate = gate_of(judge_again(stack))
    assert gate.description.startswith("kept v1 (challenger v2): ")
    assert "live tier changes 40.0% exceed 25.0%" in gate.description
    assert stack.registry.aliases(MODEL)[CHAMPION] == "1"


def test_models_command_shows_live_evidence_and_the_estimate(waiting, tmp_path, monkeypatch):
    stack = waiting[0].copy(tmp_path)
    publish(stack, 400, 40)
    estimate = {"model": "leadscore-snapshot-churn", "champion_version": "1",
                "evaluated_at": "2026-03-01T10:00:00", "window_rows": 321,
                "estimated_drop": False, "verdict": "estimated ROC-AUC 0.712 [0.650, 0.770]",
                "top_tier": "High risk",
                "window": {"roc_auc": {"metric": "roc_auc", "value": 0.712, "low": 0.65,
                                       "high": 0.77, "rows": 321}},
                "held_out": {"roc_auc": {"metric": "roc_auc", "value": 0.70, "low": 0.66,
                                         "high": 0.74, "rows": 200}}}
    estimated_summary_path(stack.data / "monitoring", MODEL).write_text(json.dumps(estimate))
    monkeypatch.setenv("LEADSCORE_DATA_DIR", str(stack.data))
    monkeypatch.setenv("LEADSCORE_MLFLOW_TRACKING_URI", stack.tracking_uri)
    out = CliRunner().invoke(main, ["models", MODEL])
    assert out.exit_code == 0, out.output
    assert "live v2 vs v1: 400 shadow-scored requests, 10.0% would change tier" in out.output
    assert "estimate of champion v1" in out.output and "321 window rows" in out.output
