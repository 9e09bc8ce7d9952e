"""Alert channel and run-failure sensor against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster_duckdb import DuckDBResource

from leadscore_assets.alerts import Alert, AlertChannel, alert_on_run_failure
from leadscore_assets.ingest.assets import land_file
from leadscore_assets.ingest.landing import LandingZone
from tests.support.webhook import Receiver


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ALERT = Alert(key="check/run1/clean/payments/schema", kind="check_failed", title="schema failed",
              asset="clean/payments", check="schema", counts={"failing_rows": 3},
              run_id="run1")


def test_json_alert_posted_once_and_logged(tmp_path: Path, receiver: Receiver):
    channel = AlertChannel(webhook_url=receiver.url, log_path=str(tmp_path / "alerts.jsonl"),
                           ui_url="http://ui.test/")
    assert channel.send(ALERT) is True
    assert channel.send(ALERT) is False  # the same failure seen again
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["asset"] == "clean/payments" and body["check"] == "schema"
    assert body["counts"] == {"failing_rows": 3}
    assert body["url"] == "http://ui.test/runs/run1"
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["delivered"] is True


def test_slack_format(tmp_path: Path, receiver: Receiver):
    channel = AlertChannel(webhook_url=receiver.url, format="slack",
                           log_path=str(tmp_path / "alerts.jsonl"))
    channel.send(ALERT.model_copy(update={"file": "charges.json"}))
    (body,) = receiver.bodies
    assert body["text"].endswith("schema failed")
    section = body["blocks"][0]["text"]["text"]
    assert "`clean/payments`" in section and "`charges.json`" in section
    assert "*failing_rows*: 3" in section and "/runs/run1|Open the run>" in section


def test_unreachable_webhook_is_logged_not_raised(tmp_path: Path):
    channel = AlertChannel(webhook_url=f"http://127.0.0.1:{closed_port()}/hook",
                           log_path=str(tmp_path / "alerts.jsonl"), timeout_seconds=1)
    assert channel.send(ALERT) is True
    line = json.loads((tmp_path / "alerts.jsonl").read_text())
    assert line["delivered"] is False and "ConnectError" in line["delivery_error"]


def test_without_webhook_only_the_log(tmp_path: Path):
    channel = AlertChannel(log_path=str(tmp_path / "sub" / "alerts.jsonl"))
    channel.send(ALERT)
    line = json.loads((tmp_path / "sub" / "alerts.jsonl").read_text())
    assert line["key"] == ALERT.key and line["delivered"] is None


def test_failed_run_of_a_quarantined_file_alerts_once(tmp_path: Path, receiver: Receiver):
    landing = LandingZone(root=str(tmp_path / "data"))
    inbox = landing.inbox("invoices")
    inbox.mkdir(parents=True)
    (inbox / "export.xlsx").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    instance = dg.DagsterInstance.ephemeral()
    result = land_file("invoices", "export.xlsx", landing=landing, instance=instance,
                       warehouse=DuckDBResource(database=str(tmp_path / "w.duckdb")))
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = instance.get_records_for_run(
        result.run_id, of_type=DagsterEventType.RUN_FAILURE).records[0].event_log_entry
    channel = AlertChannel(webhook_url=receiver.url, log_path=str(tmp_path / "alerts.jsonl"),
                           ui_url="http://ui.test")

    for _ in range(2):  # the sensor may see the same failed run on more than one tick
        context = dg.build_run_status_sensor_context(
            sensor_name="alert_on_run_failure", dagster_instance=instance, dagster_run=run,
            dagster_event=failure.dagster_event, resources={"alerts": channel},
        ).for_run_failure()
        alert_on_run_failure(context)

    (body,) = receiver.bodies
    assert body["kind"] == "run_failed"
    assert body["file"] == "export.xlsx"
    assert body["asset"] == "raw/invoices"
    assert "ZIP" in body["detail"]  # the reader's reason: a workbook, not a CSV
    assert body["url"] == f"http://ui.test/runs/{result.run_id}"


def test_run_failed_by_a_blocking_check_is_not_alerted_twice(tmp_path: Path,
                                                             receiver: Receiver):
    @dg.asset
    def thing() -> None:
        """An asset guarded by a check."""

    @dg.asset_check(asset=thing, blocking=True)
    def never_ok() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([thing, never_ok], instance=instance, raise_on_error=False)
    assert not result.success
    failure = instance.get_records_for_run(
        result.run_id, of_type=DagsterEventType.RUN_FAILURE).records[0].event_log_entry
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure", dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id), dagster_event=failure.dagster_event,
        resources={"alerts": AlertChannel(webhook_url=receiver.url,
                                          log_path=str(tmp_path / "alerts.jsonl"))},
    ).for_run_failure()
    alert_on_run_failure(context)
    assert receiver.bodies == []  # the check's own alert is the one for this failure
