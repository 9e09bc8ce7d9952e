"""Webhook settings, read once from the environment (prefix ``LEADSCORE_``).

Each has a default that works with nothing set, except the secrets: a Stripe endpoint with
no secret configured, or a form with no entry in ``LEADSCORE_FORM_WEBHOOKS``, refuses every
delivery (nothing unsigned is ever stored).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FormWebhook(BaseModel):
    """How one form's deliveries prove who sent them."""

    model_config = ConfigDict(extra="forbid")
    auth: Literal["hmac", "token"] = Field(
        "hmac", description="hmac: the header holds sha256=<hex HMAC-SHA256 of the raw body>; "
                            "token: the header (or ?token=) holds the secret itself")
    secret: str = Field(min_length=8, description="Comma-separated to accept several during "
                                                  "rotation")
    header: str | None = Field(None, description="default X-Leadscore-Signature (hmac) or "
                                                 "X-Leadscore-Token (token)")

    @property
    def secrets(self) -> list[str]:
        return [s.strip() for s in self.secret.split(",") if s.strip()]

    @property
    def header_name(self) -> str:
        if self.header:
            return self.header.lower()
        return "x-leadscore-signature" if self.auth == "hmac" else "x-leadscore-token"


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", env_file=".env", extra="ignore")

    stripe_webhook_secret: str | None = Field(
        None, description="Stripe endpoint signing secret(s) (whsec_...), comma-separated "
                          "while rotating")
    stripe_webhook_tolerance: int = Field(
        300, ge=1, description="Oldest signature timestamp accepted (seconds)")
    form_webhooks: dict[str, FormWebhook] = Field(
        default_factory=dict,
        description='JSON: lead profile -> {"auth": "hmac"|"token", "secret": "..."}')
    webhook_max_body_bytes: int = Field(
        256 * 1024, ge=1_024, description="Largest delivery accepted (413 above)")
    webhook_seal_records: int = Field(
        1_000, ge=1, description="A spool file is sealed into the inbox at this many records")
    webhook_seal_seconds: float = Field(
        5.0, gt=0, description="... or when its first record is this old (seconds)")

    @property
    def stripe_secrets(self) -> list[str]:
        raw = self.stripe_webhook_secret or ""
        return [s.strip() for s in raw.split(",") if s.strip()]
