"""Alerts: failed checks, failed runs and quarantined rows, told to the people who own the data.

An alert is a JSON POST to a webhook (plain JSON, or a Slack incoming-webhook message) and a
line in ``data/alerts.jsonl``. Every alert carries a dedupe key naming the failure (the run
and check, the failed run, the quarantined file's content hash); a key already in the log is
not sent again, so a failure alerts once however many times it is seen. Delivery problems are
logged and recorded in the log line, never raised: an unreachable webhook must not fail the
run that found the problem.
"""

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import httpx
from pydantic import BaseModel, Field

from leadscore_assets.resources import env_or
from leadscore_core.settings import Settings, get_settings

log = logging.getLogger(__name__)
# How a step fails when a blocking check did not pass (the check alerts by itself).
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"


class Alert(BaseModel):
    """One failure, with what a person needs to find it."""

    key: str = Field(description="Dedupe key: the same failure is sent once")
    kind: Literal["check_failed", "run_failed", "rows_quarantined", "nothing_landed",
                  "score_moves"]
    severity: Literal["warning", "error"] = "error"
    title: str
    asset: str | None = None
    check: str | None = None
    file: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    run_id: str | None = None
    url: str | None = None
    detail: str = ""
    items: list[dict[str, Any]] = Field(
        default_factory=list, description="What the alert is about, one entry each (the leads "
                                          "or customers whose score moved, with page links)")


class AlertChannel(dg.ConfigurableResource):
    """Where alerts go: an optional webhook and a JSON Lines log."""

    webhook_url: str | None = None
    format: Literal["json", "slack"] = "json"
    log_path: str = "data/alerts.jsonl"
    ui_url: str = "http://127.0.0.1:3000"
    timeout_seconds: float = 3.0

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "AlertChannel":
        s = settings or get_settings()
        return cls(webhook_url=env_or("LEADSCORE_ALERT_WEBHOOK_URL", s.alert_webhook_url),
                   format=s.alert_webhook_format, log_path=str(s.alerts_log),
                   ui_url=env_or("LEADSCORE_DAGSTER_UI_URL", s.dagster_ui_url))

    def run_url(self, run_id: str | None) -> str | None:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}" if run_id else None

    def sent_keys(self) -> set[str]:
        path = Path(self.log_path)
        if not path.exists():
            return set()
        keys = set()
        for line in path.read_text().splitlines():
            try:
                keys.add(json.loads(line)["key"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn line must not stop alerting
        return keys

    def send(self, alert: Alert) -> bool:
        """Deliver ``alert`` unless its key was sent before; True when it was new."""
        if alert.key in self.sent_keys():
            return False
        if alert.url is None and alert.run_id:
            alert = alert.model_copy(update={"url": self.run_url(alert.run_id)})
        body = alert.model_dump()
        delivered: bool | None = None
        error = None
        if self.webhook_url:
            try:
                response = httpx.post(self.webhook_url, json=self.payload(alert),
                                      timeout=self.timeout_seconds)
                response.raise_for_status()
                delivered = True
            except httpx.HTTPError as exc:
                delivered, error = False, f"{type(exc).__name__}: {exc}"
                log.warning("alert %s not delivered to the webhook: %s", alert.key, error)
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {"at": datetime.now(UTC).isoformat(), **body, "delivered": delivered,
                "delivery_error": error}
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        return True

    def payload(self, alert: Alert) -> dict[str, Any]:
        if self.format == "json":
            return alert.model_dump()
        return slack_message(alert)


def slack_message(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: a text fallback and one section block."""
    icon = ":red_circle:" if alert.severity == "error" else ":warning:"
    facts = [f"*{k}*: `{v}`" for k, v in (("asset", alert.asset), ("check", alert.check),
                                           ("file", alert.file)) if v]
    facts += [f"*{rule}*: {count:,}" for rule, count in alert.counts.items()]
    # listed items carry their own links; the detail repeats them as plain text
    listed = [f"<{i['url']}|{i['id']}>: {i.get('move', '')} {i.get('reasons', '')}".rstrip()
              for i in alert.items if i.get("url")]
    detail = "" if listed else alert.detail
    link = f"\n<{alert.url}|Open the run>" if alert.url else ""
    text = f"{icon} {alert.title}"
    body = "\n".join([text, *facts, *listed]) + (f"\n{detail}" if detail else "") + link
    return {"text": text, "blocks": [{"type": "section",
                                      "text": {"type": "mrkdwn", "text": body}}]}


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    description="A failed run (a quarantined file fails its raw partition) becomes one alert.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def alert_on_run_failure(context: dg.RunFailureSensorContext, alerts: AlertChannel) -> None:
    run = context.dagster_run
    files, reasons, assets = [], [], []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        if data and data.error and data.error.cls_name == CHECK_FAILED_ERROR:
            continue  # a failed blocking check has already sent its own alert
        failure = data.user_failure_data if data else None
        meta = {k: getattr(v, "value", v) for k, v in (failure.metadata if failure else {}).items()}
        if meta.get("file"):
            files.append(str(meta["file"]))
        reasons.append(str(meta.get("reason") or (failure.description if failure else "")
                           or (data.error.message.strip() if data and data.error else "")))
        # an asset's op is named after its key: raw__invoices is raw/invoices
        assets.append((event.step_key or "").split("[")[0].replace("__", "/"))
    if not assets and context.get_step_failure_events():
        return  # only blocking checks failed
    selection = sorted("/".join(k.path) for k in (run.asset_selection or []))
    partition = run.tags.get("dagster/partition")
    alerts.send(Alert(
        key=f"run/{run.run_id}",
        kind="run_failed",
        title=f"run {run.run_id[:8]} failed"
              + (f": {', '.join(files)} quarantined" if files else ""),
        asset=", ".join(selection) or ", ".join(a for a in assets if a) or run.job_name,
        file=", ".join(files) or None,
        counts={"failed_steps": len(assets)},
        run_id=run.run_id,
        detail="\n".join(r for r in reasons if r)
               + (f"\npartition: {partition}" if partition else "")
               or context.failure_event.message or "",
    ))
