"""Features -> models -> champion gate -> scores, materialised in-process for real.

The clean tables are hand-made (small, with a known signal: conversion depends on the utm
source, the plan on business size, churn on engagement) and written to a temporary DuckDB
file; MLflow is a SQLite store in the test's folder. Nothing is mocked.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from leadscore_assets.alerts import AlertChannel
from leadscore_assets.features.assets import feature_assets, lead_features_asset
from leadscore_assets.models.assets import (
    ModelConfig,
    TrainingSet,
    learnable,
    model_assets,
)
from leadscore_assets.models.champion import champion_assets, champion_key
from leadscore_assets.models.checks import CHAMPION_GATE
from leadscore_assets.models.training import TrainConfig
from leadscore_assets.scores.assets import (
    CUSTOMER_EXPORT,
    LEAD_EXPORT,
    customer_scores,
    export_csv,
    lead_scores,
    quartile_tiers,
    risk_levels,
    score_assets,
)
from leadscore_assets.scores.changes import lead_changes
from leadscore_core.profiles import SHIPPED_DIR
from leadscore_core.registry import (
    CHALLENGER,
    CHAMPION,
    HOLDOUT_ARTIFACT,
    MODELS,
    REFERENCE_ARTIFACT,
)
from leadscore_core.tiers import customer_risk
from tests.support.api_models import wait_ready
from tests.support.pipeline import MODEL_KEYS, Stack, fast, make_clean_tables

# -- one full run, shared by the tests of this module ---------------------------------------


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory):
    stack = Stack(tmp_path_factory.mktemp("pipeline"))
    # the plan model is tuned (briefly): its trials are checked in its MLflow run
    ops = {key: fast() for key in MODEL_KEYS.values()}
    ops[MODEL_KEYS["plan"]] = fast(tune=True, tuning_budget_seconds=TUNING_BUDGET)
    result = stack.materialize(ops=ops)
    return stack, result


TUNING_BUDGET = 2.0


def test_full_run_succeeds_and_registers_one_champion_per_model(full_run):
    stack, result = full_run
    assert result.success
    for model, name in MODELS.items():
        versions = stack.registry.versions(model)
        assert [v.version for v in versions] == ["1"], name
        assert set(versions[0].aliases) == {CHAMPION, CHALLENGER}, name
        assert versions[0].tags["leadscore.gate"] == "promoted"
        # the materialisation links to the MLflow run (make mlflow serves the UI there)
        url = result.asset_materializations_for_node(MODEL_KEYS[model])[0].metadata[
            "mlflow_run"]
        assert isinstance(url, dg.UrlMetadataValue)
        assert url.value.endswith(f"/runs/{versions[0].run_id}") and "#/experiments/" in url.value


def test_every_gate_passed_and_says_why(full_run):
    _, result = full_run
    evaluations = result.get_asset_check_evaluations()
    gates = {e.asset_key.path[1]: e for e in evaluations if e.check_name == CHAMPION_GATE}
    assert set(gates) == set(MODELS)
    for model, evaluation in gates.items():
        assert evaluation.passed, model
        assert evaluation.asset_key.path == ["models", model, "champion"]
        assert evaluation.description.startswith("promoted v1: the first champion")
    # each champion materialised (it moved the alias), and says which candidate it is
    champions = {e.asset_key.path[1]: e.event_specific_data.materialization.metadata
                 for e in result.get_asset_materialization_events()
                 if e.asset_key.path[-1] == "champion"}
    assert set(champions) == set(MODELS)
    assert all(m["champion_version"].value == "1" for m in champions.values())
    assert all(m["candidate"].value in {"lightgbm", "logistic", "blend"}
               for m in champions.values())


def test_models_learn_the_planted_signal(full_run):
    stack, result = full_run
    materialized = [e.event_specific_data.materialization
                    for e in result.get_asset_materialization_events()]
    by_key = {m.asset_key.path[-1]: m.metadata for m in materialized
              if m.asset_key.path[0] == "models"}
    assert by_key["lead_conversion"]["holdout_roc_auc"].value > 0.75
    assert by_key["snapshot_churn"]["holdout_roc_auc"].value > 0.8
    assert by_key["plan"]["holdout_macro_f1"].value > 0.6
    assert by_key["activity_churn"]["holdout_roc_auc"].value > 0.6
    assert "| roc_auc |" in by_key["lead_conversion"]["metrics"].value
    run = stack.registry.client.get_run(stack.registry.by_alias("plan", CHAMPION).run_id)
    assert {"accuracy", "macro_f1", "log_loss", "baseline_macro_f1"} <= set(run.data.metrics)


def test_run_keeps_holdout_reference_and_bundle(full_run):
    stack, _ = full_run
    version = stack.registry.by_alias("activity_churn", CHAMPION)
    holdout = stack.registry.run_frame(version.run_id, HOLDOUT_ARTIFACT)
    reference = stack.registry.run_frame(version.run_id, REFERENCE_ARTIFACT)
    assert "churned" in holdout and "recency_days" in holdout
    assert "churned" not in reference and len(reference) > len(holdout)
    # the held-out rows are the latest cutoff's only: training never saw that moment
    bundle = stack.registry.load_bundle("activity_churn")
    assert bundle.task == "binary" and "recency_days" in bundle.feature_names
    plots = {Path(a.path).name for a in
             stack.registry.client.list_artifacts(version.run_id, "plots")}
    assert {"roc.png", "precision_recall.png", "calibration.png"} <= plots
    plan = stack.registry.by_alias("plan", CHAMPION)
    assert "confusion_matrix.png" in {Path(a.path).name for a in
                                      stack.registry.client.list_artifacts(plan.run_id, "plots")}


def test_lead_scores_cover_open_leads_with_tiers_and_reasons(full_run):
    stack, _ = full_run
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        open_leads = conn.execute(
            "SELECT count(*) FROM features.lead_features WHERE converted IS NULL").fetchone()[0]
    export = pd.read_csv(stack.data / "exports" / LEAD_EXPORT)
    assert open_leads > 0 and len(export) == open_leads
    assert export["lead_id"].is_unique  # one row per lead
    assert list(export.columns[:6]) == ["lead_id", "email", "created_at", "score", "tier",
                                        "probability"]
    assert {f"reason_for_{i}" for i in (1, 2, 3)} <= set(export.columns)
    assert export["score"].between(0, 100).all()
    assert set(export["tier"]) <= set("ABCD")
    # A is the top quartile of the current open leads
    assert export.loc[export["tier"] == "A", "score"].min() >= export["score"].quantile(0.75) - 1
    assert pd.to_datetime(export["created_at"], format="%Y-%m-%dT%H:%M:%S").notna().all()
    # the open leads of this small model may all lean one way: both sides are read
    reasons = pd.concat([export["reason_for_1"], export["reason_against_1"]]).dropna()
    reasons = reasons.astype(str)[lambda s: s != ""]
    assert len(reasons) and reasons.str.fullmatch(
        r".+ (is .+|not given|: (yes|no)): [+-]\d+(\.\d)? points?").all()
    assert (export["reason_for_1_contribution"].dropna() > 0).all()
    assert not export["reason_for_1"].astype(str).str.contains(r"\d\.\d{4}").any()
    # the pages' copy: the same rows, with each lead's fields
    published = pd.read_parquet(stack.data / "serving" / "open_leads.parquet")
    assert list(published["lead_id"]) == list(export["lead_id"].astype(str))
    assert {"business_type", "utm_source"} <= set(published.columns)
    # what the score is of, and by when: the window the labels were made with
    assert set(export["horizon"]) == {"converts (pays) within 30 days of the lead arriving"}


def test_customer_scores_have_one_row_per_customer_with_both_models(full_run):
    stack, _ = full_run
    export = pd.read_csv(stack.data / "exports" / CUSTOMER_EXPORT, dtype={"customer_id": str})
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        activity = set(conn.execute(
            "SELECT customer_id FROM features.customer_activity_latest").df()["customer_id"])
        snapshot = set(conn.execute(
            "SELECT customer_id FROM features.customer_snapshot").df()["customer_id"])
    # one row per customer: a CRM import keyed on the id gets one value per field
    assert export["customer_id"].is_unique
    assert set(export["customer_id"]) == activity | snapshot
    assert len(activity & snapshot) > 100  # the same customers, seen by both models
    assert export["activity_churn_probability"].notna().sum() == len(activity)
    assert export["snapshot_churn_probability"].notna().sum() == len(snapshot)
    assert set(export["risk_level"]) <= {"High", "Medium", "Low"}
    # the one rule: the highest of the models' probabilities decides the level
    both = export[["activity_churn_probability", "snapshot_churn_probability"]]
    np.testing.assert_allclose(export["churn_probability"], both.max(axis=1))
    high = export[export["risk_level"] == "High"]["churn_probability"]
    low = export[export["risk_level"] == "Low"]["churn_probability"]
    assert high.min() >= 0.6 and low.max() < 0.3
    picked = np.where(export["risk_model"] == "activity_churn",
                      export["activity_churn_probability"], export["snapshot_churn_probability"])
    np.testing.assert_allclose(picked, export["churn_probability"])
    assert set(export["horizon"]) == {"churns (buys and pays nothing) within the next 90 days"}


def test_serving_snapshot_published_for_the_api(full_run):
    stack, _ = full_run
    path = stack.data / "serving" / "snapshot.parquet"
    snapshot = pd.read_parquet(path)
    assert snapshot["customer_id"].is_unique and "recency_days" in snapshot
    assert not list(path.parent.glob(".*.tmp"))  # nothing half-written left beside it
    # the customer pages rank the batch's rows, both models' customers, from its snapshot
    published = pd.read_parquet(stack.data / "snapshots" / "scores.customers.parquet")
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        table = conn.execute("SELECT * FROM scores.customers").df()
    pd.testing.assert_frame_equal(published.sort_values("customer_id", ignore_index=True),
                                  table.sort_values("customer_id", ignore_index=True),
                                  check_dtype=False)
    assert published["snapshot_churn_probability"].notna().any()


def test_lead_labels_come_from_payments_and_open_windows_stay_open(full_run):
    stack, _ = full_run
    tables = make_clean_tables()
    leads, payments = tables["leads"], tables["payments"]
    paid = payments[payments["status"] == "succeeded"].groupby("customer_email")["created_at"].min()
    first_paid = leads["email"].map(paid)
    last_seen = payments["created_at"].max()
    window = pd.Timedelta(days=30)
    in_window = first_paid.notna() & (first_paid <= leads["created_at"] + window)
    still_open = ~in_window & (leads["created_at"] + window > last_seen)
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        features = conn.sql("SELECT lead_id, converted, label_source FROM features.lead_features"
                            ).df().set_index("lead_id").loc[leads["lead_id"]]
    assert (features["converted"].fillna(False).to_numpy(bool) == in_window.to_numpy()).all()
    assert (features["converted"].isna().to_numpy() == still_open.to_numpy()).all()
    assert set(features["label_source"]) == {"payments", "open"}


# -- the small pure parts --------------------------------------------------------------------


def test_nothing_to_learn_is_said_not_trained():
    few = TrainingSet(frame=pd.DataFrame({"plan": ["Elite"] * 10, "x": range(10)}),
                      task="multiclass", label="plan", features={"x": "numeric"},
                      original_names={})
    assert "10 labelled rows" in learnable(few)
    one_class = TrainingSet(frame=pd.DataFrame({"plan": ["Elite"] * 80, "x": range(80)}),
                            task="multiclass", label="plan", features={"x": "numeric"},
                            original_names={})
    assert "same 'plan'" in learnable(one_class)
    two = one_class.frame.assign(plan=["Elite", "MVP"] * 40)
    assert learnable(TrainingSet(two, "multiclass", "plan", {"x": "numeric"}, {})) is None


def test_run_config_overrides_only_what_it_sets():
    base = TrainConfig()
    config = ModelConfig(num_leaves=[4, 8], min_data_in_leaf=[100, 50], cv_folds=3)
    trained = config.train_config(base)
    assert trained.grid == [{"num_leaves": 4, "min_data_in_leaf": 100},
                            {"num_leaves": 8, "min_data_in_leaf": 50}]
    assert trained.cv_folds == 3
    assert trained.max_rounds == base.max_rounds and trained.base_params == base.base_params
    with pytest.raises(ValueError, match="same length"):
        ModelConfig(num_leaves=[4, 8], min_data_in_leaf=[1]).train_config(base)


def test_tiers_are_quartiles_of_the_scores_given():
    scores = np.arange(1, 101)
    tiers, bounds = quartile_tiers(scores)
    assert bounds == [25.75, 50.5, 75.25]
    assert tiers.count("A") == 25 and tiers.count("D") == 25
    assert tiers[99] == "A" and tiers[0] == "D" and tiers[50] == "B"


def test_customer_risk_is_the_highest_models_level():
    probabilities = np.array([[0.7, 0.2], [0.1, 0.65], [np.nan, 0.31], [0.35, 0.35]])
    models = ["activity_churn", "snapshot_churn"]
    probability, levels, which = customer_risk(probabilities, models, high=0.6, medium=0.3)
    assert levels == ["High", "High", "Medium", "Medium"]
    assert probability.tolist() == [0.7, 0.65, 0.31, 0.35]
    assert which == ["activity_churn", "snapshot_churn", "snapshot_churn",
                     "activity_churn"]  # a tie: the first listed
    with pytest.raises(ValueError, match="at least one model"):
        customer_risk(np.array([[np.nan]]), ["activity_churn"], 0.6, 0.3)


def test_risk_levels_follow_the_thresholds():
    levels = risk_levels(np.array([0.05, 0.3, 0.59, 0.6, 0.99]), high=0.6, medium=0.3)
    assert list(levels) == ["Low", "Medium", "Medium", "High", "High"]
    with pytest.raises(ValueError):
        risk_levels(np.array([0.5]), high=0.2, medium=0.4)


def test_csv_export_is_plain_utf8_with_iso_dates(tmp_path):
    frame = pd.DataFrame({"lead_id": ["ä@example.com"], "created_at": [pd.Timestamp(
        "2025-03-04 05:06:07")], "score": [87]})
    path = export_csv(frame, tmp_path / "out" / "scores.csv")
    assert path.read_bytes().decode("utf-8") == (
        "lead_id,created_at,score\nä@example.com,2025-03-04T05:06:07,87\n")
    assert [p.name for p in path.parent.iterdir()] == ["scores.csv"]
    assert path.stat().st_mode & 0o044 == 0o044  # readable by the importer, not owner-only


def test_asset_graph_of_the_model_stage():
    """Keys, groups and upstream keys as reviewed; a change to the graph shows up here."""
    graph = {}
    for asset in [*feature_assets, *model_assets, *champion_assets, *score_assets]:
        for spec in asset.specs:
            assert spec.description and spec.kinds
            graph[spec.key.to_user_string()] = (
                spec.group_name, sorted(d.asset_key.to_user_string() for d in spec.deps))
    assert graph == {
        "features/lead_features": ("features", ["clean/leads", "clean/payments"]),
        "features/plan_labels": ("features", ["clean/payments", "features/lead_features"]),
        "features/customer_activity": ("features", ["clean/invoices"]),
        "features/customer_activity_latest": ("features", ["clean/invoices"]),
        "features/customer_snapshot": ("features", ["clean/customers", "clean/payments"]),
        "models/lead_conversion": ("models", ["features/lead_features"]),
        "models/plan": ("models", ["features/plan_labels"]),
        "models/activity_churn": ("models", ["features/customer_activity"]),
        "models/snapshot_churn": ("models", ["features/customer_snapshot"]),
        **{f"models/{m}/champion": ("models", [f"models/{m}"]) for m in MODELS},
        "scores/leads": ("scores", ["features/lead_features", "models/lead_conversion/champion"]),
        "scores/customers": ("scores", [
            "features/customer_activity_latest", "features/customer_snapshot",
            "models/activity_churn/champion", "models/snapshot_churn/champion"]),
        "serving/customer_activity_snapshot": ("serving", ["features/customer_activity_latest"]),
    }
    gates = {key.asset_key.to_user_string() for asset in champion_assets
             for key in asset.check_keys if key.name == CHAMPION_GATE}
    assert gates == {f"models/{m}/champion" for m in MODELS}


@contextmanager
def lead_api(stack: Stack, models: str | None = None, **settings_given):
    """The API over this stack's registry and data folder, serving lead conversion (or
    ``models``), ready."""
    from litestar.testing import TestClient

    from api.app import create_app
    from api.config import LEAD_CONVERSION, ApiSettings
    from leadscore_core.settings import Settings

    settings = Settings(data_dir=stack.data, mlflow_tracking_uri=stack.tracking_uri,
                        **settings_given)
    app = create_app(settings, api_settings=ApiSettings(models=models or LEAD_CONVERSION,
                                                         prediction_log=False))
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def test_a_customers_amounts_read_in_their_currency(full_run):
    """The payments landed in USD say what an account's amount paid is in; invoice lines say
    nothing, so the customer's spend is in the currency declared for them (GBP here)."""
    from leadscore_core.money import currency_counts, publish_payment_currencies

    stack, _ = full_run
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT customer_id FROM scores.customers ORDER BY customer_id").fetchall()]
        payments = conn.execute("SELECT currency, plan FROM clean.payments").df()
    # what clean/payments publishes (this stack writes its clean tables itself)
    publish_payment_currencies(currency_counts(payments["currency"], payments["plan"]),
                               stack.data / "serving" / "snapshot.parquet")
    reasons: dict[str, str] = {}
    with lead_api(stack, "leadscore-activity-churn,leadscore-snapshot-churn",
                  invoice_currency="GBP") as client:
        for customer in ids:
            body = client.get(f"/v1/customers/{customer}/churn").json()
            for r in body.get("reasons_for", []) + body.get("reasons_against", []):
                reasons.setdefault(r["feature"], r["text"])
    spend = [t for f, t in reasons.items() if f in ("monetary", "avg_basket", "spend_30d",
                                                     "spend_90d", "spend_180d")]
    assert spend and all(" is £" in t for t in spend), reasons
    paid = [t for f, t in reasons.items() if f in ("amount_paid", "amount_refunded")]
    assert paid and all(" is $" in t for t in paid), reasons


