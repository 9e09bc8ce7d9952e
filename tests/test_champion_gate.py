"""The champion gate, promotion history and rollback, on a real MLflow registry.

The gate's rule is a plain function and is tested as one. The registry behaviour is exercised
through real Dagster runs of the snapshot churn model: a useless version (trained on shuffled
labels) becomes champion only because the floor is lowered to zero for that first run; an
honest version then beats it; another shuffled version is kept out, a green outcome that
leaves the champion and the scores as they were; rollback walks the champion back.
"""

from __future__ import annotations

import math
import shutil

import dagster as dg
import duckdb
import mlflow.pyfunc
import numpy as np
import pytest
from click.testing import CliRunner

from leadscore_assets.cli import main
from leadscore_assets.models.checks import CHAMPION_GATE
from leadscore_core.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    GatePolicy,
    ModelRegistry,
    RollbackError,
    decide,
)
from tests.support.pipeline import MODEL_KEYS, Stack, fast

MODEL = "snapshot_churn"
SELECTION = dg.AssetSelection.assets(["features", "customer_snapshot"], ["models", MODEL],
                                     ["models", MODEL, "champion"], ["scores", "customers"])


# -- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(("challenger", "champion", "promote"), [
    (0.80, None, True),      # first version above the floor
    (0.55, None, False),     # first version below the floor (0.60)
    (0.803, 0.800, True),    # better by more than the margin (0.002)
    (0.801, 0.800, False),   # better, but within the margin: not worth a switch
    (0.700, 0.800, False),   # worse
    (math.nan, None, False),  # undefined score never promotes
])
def test_binary_rule(challenger, champion, promote):
    decision = decide("binary", challenger, champion, GatePolicy())
    assert decision.promote is promote
    assert decision.metric == "roc_auc"


def test_multiclass_rule_uses_macro_f1_and_its_own_floor():
    policy = GatePolicy(margin=0.01, floor_multiclass=0.4)
    assert not decide("multiclass", 0.35, None, policy).promote
    assert decide("multiclass", 0.45, 0.43, policy).promote
    assert decide("multiclass", 0.45, 0.43, policy).metric == "macro_f1"
    assert not decide("multiclass", 0.445, 0.44, policy).promote


# -- the gate on a real registry -------------------------------------------------------------


def gate_of(result):
    [evaluation] = [e for e in result.get_asset_check_evaluations()
                    if e.check_name == CHAMPION_GATE]
    return evaluation


def materialized(result) -> set[str]:
    return {"/".join(e.asset_key.path) for e in result.get_asset_materialization_events()}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    """Three trainings: shuffled (floor 0), honest, shuffled again; the gate after each."""
    stack = Stack(tmp_path_factory.mktemp("gate"))
    ops = {MODEL_KEYS[MODEL]: fast(shuffle_labels=True)}
    first = stack.materialize(SELECTION, ops, gate={"floor_binary": 0.0})
    aliases_after_first = stack.registry.aliases(MODEL)
    second = stack.materialize(SELECTION, {MODEL_KEYS[MODEL]: fast()})
    aliases_after_second = stack.registry.aliases(MODEL)
    third = stack.materialize(SELECTION, ops)
    return stack, [(first, aliases_after_first), (second, aliases_after_second),
                   (third, stack.registry.aliases(MODEL))]


def test_first_version_becomes_champion(history):
    _, runs = history
    result, aliases = runs[0]
    assert result.success and gate_of(result).passed
    assert aliases == {CHAMPION: "1", CHALLENGER: "1"}


def test_better_challenger_is_promoted_and_old_champion_kept(history):
    _, runs = history
    result, aliases = runs[1]
    gate = gate_of(result)
    assert result.success and gate.passed
    assert gate.description.startswith("promoted v2: roc_auc ") and "(was v1)" in gate.description
    assert f"models/{MODEL}/champion" in materialized(result)
    assert aliases == {CHAMPION: "2", CHALLENGER: "2", PREVIOUS: "1"}
    # both were scored on the challenger's held-out rows: the honest model wins clearly
    assert gate.metadata["challenger_roc_auc"].value > gate.metadata["champion_roc_auc"].value \
        + 0.1


