"""Score changes between two scorings: the pure pairing and its reasons, then end to end with a
trained champion, two real scoring runs on a DuckDB file and the alert POSTed to a real HTTP
server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import Alert, AlertChannel, slack_message
from leadscore_assets.models.assets import snapshot_churn_model
from leadscore_assets.models.champion import champion_asset
from leadscore_assets.models.checks import ModelRegistryResource
from leadscore_assets.models.resources import MlflowTracking
from leadscore_assets.resources import SettingsResource
from leadscore_assets.scores.assets import customer_scores
from leadscore_assets.scores.changes import CUSTOMER_CHANGES_EXPORT, customer_changes
from leadscore_core.changes import moves_into, score_changes
from leadscore_core.warehouse import publish_snapshot, snapshot_dir
from tests.support.accounts import accounts
from tests.support.mlflow_store import tracking_store

WEBHOOK_PORT = 18710


def scoring(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["lead_id", "level", "value"]).assign(model_version="1")


def contributions(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["lead_id", "feature", "value", "number",
                                       "contribution"])


def test_changes_pair_two_scorings_and_name_what_moved_the_score():
    before = scoring([("a", "B", 60.0), ("b", "C", 40.0), ("c", "A", 90.0)])
    after = scoring([("a", "D", 15.0), ("b", "C", 40.0), ("d", "A", 80.0)])
    nan = float("nan")
    contrib_before = contributions([
        ("a", "days since last purchase", "10", 10.0, 0.1),
        ("a", "utm source", "google", nan, 0.4),
        ("a", "seats", "5", 5.0, 0.05),
        ("b", "days since last purchase", "3", 3.0, 0.2)])
    contrib_after = contributions([
        ("a", "days since last purchase", "31", 31.0, -0.8),
        ("a", "utm source", "newsletter", nan, 0.1),
        ("a", "seats", "5", 5.0, 0.1),  # same value, the model weighs it a little more
        ("b", "days since last purchase", "3", 3.0, 0.2)])
    changes = score_changes(before, after, ["lead_id"], contrib_before, contrib_after)

    assert list(changes["lead_id"]) == ["a", "c", "d"]  # b did not move
    a = changes.iloc[0]
    assert (a["status"], a["move"], a["value_change"]) == ("changed", "B→D", -45.0)
    # the reasons that pushed the score down come first, largest change first
    assert a["changed_reasons"].split("; ") == [
        "days since last purchase +21 (10 → 31)", "utm source google → newsletter",
        "seats = 5 (weighs more now)"]
    assert changes.set_index("lead_id").loc["c", "status"] == "gone"
    assert changes.set_index("lead_id").loc["d", "status"] == "new"
    assert changes.set_index("lead_id").loc["d", "move"] == ""


def test_moves_that_matter_are_moves_into_the_configured_levels():
    before = scoring([("a", "Low", 0.1), ("b", "High", 0.7), ("c", "Medium", 0.4)])
    after = scoring([("a", "High", 0.8), ("b", "High", 0.9), ("c", "Low", 0.2),
                     ("n", "High", 0.65)])
    empty = contributions([])
    changes = score_changes(before, after, ["lead_id"], empty, empty)
    assert list(moves_into(changes, ["High"])["lead_id"]) == ["a", "n"]
    assert list(moves_into(changes, ["High"], include_new=False)["lead_id"]) == ["a"]
    assert moves_into(changes, ["Medium"]).empty


class Webhook:
    """A real HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self, port: int):
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the handler's API)
                length = int(self.headers["content-length"])
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook(WEBHOOK_PORT)
    yield hook
    hook.close()