def test_a_lead_gets_the_same_reasons_in_the_export_and_over_http(full_run):
    """The one explainer: the batch scores' reasons and probability for each open lead are
    what the API answers for the same lead, served from the same registry."""
    stack, _ = full_run
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        scored = conn.execute("SELECT * FROM scores.leads ORDER BY lead_id LIMIT 40").df()
        features = conn.execute("SELECT * FROM features.lead_features").df()
    bundle = stack.registry.load_bundle("lead_conversion")
    names = bundle.encoder.names
    rows = features.set_index("lead_id").loc[scored["lead_id"], names].reset_index()
    bodies = [{"id": r["lead_id"], **{k: v for k, v in r.items()
                                      if k in names and v is not None and v == v}}
              for r in rows.to_dict(orient="records")]
    with lead_api(stack) as client:
        batch = client.post("/v1/leads/score", json=bodies).json()
        singles = [client.post("/v1/leads/score", json=b).json() for b in bodies[:10]]
    assert len(batch) == len(scored) >= 5
    raw = bundle.raw_score(bundle.encoder.transform_frame(rows))
    contrib = bundle.explainer.contributions(bundle.encoder.transform_frame(rows))[:, 0]
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-9)
    for i, (answer, (_, row)) in enumerate(zip(batch, scored.iterrows(), strict=True)):
        assert answer["id"] == row["lead_id"]
        assert answer["probability"] == pytest.approx(row["probability"], abs=1e-6)
        assert answer["score"] == row["score"]
        for side in ("for", "against"):
            served = [round(r["contribution"], 6) for r in answer[f"reasons_{side}"]
                      if r["text"]]
            exported = [row[f"reason_{side}_{i}_contribution"] for i in (1, 2, 3)]
            assert served == [x for x in exported if x == x], (answer["id"], side)
        # reasons + base value add up to the raw score (all contributions, listed or not)
        assert answer["raw_score"] == pytest.approx(raw[i], abs=1e-9)
        assert answer["base_value"] == pytest.approx(contrib[i, -1], abs=1e-12)
    for one, answer in zip(singles, batch, strict=False):
        assert one["reasons_for"] == answer["reasons_for"]
        assert one["reasons_against"] == answer["reasons_against"]


