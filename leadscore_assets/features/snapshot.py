"""Customer snapshot features: the clean customer table joined with payment aggregates.

The label (``churned``) and the features come from the customer profile. Where a customer's
email matches payments, their payment history adds what the snapshot does not say: failed
payments, refunds and disputes are some of the earliest signs of an account about to leave.
Customers with no email or no matching payment keep null aggregates (missing, not zero:
"no payments seen" is not "paid nothing").

No Dagster imports here.
"""

from __future__ import annotations

import pandas as pd

PAYMENT_FEATURES: dict[str, str] = {
    "payments_count": "numeric",
    "payments_failed": "numeric",
    "failed_share": "numeric",
    "refunds_count": "numeric",
    "amount_paid": "numeric",
    "amount_refunded": "numeric",
    "disputes_count": "numeric",
}


def payment_aggregates(payments: pd.DataFrame) -> pd.DataFrame:
    """Per lower-cased customer email: counts and amounts of payments by outcome."""
    p = payments[payments["customer_email"].notna()].copy()
    p["email"] = p["customer_email"].astype("string").str.strip().str.lower()
    status = p["status"].astype("string")
    refunded = p["amount_refunded"].astype(float).fillna(0.0) if "amount_refunded" in p \
        else pd.Series(0.0, index=p.index)
    succeeded_like = status.isin(["succeeded", "refunded", "partially_refunded", "disputed"])
    p = p.assign(
        _failed=(status == "failed").astype(int),
        _refund=(status.isin(["refunded", "partially_refunded"]) | (refunded > 0)).astype(int),
        _dispute=(status == "disputed").astype(int),
        _paid=p["amount"].astype(float).where(succeeded_like.fillna(False), 0.0),
        _refunded=refunded,
    )
    g = p.groupby("email")
    out = pd.DataFrame({
        "payments_count": g.size().astype(float),
        "payments_failed": g["_failed"].sum().astype(float),
        "refunds_count": g["_refund"].sum().astype(float),
        "amount_paid": g["_paid"].sum(),
        "amount_refunded": g["_refunded"].sum(),
        "disputes_count": g["_dispute"].sum().astype(float),
    })
    out["failed_share"] = out["payments_failed"] / out["payments_count"]
    return out[list(PAYMENT_FEATURES)]


def snapshot_features(customers: pd.DataFrame,
                      payments: pd.DataFrame | None = None) -> pd.DataFrame:
    """Clean customers plus payment aggregates (by email) and ``payments_matched``."""
    out = customers.copy()
    if payments is None or payments.empty or "email" not in out:
        for name in PAYMENT_FEATURES:
            out[name] = pd.Series(float("nan"), index=out.index, dtype="float64")
        out["payments_matched"] = False
        return out
    agg = payment_aggregates(payments)
    email = out["email"].astype("string").str.strip().str.lower()
    joined = agg.reindex(email.to_numpy())
    for name in PAYMENT_FEATURES:
        out[name] = joined[name].to_numpy()
    out["payments_matched"] = email.isin(agg.index).fillna(False).to_numpy()
    return out


def snapshot_feature_kinds(profile_features: dict[str, str],
                           frame: pd.DataFrame) -> dict[str, str]:
    """The profile's features, plus the payment aggregates when any customer matched."""
    kinds = dict(profile_features)
    if "payments_matched" in frame and frame["payments_matched"].any():
        kinds.update(PAYMENT_FEATURES)
    return kinds
