"""What a score predicts, and by when: the horizon stated with every lead score and churn risk.

A lead's label is a payment with its email within the lead window of the lead arriving (or
the export's own conversion label); a customer churned when they buy or pay nothing within
the churn horizon. A profile may declare its own horizon (``horizon_days``: how long its
export gives a lead to convert, or what its churn label means, e.g. "left within the last
month"); without one, the settings say (``LEADSCORE_LEAD_WINDOW_DAYS``,
``LEADSCORE_CHURN_HORIZON_DAYS``). The features stage labels the training rows with the same
window, so the horizon the API, the exports and the pages state is the one the model learned.
Activity churn (invoices, no profile) always uses the setting; snapshot churn the customer
profile's: ``churn_horizons`` says which churn model states which, for every caller.

No Dagster imports: the API, the scores stage and the pages use this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadscore_core.settings import Settings

if TYPE_CHECKING:
    from leadscore_core.profiles import Profile


def _days(setting: int, configured: int | None, profile: Profile | None) -> int:
    if configured is not None:
        return configured
    if profile is not None and profile.horizon_days is not None:
        return profile.horizon_days
    return setting


def lead_window_days(settings: Settings, configured: int | None = None,
                     profile: Profile | None = None) -> int:
    """The lead window: a run's own configuration when it sets one, else the lead profile's
    horizon, else the setting."""
    return _days(settings.lead_window_days, configured, profile)


def churn_horizon_days(settings: Settings, configured: int | None = None,
                       profile: Profile | None = None) -> int:
    """The churn horizon: a run's configuration, else the customer profile's (snapshot churn),
    else the setting (always so for activity churn)."""
    return _days(settings.churn_horizon_days, configured, profile)


def lead_horizon(settings: Settings, profile: Profile | None = None) -> str:
    days = lead_window_days(settings, profile=profile)
    return f"converts (pays) within {days} days of the lead arriving"


def churn_horizon(settings: Settings, profile: Profile | None = None) -> str:
    days = churn_horizon_days(settings, profile=profile)
    if profile is not None and profile.horizon_days is not None:
        return f"churns (leaves, as the {profile.name} export's label says) within the next " \
               f"{days} days"
    return f"churns (buys and pays nothing) within the next {days} days"


def churn_horizons(settings: Settings, customer_profile: Profile | None = None
                   ) -> dict[str, str]:
    """Each churn model's horizon (by ``MODELS`` key): what a customer's churn probability
    is of depends on the model that scored it, the activity model's setting or the customer
    profile's own label (Telco: left within the last month)."""
    return {"activity_churn": churn_horizon(settings),
            "snapshot_churn": churn_horizon(settings, customer_profile)}
