"""Stripe payments from raw text to one typed row per payment attempt.

A payment attempt is a charge; a payment intent is kept only when none of its charges is in
the exports (an intent that never reached a charge: still pending, or canceled), so an
attempt seen both as intent and charge counts once (``intent_has_charge``, removed). The
same object exported twice keeps its latest export (``superseded_version``, removed).

Amounts become decimals in the currency's major unit using its ISO 4217 exponent (CLDR data
via babel): 1099 USD cents are 10.99, 500 JPY are 500, 1234 KWD fils are 1.234. The
dashboard CSV already holds major units (``amount_unit='major'``).

Status is one of ``succeeded``, ``failed``, ``refunded``, ``partially_refunded``,
``disputed`` for finished attempts, and ``pending`` or ``canceled`` for intents that never
finished: kept because an abandoned checkout says something about a lead.

Quarantine rules: ``missing_payment_id``, ``invalid_created``, ``unknown_currency``,
``invalid_amount``, ``negative_amount``, ``invalid_amount_refunded``, ``unknown_status``.
No Dagster imports here.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
from babel.numbers import get_currency_precision, is_currency

from leadscore_assets.clean.rules import (
    LINEAGE,
    CleanResult,
    RuleBook,
    blank,
    lineage_order,
    parse_timestamps,
)
from leadscore_core.plans import PlanCatalogue
from leadscore_core.vocabulary import flags

STATUSES = ("succeeded", "failed", "refunded", "partially_refunded", "disputed",
            "pending", "canceled")
# Stripe API statuses (charges, payment intents) and dashboard export labels.
STATUS_MAP = {
    "succeeded": "succeeded", "paid": "succeeded", "captured": "succeeded",
    "failed": "failed", "blocked": "failed", "declined": "failed",
    "refunded": "refunded", "partially refunded": "partially_refunded",
    "partially_refunded": "partially_refunded", "disputed": "disputed",
    "pending": "pending", "processing": "pending", "requires_payment_method": "pending",
    "requires_confirmation": "pending", "requires_action": "pending",
    "requires_capture": "pending", "incomplete": "pending", "uncaptured": "pending",
    "canceled": "canceled", "cancelled": "canceled",
}
CREATED_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%SZ",
                   "%Y-%m-%dT%H:%M:%S")
FOUR_PLACES = Decimal("0.0001")

CLEAN_SQL = {
    "payment_id": "VARCHAR", "object_type": "VARCHAR", "created_at": "TIMESTAMP",
    "amount": "DECIMAL(18,4)", "amount_refunded": "DECIMAL(18,4)", "currency": "VARCHAR",
    "status": "VARCHAR", "failure_code": "VARCHAR", "customer_id": "VARCHAR",
    "customer_email": "VARCHAR", "plan": "VARCHAR", "setup_fee": "BOOLEAN",
    "_source_file": "VARCHAR", "_row_number": "BIGINT", "_ingested_at": "TIMESTAMP",
}
RAW_FIELDS = ["object_type", "payment_id", "created", "amount", "amount_refunded",
              "amount_unit", "currency", "status", "refunded", "disputed", "failure_code",
              "customer_id", "customer_email", "payment_intent", "description", "event_id"]


def currency_exponent(code: str) -> int | None:
    """Digits after the decimal point in ``code`` (ISO 4217), None for an unknown code."""
    code = code.strip().upper()
    return get_currency_precision(code) if code and is_currency(code) else None


def to_major(text: str | None, unit: str, exponent: int | None) -> Decimal | None:
    """A raw amount as a decimal in major units; None when it cannot be read."""
    if exponent is None or text is None or pd.isna(text):
        return None
    try:
        value = Decimal(str(text).strip().replace(",", ""))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if unit == "minor":
        if value != value.to_integral_value():
            return None
        value = value.scaleb(-exponent)
    return value.quantize(FOUR_PLACES)


def parse_created(values: pd.Series) -> pd.Series:
    """Unix seconds (API JSON) or a UTC date-time text (dashboard CSV) as naive UTC."""
    text = values.astype("string").str.strip()
    seconds = pd.to_numeric(text, errors="coerce")
    out = pd.to_datetime(seconds, unit="s", errors="coerce")
    rest = out.isna() & text.notna()
    if rest.any():
        out[rest] = parse_timestamps(text[rest], CREATED_FORMATS)
    return out.astype("datetime64[ns]")


def _flag(values: pd.Series) -> pd.Series:
    """``true`` from the API's JSON, or a positive amount (the CSV's ``Disputed Amount``)."""
    text = values.astype("string").str.strip().str.lower()
    positive = (pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce") > 0
                ).fillna(False)
    return (flags(text).fillna(False) | positive).to_numpy(dtype=bool)


def clean_payments(raw: pd.DataFrame, catalogue: PlanCatalogue | None = None) -> CleanResult:
    """Clean raw payments (the columns of ``raw.payments``, all text, plus lineage)."""
    catalogue = catalogue or PlanCatalogue.load()
    df = lineage_order(raw)
    book = RuleBook(df, record_json=df.get("raw_object"),
                    record_columns=[c for c in RAW_FIELDS if c in df.columns])

    pid = df["payment_id"].astype("string").str.strip()
    created = parse_created(df["created"])
    currency = df["currency"].astype("string").str.strip().str.upper()
    exponent = pd.Series([currency_exponent(c) for c in currency.fillna("")], index=df.index,
                         dtype=object)
    unit = df["amount_unit"].astype("string").str.strip().str.lower().fillna("minor")
    amount = pd.Series([to_major(t, u, e) for t, u, e in zip(df["amount"], unit, exponent,
                                                             strict=True)], index=df.index,
                       dtype=object)
    refunded_text = df["amount_refunded"].astype("string").mask(blank(df["amount_refunded"]), "0")
    refunded = pd.Series([to_major(t, u, e) for t, u, e in zip(refunded_text, unit, exponent,
                                                               strict=True)], index=df.index,
                         dtype=object)
    status_key = df["status"].astype("string").str.strip().str.lower()
    base_status = status_key.map(STATUS_MAP)

    book.quarantine("missing_payment_id", "payment_id", blank(df["payment_id"]))
    book.quarantine("invalid_created", "created", created.isna())
    book.quarantine("unknown_currency", "currency", exponent.isna())
    book.quarantine("invalid_amount", "amount", amount.isna())
    book.quarantine("negative_amount", "amount", amount.map(lambda a: a is not None and a < 0))
    bad_refund = [r is None or r < 0 or (a is not None and r > a)
                  for a, r in zip(amount, refunded, strict=True)]
    book.quarantine("invalid_amount_refunded", "amount_refunded", pd.Series(bad_refund))
    book.quarantine("unknown_status", "status", base_status.isna())

    alive = pd.Series(book.alive)
    is_charge = df["object_type"].astype("string").str.lower().eq("charge").fillna(False).astype(
        bool)
    charged_intents = set(df["payment_intent"][alive & is_charge].dropna().astype(str))
    book.remove("intent_has_charge", ~is_charge & pid.isin(charged_intents))
    stale = np.zeros(len(df), dtype=bool)
    alive_at = np.flatnonzero(book.alive)
    stale[alive_at] = pid.iloc[alive_at].duplicated(keep="last").to_numpy()
    book.remove("superseded_version", stale)

    keep = book.alive
    full_refund = np.array([a is not None and r is not None and r >= a and a > 0
                            for a, r in zip(amount, refunded, strict=True)], dtype=bool)
    part_refund = np.array([r is not None and r > 0 for r in refunded], dtype=bool) & ~full_refund
    status = base_status.copy()
    finished = status.isin(["succeeded", "refunded", "partially_refunded"])
    status[finished & part_refund] = "partially_refunded"
    status[finished & (full_refund | _flag(df["refunded"]))] = "refunded"
    status[(finished | status.eq("disputed")) & _flag(df["disputed"])] = "disputed"

    matched = [catalogue.match(a, c) for a, c in zip(amount[keep], currency[keep], strict=True)]
    email = df["customer_email"].astype("string").str.strip().str.lower()
    clean = pd.DataFrame({
        "payment_id": pid[keep],
        "object_type": df["object_type"].astype("string").str.lower()[keep],
        "created_at": created[keep],
        "amount": amount[keep].astype(str),
        "amount_refunded": refunded[keep].astype(str),
        "currency": currency[keep],
        "status": status[keep].astype("string"),
        "failure_code": df["failure_code"].astype("string").mask(blank(df["failure_code"]))[keep],
        "customer_id": df["customer_id"].astype("string").mask(blank(df["customer_id"]))[keep],
        "customer_email": email.mask(email == "")[keep],
        "plan": pd.Series([m[0] for m in matched], index=pid[keep].index, dtype="string"),
        "setup_fee": pd.Series([m[1] for m in matched], index=pid[keep].index, dtype=bool),
        **{c: df[c][keep] for c in LINEAGE},
    }).reset_index(drop=True)
    return CleanResult(rows_in=len(df), clean=clean, quarantine=book.quarantine_frame(),
                       removed=book.removed, applied=book.applied)