# new leads as a web form exports them, spelled as people type them
FORM_CSV = (
    "submitted_at,email,name,company,business_type,business_size,utm_source,utm_medium,"
    "utm_campaign\n"
    "2026-01-10 09:15:00,ana@clinic.example,Ana Li,Li Clinic,Clinic,Small,Partner,Email,"
    "Spring\n"
    "2026-01-10 17:40:00,BOB@shop.example,Bob Ray,Ray Retail,  RETAIL ,Micro,Google,CPC,\n"
    "2026-01-11 06:07:00,cy@agency.example,Cy Ode,Ode Agency,Agency,Large,Newsletter,"
    "email,Autumn\n")


def test_a_lead_landed_from_a_csv_and_posted_gets_the_same_probability_and_reasons(
        full_run, tmp_path):
    """The batch path (a CSV landed, cleaned, scored into lead_scores.csv and the pages'
    open leads) and POST /v1/leads/score answer one lead alike, word for word: the same
    encoder reads both, and both word a category as it was sent."""
    import csv
    import io
    import os

    from dagster_duckdb import DuckDBResource

    from leadscore_assets.clean.assets import CLEAN_ASSETS
    from leadscore_assets.features.assets import lead_features_asset
    from leadscore_assets.ingest.assets import land_file
    from leadscore_assets.ingest.landing import LandingZone
    from leadscore_core.published import open_leads_path
    from leadscore_core.serving import arrival_features
    from leadscore_core.settings import Settings

    stack = full_run[0].copy(tmp_path / "csv")
    landing = LandingZone(root=str(stack.data), settle_seconds=0)
    landing.inbox("leads").mkdir(parents=True, exist_ok=True)
    form = landing.inbox("leads") / "form.csv"
    form.write_text(FORM_CSV)
    os.utime(form, (1_600_000_000, 1_600_000_000))
    warehouse = DuckDBResource(database=str(stack.warehouse))
    assert land_file("leads", "form.csv", landing=landing, warehouse=warehouse).success
    result = dg.materialize(
        [CLEAN_ASSETS["leads"], lead_features_asset, lead_scores],
        resources={**stack.resources(),
                   "alerts": AlertChannel(log_path=str(tmp_path / "alerts.jsonl"))},
        raise_on_error=False)
    assert result.success
    export = {r["lead_id"]: r for r in csv.DictReader(io.StringIO(
        (stack.data / "exports" / LEAD_EXPORT).read_text(encoding="utf-8")))}
    assert set(export) == {"ana@clinic.example", "bob@shop.example", "cy@agency.example"}

    with lead_api(stack) as client:
        served = set(client.get("/v1/models").json()[0]["features"])
        for row in csv.DictReader(io.StringIO(FORM_CSV)):
            lead_id = row["email"].strip().lower()
            body = {k: v for k, v in row.items() if v and k not in ("submitted_at", "email")}
            body.update({k: v for k, v in arrival_features(row["submitted_at"]).items()
                         if k in served})
            answer = client.post("/v1/leads/score", json=body).json()
            batch = export[lead_id]
            assert answer["probability"] == pytest.approx(float(batch["probability"]),
                                                          abs=1e-6), lead_id
            assert str(answer["score"]) == batch["score"]
            for side in ("for", "against"):
                sentences = [f"{r['text']}: " for r in answer[f"reasons_{side}"]]
                exported = [batch[f"reason_{side}_{i}"] for i in (1, 2, 3)]
                assert len(sentences) == len([e for e in exported if e]), (lead_id, side)
                for i, (said, wrote) in enumerate(zip(sentences, exported, strict=False)):
                    assert wrote.startswith(said), (lead_id, side, said, wrote)
                    assert round(answer[f"reasons_{side}"][i]["contribution"], 6) == (
                        pytest.approx(float(batch[f"reason_{side}_{i + 1}_contribution"])))
        # a category reads as the form spelled it, white space folded, not as the model
        # stores it
        every = " | ".join(v for r in export.values() for k, v in r.items()
                           if k.startswith("reason_") and not k.endswith("_contribution"))
        spelled = ["Clinic", "Small", "Partner", "Email", "Spring", "RETAIL", "Micro",
                   "Google", "CPC", "Agency", "Large", "Newsletter", "Autumn"]
        assert any(f" is {word}:" in every for word in spelled), every
        assert not any(f" is {word.lower()}:" in every for word in spelled if word != "email"
                       ), every
        # the pages' open leads carry the same spellings, so a lead page posts them
        published = pd.read_parquet(open_leads_path(
            Settings(data_dir=stack.data).serving_snapshot))
        bob = published.set_index("lead_id").loc["bob@shop.example"]
        assert (bob["business_type"], bob["utm_medium"]) == ("RETAIL", "CPC")
        assert pd.isna(bob["utm_campaign"]) and bob["company"] == "Ray Retail"