def test_a_rescoring_publishes_the_changes_and_pushes_the_moves_into_high_risk(tmp_path,
                                                                                webhook):
    data = tmp_path / "data"
    (data / "mlflow").mkdir(parents=True)
    warehouse = data / "warehouse.duckdb"
    tracking = tracking_store(data / "mlflow" / "mlflow.db")
    resources = {
        "warehouse": DuckDBResource(database=str(warehouse)),
        "settings": SettingsResource(data_dir=str(data)),
        "mlflow": MlflowTracking(mlflow_tracking_uri=tracking,
                                 artifact_root=str(data / "mlflow" / "artifacts")),
        "model_registry": ModelRegistryResource(tracking_uri=tracking),
        "alerts": AlertChannel(webhook_url=webhook.url, log_path=str(data / "alerts.jsonl")),
    }
    instance = dg.DagsterInstance.ephemeral()
    customers = accounts(2_000, seed=11)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE SCHEMA features")
        conn.execute("CREATE TABLE features.customer_snapshot AS SELECT * FROM customers")
        publish_snapshot(conn, "features.customer_snapshot", snapshot_dir(warehouse))
    fast = {"num_leaves": [7], "min_data_in_leaf": [20], "max_rounds": 100,
            "early_stopping_rounds": 20, "cv_folds": 3, "learning_rate": 0.1}
    assert dg.materialize([snapshot_churn_model, champion_asset("snapshot_churn")],
                          resources=resources, instance=instance,
                          run_config={"ops": {"models__snapshot_churn": {"config": fast}}}
                          ).success

    def score() -> dict:
        result = dg.materialize([customer_scores, customer_changes], resources=resources,
                                instance=instance)
        meta = result.asset_materializations_for_node("scores__customer_changes")[0].metadata
        return {k: getattr(v, "value", v) for k, v in meta.items()}

    first = score()
    assert first["first_scoring"] is True and webhook.bodies == []

    # three weeks without a login for the 300 most engaged customers
    engaged = customers.nlargest(300, "logins_30d")["customer_id"]
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("UPDATE features.customer_snapshot SET days_since_last_login = "
                     "days_since_last_login + 21, logins_30d = 0 WHERE customer_id IN "
                     f"({', '.join(repr(c) for c in engaged)})")
        before = dict(conn.execute("SELECT customer_id, level FROM "
                                   "scores.customer_previous_scoring").fetchall())
    second = score()
    assert second["first_scoring"] is False and second["new"] == 0 and second["gone"] == 0
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        changes = conn.execute("SELECT * FROM scores.customer_changes").df()
    assert set(changes["customer_id"]) <= set(engaged)  # only they moved
    assert (changes["value_change"] > 0).all()
    into_high = changes[(changes["level"] == "High") & (changes["previous_level"] != "High")]
    assert len(into_high) == second["moves_that_matter"] > 0
    assert all(before[c] != "High" for c in into_high["customer_id"])
    row = into_high.iloc[0]
    assert row["move"] == f"{row['previous_level']}→High"
    reasons = row["changed_reasons"].split("; ")
    assert any(r.startswith("days_since_last_login +21 (") for r in reasons), reasons
    assert (data / "exports" / CUSTOMER_CHANGES_EXPORT).read_text().startswith("customer_id,")

    # one alert for the whole run, each customer with a link to its page
    assert len(webhook.bodies) == 1
    alert = webhook.bodies[0]
    assert alert["kind"] == "score_moves" and alert["counts"] == {"moves": len(into_high)}
    listed = {i["id"]: i for i in alert["items"]}
    assert set(listed) == set(into_high["customer_id"].head(50))
    item = listed[row["customer_id"]]
    assert item["url"] == f"http://127.0.0.1:8000/ui/customers/{row['customer_id']}"
    assert item["move"] == row["move"] and "days_since_last_login +21" in item["reasons"]
    # as a Slack message, each listed customer is a link to its page
    text = slack_message(Alert(**alert))["blocks"][0]["text"]["text"]
    assert f"<{item['url']}|{item['id']}>" in text

    # the same scoring compared again changes nothing and announces nothing
    again = dg.materialize([customer_changes], resources=resources, instance=instance)
    meta = again.asset_materializations_for_node("scores__customer_changes")[0].metadata
    assert "compared already" in meta["changes"].value
    assert len(webhook.bodies) == 1
