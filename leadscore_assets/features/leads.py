"""Lead features and labels: conversion (binary) and the plan bought (multi-class).

A lead's label comes from its profile's label column where the export has one (``converted``
in ``clean.leads``). Where it has none, the payments decide: the lead converted if a succeeded
payment with the same email arrives within ``window_days`` after the lead was created. A lead
with no such payment whose window has not yet closed (as of the latest payment seen) is still
open: its label is unknown (null), it is not a negative. Open leads are what batch scoring
ranks.

No Dagster imports here.
"""

from __future__ import annotations

import pandas as pd

IDENTITY = ("lead_id", "profile", "created_at", "email", "converted")
# Known the moment a lead arrives, so they are honest features for every profile.
TIME_FEATURES = {"created_hour": "numeric", "created_weekday": "categorical"}


def naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC, so lead times and payment times compare."""
    ts = pd.to_datetime(values, errors="coerce", utc=True)
    return ts.dt.tz_localize(None)


def _succeeded(payments: pd.DataFrame) -> pd.DataFrame:
    paid = payments[(payments["status"] == "succeeded") & payments["customer_email"].notna()]
    return pd.DataFrame({
        "email": paid["customer_email"].astype("string").str.strip().str.lower(),
        "paid_at": naive_utc(paid["created_at"]),
        "plan": paid["plan"] if "plan" in paid.columns else pd.NA,
    }).dropna(subset=["paid_at"])


def first_payment_in_window(leads: pd.DataFrame, payments: pd.DataFrame | None,
                            window_days: int) -> pd.DataFrame:
    """Per lead id: the first succeeded payment (time, plan) within the window after it."""
    empty = pd.DataFrame({"lead_id": pd.Series(dtype="string"),
                          "paid_at": pd.Series(dtype="datetime64[ns]"),
                          "plan": pd.Series(dtype="string")})
    if payments is None or payments.empty:
        return empty
    lead = pd.DataFrame({"lead_id": leads["lead_id"], "email": leads["email"],
                         "created_at": naive_utc(leads["created_at"])}).dropna()
    pairs = lead.merge(_succeeded(payments), on="email", how="inner")
    window = pd.Timedelta(days=window_days)
    inside = pairs[(pairs["paid_at"] >= pairs["created_at"])
                   & (pairs["paid_at"] <= pairs["created_at"] + window)]
    if inside.empty:
        return empty
    first = inside.sort_values(["lead_id", "paid_at"], kind="stable").drop_duplicates("lead_id")
    return first[["lead_id", "paid_at", "plan"]].reset_index(drop=True)


def lead_features(leads: pd.DataFrame, payments: pd.DataFrame | None = None, *,
                  window_days: int = 30, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Clean leads with their label (``converted``), its source, and arrival-time features.

    ``as_of`` is when the payments were last seen (default: the latest payment); a lead whose
    window ends after it and that has not paid yet stays open (``converted`` null).
    Returned columns: the identity columns, ``label_source`` (profile | payments | open),
    ``paid_at``, ``created_hour``, ``created_weekday`` and every feature column of the input.
    """
    out = leads.copy()
    created = naive_utc(out["created_at"]) if "created_at" in out else pd.Series(
        pd.NaT, index=out.index)
    own = out["converted"].astype("boolean") if "converted" in out else pd.Series(
        pd.NA, index=out.index, dtype="boolean")
    first = first_payment_in_window(out, payments, window_days).set_index("lead_id")
    paid_at = out["lead_id"].map(first["paid_at"]) if len(first) else pd.Series(
        pd.NaT, index=out.index)
    if as_of is None and payments is not None and not payments.empty:
        as_of = naive_utc(payments["created_at"]).max()
    window_closed = (created + pd.Timedelta(days=window_days) <= as_of) if as_of is not None \
        and not pd.isna(as_of) else pd.Series(False, index=out.index)
    from_payments = pd.Series(pd.NA, index=out.index, dtype="boolean")
    matched = paid_at.notna()
    from_payments[matched.to_numpy()] = True
    # Without an email or a time there is nothing to match: unknown, not a negative.
    matchable = created.notna() & out["email"].notna() if "email" in out else created.notna()
    closed_unpaid = (~matched & window_closed.fillna(False) & matchable).to_numpy()
    if payments is not None:
        from_payments[closed_unpaid] = False

    out["converted"] = own.fillna(from_payments)
    out["label_source"] = pd.Series("open", index=out.index, dtype="string")
    out.loc[from_payments.notna().to_numpy(), "label_source"] = "payments"
    out.loc[own.notna().to_numpy(), "label_source"] = "profile"
    out["paid_at"] = paid_at.to_numpy()
    out["created_hour"] = (created.dt.hour + created.dt.minute / 60).astype("Float64")
    out["created_weekday"] = created.dt.day_name().str.lower().astype("string")
    return out


def plan_label(leads: pd.DataFrame, payments: pd.DataFrame | None, *,
               window_days: int = 30) -> pd.DataFrame:
    """Converted leads with the plan of their first succeeded payment (column ``plan``).

    Only leads matched to a payment with a known plan are returned: a lead labelled converted
    by its profile but never matched to a payment has no plan to learn from.
    """
    first = first_payment_in_window(leads, payments, window_days)
    first = first[first["plan"].notna()]
    out = leads.drop(columns=[c for c in ("plan", "paid_at") if c in leads.columns]).merge(
        first, on="lead_id", how="inner")
    if "converted" in out:
        out = out[out["converted"].astype("boolean").fillna(True)]
    out["plan"] = out["plan"].astype("string")
    return out.reset_index(drop=True)


def lead_feature_kinds(profile_features: dict[str, str], frame: pd.DataFrame | None = None,
                       *, with_time: bool = True) -> dict[str, str]:
    """Model inputs: the profile's features plus arrival-time features where times exist."""
    kinds = dict(profile_features)
    if with_time and (frame is None or frame.get("created_hour") is not None
                      and frame["created_hour"].notna().any()):
        kinds.update(TIME_FEATURES)
    return kinds