def stand_in(key: dg.AssetKey, materialises: bool) -> dg.AssetsDefinition:
    """An upstream asset of the scores that, in this run, is materialised or not (a
    champion asset whose challenger lost is not)."""

    @dg.asset(key=key, output_required=False)
    def upstream():
        if materialises:
            yield dg.Output(None)

    return upstream


def test_new_features_are_scored_by_the_champion_kept_when_a_challenger_loses(
        full_run, tmp_path):
    stack = full_run[0].copy(tmp_path)
    champions = [champion_key(m) for m in
                 ("lead_conversion", "activity_churn", "snapshot_churn")]
    features = [dg.AssetKey(["features", t]) for t in
                ("lead_features", "customer_activity_latest", "customer_snapshot")]

    def run(new_features: bool) -> set[str]:
        result = dg.materialize(
            [*(stand_in(k, False) for k in champions),
             *(stand_in(k, new_features) for k in features), lead_scores, customer_scores],
            resources=stack.resources(), raise_on_error=False)
        assert result.success
        return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}

    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        before = conn.execute("SELECT max(scored_at) FROM scores.leads").fetchone()[0]
    # the champions kept, the features new: both scores run, by the kept versions
    assert {"scores/leads", "scores/customers"} <= run(new_features=True)
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        scored_at, versions = conn.execute(
            "SELECT max(scored_at), list(DISTINCT model_version) FROM scores.leads").fetchone()
    assert scored_at > before
    assert versions == [str(stack.registry.by_alias("lead_conversion", CHAMPION).version)]
    # nothing new in the run: nothing scored, and the run is not a failure
    assert not {"scores/leads", "scores/customers"} & run(new_features=False)