def test_worse_challenger_is_kept_out_as_a_green_outcome_that_says_why(history):
    stack, runs = history
    result, aliases = runs[2]
    gate = gate_of(result)
    # losing is a normal outcome: the run and the check are green, nothing was promoted
    assert result.success and gate.passed
    assert aliases == {CHAMPION: "2", CHALLENGER: "3", PREVIOUS: "1"}
    # a model of shuffled labels is near 0.5: it fails the floor before the comparison
    assert gate.description.startswith("kept v2: challenger v3 roc_auc ")
    assert "below the floor 0.6000" in gate.description
    assert gate.metadata["champion_version"].value == "2"
    # the champion asset was not materialised; the features are new in this run, so the
    # scores ran again, by the champion kept; the verdict is recorded as an observation of
    # the champion asset
    assert f"models/{MODEL}/champion" not in materialized(result)
    assert "scores/customers" in materialized(result)
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        assert conn.execute(f"SELECT DISTINCT {MODEL}_version FROM scores.customers"
                            ).fetchall() == [("2",)]
    [observation] = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert observation.asset_key == dg.AssetKey(["models", MODEL, "champion"])
    assert observation.event_specific_data.asset_observation.description == gate.description
    [v3] = [v for v in stack.registry.versions(MODEL) if v.version == "3"]
    assert v3.tags["leadscore.gate"] == "rejected"


def test_served_model_is_exactly_the_champion(history):
    stack, _ = history
    bundle = stack.registry.load_bundle(MODEL)  # what the scores and the API load
    assert bundle.metadata["trained_at"]
    mlflow.set_tracking_uri(stack.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/leadscore-snapshot-churn@champion")
    holdout = stack.registry.run_frame(stack.registry.by_alias(MODEL, CHAMPION).run_id,
                                       "holdout.parquet")
    served = pyfunc.predict(holdout.drop(columns=["churned"]))["probability"].to_numpy()
    np.testing.assert_allclose(served, bundle.predict_frame(holdout), rtol=0, atol=1e-12)


def test_bundle_loads_from_its_own_store_whatever_mlflow_globals_say(history, tmp_path):
    """A process (the API) that never set MLflow's global URIs still loads the champion."""
    stack, _ = history
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(elsewhere)
    mlflow.set_registry_uri(elsewhere)
    try:
        bundle = ModelRegistry(stack.tracking_uri).load_bundle(MODEL)
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    assert bundle.metadata["trained_at"] == stack.registry.load_bundle(MODEL).metadata["trained_at"]


def test_models_command_lists_versions_and_aliases(history, monkeypatch):
    stack, _ = history
    monkeypatch.setenv("LEADSCORE_MLFLOW_TRACKING_URI", stack.tracking_uri)
    out = CliRunner().invoke(main, ["models", MODEL])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("leadscore-snapshot-churn  (champion history: 1, 2)")
    versions = [line for line in lines[1:] if line.startswith("  v")]
    assert [line.split()[0] for line in versions] == ["v3", "v2", "v1"]
    assert "champion" in versions[1] and "rejected" in versions[0]
    # each version says which candidate won, and the sentence why follows it
    assert all(line.split()[3] in {"lightgbm", "logistic", "blend"} for line in versions)
    assert sum(" won: " in line for line in lines) == 3


def test_rollback_restores_the_previous_champion(history, monkeypatch, tmp_path):
    """On a copy of the registry: the history the other tests read stays as it is."""
    stack, _ = history
    shutil.copy(stack.data / "mlflow" / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = ModelRegistry(uri)
    monkeypatch.setenv("LEADSCORE_MLFLOW_TRACKING_URI", uri)
    out = CliRunner().invoke(main, ["rollback", "snapshot-churn"])
    assert out.exit_code == 0, out.output
    assert "from version 2 back to version 1" in out.output
    assert registry.aliases(MODEL) == {CHAMPION: "1", CHALLENGER: "3"}
    assert registry.history(MODEL) == ["1"]
    assert stack.registry.aliases(MODEL)[CHAMPION] == "2"  # the original is untouched
    with pytest.raises(RollbackError):
        registry.rollback(MODEL)
    again = CliRunner().invoke(main, ["rollback", MODEL])
    assert again.exit_code != 0 and "no previous champion" in again.output
