"""Customer activity features from invoice lines, as of a cutoff, and the churn label.

Point in time: the features of a cutoff use only lines dated strictly before it; the label
looks only at the horizon that starts at it. A customer churned at a cutoff when they make no
purchase in ``[cutoff, cutoff + horizon)``. When the invoices end before that horizon does
and the customer has not bought again yet, the label is unknown (null): that is a customer to
score, not a negative to learn from.

Training stacks several cutoffs (``activity_training_set``) so the model sees more than one
moment of the year. ``churn_cutoffs`` picks them so that every training label is fully
observed before the latest cutoff, which is the one held out for evaluation.

No Dagster imports here.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
ACTIVITY_FEATURES: dict[str, str] = {
    "recency_days": "numeric",
    "frequency": "numeric",
    "monetary": "numeric",
    "tenure_days": "numeric",
    "avg_basket": "numeric",
    "distinct_products": "numeric",
    "return_rate": "numeric",
    "mean_days_between": "numeric",
    "spend_30d": "numeric",
    "spend_90d": "numeric",
    "spend_trend": "numeric",
    "invoices_90d": "numeric",
    "active_months": "numeric",
    "frequency_per_month": "numeric",
    "recency_over_interval": "numeric",
    "invoices_180d": "numeric",
    "spend_180d": "numeric",
    "longest_gap_days": "numeric",
    "recency_over_longest_gap": "numeric",
    "avg_quantity": "numeric",
    "avg_unit_price": "numeric",
    "lines_per_invoice": "numeric",
    "tenure_share": "numeric",
    "history_censored": "boolean",
    "country": "categorical",
}


def activity_features(invoices: pd.DataFrame, cutoff: pd.Timestamp | str, *,
                      horizon_days: int = 90, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per customer who bought before ``cutoff``: features and ``churned``.

    Features (days are fractional): ``recency_days`` since the last purchase;
    ``frequency`` purchase invoices; ``monetary`` net spend (returns subtract);
    ``tenure_days`` since the first purchase; ``avg_basket`` gross spend per invoice;
    ``distinct_products``; ``return_rate`` value returned / value bought;
    ``mean_days_between`` purchases (null with one purchase); ``spend_30d``/``spend_90d``
    gross spend in the last 30/90 days; ``spend_trend`` (last 90 days vs the 90 before, -1 to
    1); ``invoices_90d``; ``active_months``; ``frequency_per_month`` (invoices per month of
    tenure, comparable between early and late cutoffs); ``recency_over_interval`` (how
    overdue the next purchase is); ``invoices_180d``/``spend_180d``; ``longest_gap_days``
    between purchases and ``recency_over_longest_gap`` (quiet for longer than ever before);
    ``avg_quantity``/``avg_unit_price`` per line and ``lines_per_invoice`` (wholesale buyers
    differ from occasional ones); ``tenure_share`` of the history the data show before the
    cutoff and ``history_censored`` (first seen in the data's first 30 days, so possibly
    older); ``country`` (most frequent).
    ``as_of`` is the end of the invoice data (default: the latest line).
    """
    cutoff = pd.Timestamp(cutoff)
    horizon = pd.Timedelta(days=horizon_days)
    lines = invoices[invoices["customer_id"].notna()]
    dates = pd.to_datetime(lines["invoice_date"])
    as_of = pd.Timestamp(as_of) if as_of is not None else dates.max()
    data_start = dates.min()
    before = lines[(dates < cutoff).to_numpy()]
    if before.empty:
        return _empty()
    bdates = pd.to_datetime(before["invoice_date"])
    is_return = before["is_return"].astype(bool).to_numpy() | (before["quantity"] < 0).to_numpy()
    buys = before[~is_return]
    buy_dates = bdates[~is_return]
    total = before["line_total"].astype(float)

    out = pd.DataFrame(index=pd.Index(sorted(before["customer_id"].unique()), name="customer_id"))
    out["monetary"] = total.groupby(before["customer_id"]).sum()
    returned = (-total[is_return]).groupby(before["customer_id"][is_return]).sum()

    g = buys.assign(_date=buy_dates, _total=buys["line_total"].astype(float)).groupby(
        "customer_id")
    first, last = g["_date"].min(), g["_date"].max()
    gross = g["_total"].sum()
    out["frequency"] = g["invoice_no"].nunique()
    out["recency_days"] = (cutoff - last) / DAY
    out["tenure_days"] = (cutoff - first) / DAY
    out["avg_basket"] = gross / out["frequency"]
    out["distinct_products"] = g["stock_code"].nunique()
    out["return_rate"] = returned.reindex(out.index).fillna(0.0) / gross
    invoice_dates = buys.assign(_date=buy_dates).groupby(["customer_id", "invoice_no"])[
        "_date"].min().reset_index()
    n_inv = invoice_dates.groupby("customer_id")["invoice_no"].count()
    span = (last - first) / DAY
    out["mean_days_between"] = (span / (n_inv - 1)).where(n_inv > 1)

    def spend_between(start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        inside = ((buy_dates >= start) & (buy_dates < end)).to_numpy()
        return buys["line_total"][inside].astype(float).groupby(
            buys["customer_id"][inside]).sum().reindex(out.index).fillna(0.0)

    out["spend_30d"] = spend_between(cutoff - 30 * DAY, cutoff)
    out["spend_90d"] = spend_between(cutoff - 90 * DAY, cutoff)
    previous = spend_between(cutoff - 180 * DAY, cutoff - 90 * DAY)
    both = out["spend_90d"] + previous
    out["spend_trend"] = ((out["spend_90d"] - previous) / both).where(both > 0, 0.0)
    recent = invoice_dates[invoice_dates["_date"] >= cutoff - 90 * DAY]
    out["invoices_90d"] = recent.groupby("customer_id")["invoice_no"].count().reindex(
        out.index).fillna(0)
    out["active_months"] = invoice_dates.assign(_m=invoice_dates["_date"].dt.to_period("M")) \
        .groupby("customer_id")["_m"].nunique()
    months = np.maximum(out["tenure_days"] / 30.44, 1.0)
    out["frequency_per_month"] = out["frequency"] / months
    interval = out["mean_days_between"]
    out["recency_over_interval"] = (out["recency_days"] / interval).where(interval > 0)
    out["invoices_180d"] = invoice_dates[invoice_dates["_date"] >= cutoff - 180 * DAY].groupby(
        "customer_id")["invoice_no"].count().reindex(out.index).fillna(0)
    out["spend_180d"] = spend_between(cutoff - 180 * DAY, cutoff)
    ordered = invoice_dates.sort_values(["customer_id", "_date"])
    gaps = ordered.groupby("customer_id")["_date"].diff() / DAY
    out["longest_gap_days"] = gaps.groupby(ordered["customer_id"]).max()
    longest = out["longest_gap_days"]
    out["recency_over_longest_gap"] = (out["recency_days"] / longest).where(longest > 0)
    out["avg_quantity"] = g["quantity"].mean()
    out["avg_unit_price"] = g["unit_price"].mean()
    out["lines_per_invoice"] = g.size() / out["frequency"]
    # The invoices start somewhere: a customer first seen in the first weeks may be much
    # older than their tenure says, and early cutoffs see less history than late ones.
    observable = (cutoff - data_start) / DAY
    out["tenure_share"] = out["tenure_days"] / observable if observable > 0 else np.nan
    out["history_censored"] = (first - data_start) / DAY <= 30
    out["country"] = _most_frequent(before, "country").reindex(out.index).astype(
        "string").str.lower()

    # A customer whose only lines before the cutoff are returns has no purchase to describe.
    out = out[out["frequency"].notna()].copy()
    for col in ("frequency", "distinct_products", "invoices_90d", "active_months",
                "invoices_180d"):
        out[col] = out[col].astype(float)

    after = lines[((dates >= cutoff) & (dates < cutoff + horizon)).to_numpy()]
    after = after[~(after["is_return"].astype(bool) | (after["quantity"] < 0))]
    came_back = out.index.isin(after["customer_id"].unique())
    churned = pd.Series(pd.NA, index=out.index, dtype="boolean")
    churned[came_back] = False
    if cutoff + horizon <= as_of + DAY:
        churned[~came_back] = True
    out["churned"] = churned
    out.insert(0, "cutoff", cutoff)
    return out.reset_index()[["customer_id", "cutoff", *ACTIVITY_FEATURES, "churned"]]


def activity_training_set(invoices: pd.DataFrame, cutoffs: Iterable[pd.Timestamp | str], *,
                          horizon_days: int = 90) -> pd.DataFrame:
    """``activity_features`` at each cutoff, stacked (one row per customer and cutoff)."""
    frames = [activity_features(invoices, c, horizon_days=horizon_days) for c in cutoffs]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else _empty()


def churn_cutoffs(invoices: pd.DataFrame, *, horizon_days: int = 90, count: int = 4,
                  step_days: int = 30) -> list[pd.Timestamp]:
    """Cutoffs for training and evaluation, ascending.

    The last one is the latest cutoff whose horizon the data covers (held out for
    evaluation). The others end their label horizon on or before it, spaced ``step_days``
    apart, so the model never learns from outcomes later than the moment it is judged at.
    """
    end = pd.to_datetime(invoices["invoice_date"]).max().normalize() + DAY
    start = pd.to_datetime(invoices["invoice_date"]).min()
    evaluation = end - pd.Timedelta(days=horizon_days)
    latest_train = evaluation - pd.Timedelta(days=horizon_days)
    train = [latest_train - pd.Timedelta(days=step_days * k) for k in range(count)]
    # A cutoff needs some history before it to describe anyone.
    train = [c for c in train if c - start >= pd.Timedelta(days=60)]
    return sorted(train) + [evaluation]


def _most_frequent(lines: pd.DataFrame, column: str) -> pd.Series:
    """Per customer, the most frequent value of ``column`` (ties: alphabetical first)."""
    counts = lines.groupby(["customer_id", column]).size().rename("n").reset_index()
    counts = counts.sort_values(["customer_id", "n", column], ascending=[True, False, True])
    return counts.drop_duplicates("customer_id").set_index("customer_id")[column]


def _empty() -> pd.DataFrame:
    cols = {"customer_id": "string", "cutoff": "datetime64[ns]",
            **{k: "string" if v == "categorical" else "float64"
               for k, v in ACTIVITY_FEATURES.items()}, "churned": "boolean"}
    return pd.DataFrame({k: pd.Series(dtype=t) for k, t in cols.items()})