def test_rescored_leads_publish_their_changes_and_moves_into_tier_a(full_run, tmp_path):
    stack = full_run[0].copy(tmp_path)  # it changes the lead features: on a copy
    instance = dg.DagsterInstance.ephemeral()
    alerts_log = stack.data / "alerts.jsonl"
    resources = {**stack.resources(), "alerts": AlertChannel(log_path=str(alerts_log))}

    def run() -> dict:
        result = dg.materialize([lead_scores, lead_changes], resources=resources,
                                instance=instance)
        meta = result.asset_materializations_for_node("scores__lead_changes")[0].metadata
        return {k: getattr(v, "value", v) for k, v in meta.items()}

    with duckdb.connect(str(stack.warehouse)) as conn:
        # 300 more leads without a decision yet, from every source
        conn.execute("UPDATE features.lead_features SET converted = NULL WHERE lead_id IN "
                     "(SELECT lead_id FROM features.lead_features WHERE converted IS NOT NULL "
                     "ORDER BY lead_id LIMIT 300)")
    assert run()["first_scoring"] is True
    with duckdb.connect(str(stack.warehouse)) as conn:
        rates = conn.execute("SELECT utm_source, avg(converted::INT) AS rate FROM "
                             "features.lead_features WHERE converted IS NOT NULL "
                             "GROUP BY ALL ORDER BY rate").fetchall()
        worst, best = [r[0] for r in rates[:2]], rates[-1][0]
        moved = conn.execute("UPDATE features.lead_features SET utm_source = ? WHERE "
                             "converted IS NULL AND utm_source IN (?, ?)", [best, *worst]
                             ).fetchone()[0]
    second = run()
    assert second["new"] == 0 and second["gone"] == 0 and moved > 0
    with duckdb.connect(str(stack.warehouse), read_only=True) as conn:
        changes = conn.execute("SELECT * FROM scores.lead_changes").df()
    rose = changes[changes["value_change"] > 0]
    assert len(rose) == moved
    assert rose["changed_reasons"].str.match(
        rf"utm_source ({worst[0]}|{worst[1]}) → {best}(;|$)").all()
    assert (changes.loc[changes["value_change"] == 0, "changed_reasons"]
            .str.contains("tier boundaries").all())
    into_a = changes[(changes["level"] == "A") & (changes["previous_level"] != "A")]
    assert second["moves_that_matter"] == len(into_a) > 0
    alert = [json.loads(line) for line in alerts_log.read_text().splitlines()][-1]
    assert alert["kind"] == "score_moves" and alert["counts"] == {"moves": len(into_a)}
    assert all(i["url"] == f"http://127.0.0.1:8000/ui/leads/{i['id']}"
               for i in alert["items"])


