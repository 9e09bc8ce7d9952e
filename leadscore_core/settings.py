"""Project settings, read once from the environment (prefix ``LEADSCORE_``).

Every setting has an embedded default that works with nothing configured: all state lives
under ``data/`` (the DuckDB warehouse, Dagster's SQLite storage, the MLflow store, inboxes,
quarantine, exports, alerts). Moving to production is configuration, not code: point
``LEADSCORE_MLFLOW_TRACKING_URI`` at a server, set ``LEADSCORE_ALERT_WEBHOOK_URL``, and so on.
``.env.example`` lists every variable.

This module has no Dagster imports so that the API and the CLI can use it too.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SOURCES = ("leads", "payments", "invoices", "customers")
# What lands through an inbox: the business exports, and the API's own prediction log
INGEST_SOURCES = (*SOURCES, "predictions")
Source = Literal["leads", "payments", "invoices", "customers"]
# The profile of a source before any of its files has landed (the sample data's shape).
DEFAULT_PROFILES = {"leads": "webform", "customers": "saas_accounts"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root of everything a run writes.")
    warehouse_path: Path | None = Field(
        None, description="DuckDB file; default data/warehouse.duckdb")
    run_executor: Literal["multiprocess", "in_process"] = Field(
        "multiprocess",
        description="How a run executes its steps: in subprocesses (the default), or one "
                    "after another in the run's own process (Celery workers, whose pool "
                    "processes may not start processes of their own)")
    warehouse_lock_url: str | None = Field(
        None, description="PostgreSQL URL whose advisory lock serialises warehouse writers "
                          "across hosts (the cluster profile); default: a lock file beside "
                          "the warehouse")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking and registry URI; default SQLite under data/mlflow"
    )
    profiles_dir: Path | None = Field(
        None, description="Extra source profiles (YAML); default data/profiles"
    )
    lead_profile: str | None = Field(
        None, description="Pin the lead profile the models learn from (unset: the profile of "
                          "the latest landed lead file; webform before any has landed)")
    customer_profile: str | None = Field(
        None, description="Pin the customer profile (unset: the latest landed file's; "
                          "saas_accounts before any has landed)")
    formats: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Formats declared per source where the evidence in a file may not decide "
                    "them, e.g. {\"invoices\": {\"date_order\": \"dmy\", \"decimal\": \",\"}} "
                    "(keys: date_order dmy|mdy|ymd, decimal, thousands, delimiter, "
                    "timezone (an IANA zone for times written without a UTC offset), "
                    "encoding)")
    plan_catalogue_path: Path | None = Field(
        None, description="YAML plan catalogue; default: the shipped catalogue"
    )
    invoice_currency: str | None = Field(
        None, description="ISO 4217 code the invoice exports' prices are in (they carry none): "
                          "the purchase-activity amounts' currency; unset: shown as not known")

    file_settle_seconds: float = Field(
        5.0, description="A file whose size and mtime have not changed for this long is complete"
    )
    alert_webhook_url: str | None = Field(None, description="POST alerts here (JSON)")
    alert_webhook_format: Literal["json", "slack"] = "json"
    dagster_ui_url: str = Field("http://127.0.0.1:3000", description="Base URL for run links")
    mlflow_ui_url: str = Field("http://127.0.0.1:5000",
                               description="Base URL of the MLflow UI (make mlflow), for links")
    app_url: str = Field("http://127.0.0.1:8000",
                         description="Base URL of the API's pages, for links to a lead's or "
                                     "customer's page in alerts")
    api_key: str | None = Field(None, description="When set, the API requires X-API-Key")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    churn_high: float = Field(
        0.6, ge=0, le=1,
        description="Churn probability at or above which a customer's risk is High (the API "
                    "and the batch scores)")
    churn_medium: float = Field(
        0.3, ge=0, le=1,
        description="Churn probability at or above which (below High) the risk is Medium")
    lead_window_days: int = Field(
        30, ge=1, description="A lead converted when it pays within this many days of arriving "
                              "(the horizon every lead score states)")
    churn_horizon_days: int = Field(
        90, ge=1, description="A customer churned when they buy and pay nothing for this many "
                              "days (the horizon every churn risk states)")
    tuning: bool = Field(
        False, description="Tune LightGBM's parameters beyond the small grid at every training "
                           "(Optuna's step-wise tuner, on the cross-validation folds only)")
    tuning_budget_seconds: float = Field(
        60.0, gt=0, description="Tuning's time budget per model: no trial starts after it")
    retrain_cadence: str | None = Field(
        None, description="Cron schedule (UTC) of fixed retrainings, e.g. '0 6 * * 1' for "
                          "Mondays 06:00; unset: retrain only on drift, new labels or an "
                          "estimated drop")
    gate_require_live: bool = Field(
        False, description="The champion gate also requires live evidence from shadow scoring "
                           "before it promotes a challenger that wins on the held-out rows")
    gate_live_min_requests: int = Field(
        500, ge=1, description="Live evidence: predictions the challenger must have answered "
                               "in the champion's shadow")
    gate_live_max_disagreement: float = Field(
        0.30, ge=0, le=1, description="Live evidence: largest share of those whose tier (risk "
                                      "level, plan) the challenger would change")
    gate_live_min_lift: float | None = Field(
        None, description="Live evidence: the challenger's realised ROC-AUC must beat the "
                          "champion's on the same predictions by this much (unset: outcomes "
                          "not required)")
    gate_live_min_outcomes: int = Field(
        100, ge=1, description="Live evidence with a lift required: shadow-scored predictions "
                               "with a known outcome needed first")

    @field_validator("invoice_currency")
    @classmethod
    def _currency_code(cls, value: str | None) -> str | None:
        from leadscore_core.money import iso_code

        return iso_code(value)

    def profile_name(self, source: str, latest: str | None = None) -> str:
        """The profile ``source``'s clean table, features and models use: the pinned one, else
        the profile of the latest landed file (``latest``), else the shipped default."""
        pinned = self.lead_profile if source == "leads" else self.customer_profile
        return pinned or latest or DEFAULT_PROFILES[source]

    def mlflow_run_url(self, experiment_id: str, run_id: str) -> str:
        """The run's page in the MLflow UI."""
        return f"{self.mlflow_ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def drift_report_url(self, model: str) -> str:
        """The model's latest drift report, as the prediction service serves it."""
        return f"{self.app_url.rstrip('/')}/ui/reports/{model}_drift.html"

    @cached_property
    def root(self) -> Path:
        return self.data_dir.resolve()

    @property
    def warehouse(self) -> Path:
        return (self.warehouse_path or self.root / "warehouse.duckdb").resolve()

    @property
    def mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.root / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    @property
    def user_profiles_dir(self) -> Path:
        return (self.profiles_dir or self.root / "profiles").resolve()

    def inbox(self, source: str) -> Path:
        return self.root / "inbox" / source

    def quarantine(self, source: str) -> Path:
        return self.root / "quarantine" / source

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def alerts_log(self) -> Path:
        return self.root / "alerts.jsonl"

    @property
    def predictions_dir(self) -> Path:
        """Where the API writes the prediction log's open files; each is sealed into
        ``inbox("predictions")``, from where it lands like any export."""
        return self.root / "predictions"

    @property
    def serving_snapshot(self) -> Path:
        """Read-only snapshot of what the API needs, published by Dagster (atomic rename)."""
        return self.root / "serving" / "snapshot.parquet"


def get_settings() -> Settings:
    return Settings()
