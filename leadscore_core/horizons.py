"""What a score predicts, and by when: the horizon stated with every lead score and churn risk.

A lead's label is a payment with its email within ``LEADSCORE_LEAD_WINDOW_DAYS`` of the lead
arriving (or the export's own conversion label); a customer churned when they buy or pay
nothing within ``LEADSCORE_CHURN_HORIZON_DAYS``. The features stage labels the training rows
with these same settings, so the horizon the API, the exports and the pages state is the one
the model learned.

No Dagster imports: the API, the scores stage and the pages use this module.
"""

from __future__ import annotations

from leadscore_core.settings import Settings


def lead_window_days(settings: Settings, configured: int | None = None) -> int:
    """The lead window: a run's own configuration when it sets one, else the setting."""
    return settings.lead_window_days if configured is None else configured


def churn_horizon_days(settings: Settings, configured: int | None = None) -> int:
    return settings.churn_horizon_days if configured is None else configured


def lead_horizon(settings: Settings) -> str:
    days = lead_window_days(settings)
    return f"converts (pays) within {days} days of the lead arriving"


def churn_horizon(settings: Settings) -> str:
    days = churn_horizon_days(settings)
    return f"churns (buys and pays nothing) within the next {days} days"