def test_tuning_trials_are_in_the_model_run(full_run, tmp_path):
    stack, result = full_run
    recorded = result.asset_materializations_for_node(MODEL_KEYS["plan"])[0].metadata[
        "tuning"].value
    (version,) = stack.registry.versions("plan")
    client = stack.registry.client
    run = client.get_run(version.run_id)
    assert run.data.tags["leadscore.tuning"] == recorded["chosen"]
    assert run.data.tags["leadscore.tuning_stop"] == recorded["stop_reason"]
    # the first trial starts as tuning does, inside any budget
    assert run.data.metrics["tuning_trials"] == recorded["trials"] >= 1
    assert run.data.metrics["tuning_budget_seconds"] == TUNING_BUDGET
    history = client.get_metric_history(run.info.run_id, "tuning_trial_cv_score")
    assert sorted(m.step for m in history) == list(range(recorded["trials"]))
    path = client.download_artifacts(run.info.run_id, "tuning/trials.json", str(tmp_path))
    table = json.loads(Path(path).read_text())
    trials = pd.DataFrame(table["data"], columns=table["columns"])
    assert len(trials) == recorded["trials"]
    assert {"trial", "step", "cv_score", "seconds", "num_leaves"} <= set(trials.columns)
    # multi-class: the tuner minimises the cross-validated log loss
    assert trials["cv_score"].min() == pytest.approx(recorded["best_cv_score"])
    # the untuned models record no tuning
    lead = client.get_run(stack.registry.versions("lead_conversion")[0].run_id)
    assert "leadscore.tuning" not in lead.data.tags


