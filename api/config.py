"""What the API serves and how: read once from the environment (prefix ``LEADSCORE_API_``).

The project-wide settings (data folder, MLflow URI, active profiles, API key, host and port)
come from :mod:`leadscore_core.settings`; these are the serving-only knobs. Every one has a
default that works with nothing set.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadscore_core.registry import MODELS

# Registered model names, one per thing the API answers.
LEAD_CONVERSION = MODELS["lead_conversion"]
PLAN = MODELS["plan"]
ACTIVITY_CHURN = MODELS["activity_churn"]
SNAPSHOT_CHURN = MODELS["snapshot_churn"]
ALL_MODELS = (LEAD_CONVERSION, PLAN, ACTIVITY_CHURN, SNAPSHOT_CHURN)


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADSCORE_API_", env_file=".env",
                                      extra="ignore")

    models: str = Field(
        ",".join(ALL_MODELS),
        description="Comma-separated registered model names to serve; /ready waits for all",
    )
    alias: str = Field("champion", description="Registry alias that names the served version")
    poll_seconds: float = Field(5.0, gt=0, description="How often the alias is checked")
    max_batch: int = Field(10_000, ge=1, description="Most leads in one request (413 above)")
    prediction_log: bool = Field(True, description="Append every prediction to the log")
    shadow: bool = Field(
        True, description="While a model has a challenger, also score it on live requests off "
                          "the response path and log its answer beside the champion's (needs "
                          "the prediction log)")
    direct_path: bool = Field(
        True, description="Answer well-formed prediction requests without the framework's "
                          "handler pipeline (same decoding, scoring and response; off: every "
                          "request goes through the handler)")
    max_body_bytes_per_lead: int = Field(
        4_096, ge=256, description="Request size allowance per lead (max_batch x this)"
    )

    action_high: str = Field(
        "Call within a week", description="Suggested action for a customer at High churn risk "
                                          "(the customer pages)")
    action_medium: str = Field("Send a satisfaction survey",
                               description="Suggested action at Medium churn risk")
    action_low: str = Field("Standard engagement",
                            description="Suggested action at Low churn risk")

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.models.split(",") if n.strip())