def test_a_profile_declares_its_horizon_and_the_labels_and_scores_follow(full_run, tmp_path):
    stack = full_run[0].copy(tmp_path)  # it relabels the lead features: on a copy
    profiles = stack.data / "profiles"  # the settings' user profiles, overriding the shipped
    profiles.mkdir()
    for name, days in (("webform", 21), ("saas_accounts", 45)):
        shipped = (SHIPPED_DIR / f"{name}.yaml").read_text()
        (profiles / f"{name}.yaml").write_text(f"{shipped}\nhorizon_days: {days}\n")
    result = dg.materialize([lead_features_asset, lead_scores, customer_scores],
                            resources=stack.resources())
    assert result.success
    features = result.asset_materializations_for_node("features__lead_features")[0].metadata
    assert features["window_days"].value == 21  # payments label the leads by the profile's
    leads = pd.read_csv(stack.data / "exports" / LEAD_EXPORT)
    assert set(leads["horizon"]) == {"converts (pays) within 21 days of the lead arriving"}
    customers = pd.read_csv(stack.data / "exports" / CUSTOMER_EXPORT)
    by_model = customers.groupby("risk_model")["horizon"].agg(set).to_dict()
    # a snapshot risk states the customer profile's horizon, an activity risk the setting's
    assert by_model == {
        "snapshot_churn": {"churns (leaves, as the saas_accounts export's label says) within "
                           "the next 45 days"},
        "activity_churn": {"churns (buys and pays nothing) within the next 90 days"}}
