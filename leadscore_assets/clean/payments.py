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

A charge authorised but never captured (``captured: false``) is ``pending``, or ``canceled``
once its authorisation was released; it is never ``succeeded``. Refund and dispute objects
(bare or in events) change the charge they name: issued refunds add up to its refunded
amount (the larger of that sum and the charge's own ``amount_refunded``), a dispute not won
makes it ``disputed``; they are then removed as ``adjustment_applied`` (or
``adjustment_without_charge`` when their charge is in no export: kept in raw for when it
arrives).

Quarantine rules: ``ragged_row``/``nul_byte``/``unreadable_row`` (dashboard CSV records
that do not fit the header), ``missing_payment_id``, ``invalid_created``, ``unknown_currency``,
``invalid_amount``, ``negative_amount``, ``invalid_amount_refunded``, ``unknown_status``.
No Dagster imports here.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pyarrow as pa
from babel.numbers import get_currency_precision, is_currency

from leadscore_assets.clean.rules import (
    LINEAGE,
    CleanResult,
    RuleBook,
    blank,
    lineage_order,
    parse_timestamps,
)
from leadscore_assets.ingest import formats
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
# A refund counts against its charge once issued (Stripe counts pending refunds in the
# charge's amount_refunded too); a dispute the merchant won or that was closed as a warning
# leaves the payment standing.
REFUND_COUNTED = ("succeeded", "pending")
DISPUTE_NOT_LOST = ("won", "warning_closed", "prevented")
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
              "amount_unit", "currency", "status", "refunded", "disputed", "captured",
              "charge", "failure_code",
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


def parse_created(values: pd.Series, decided: pd.Series | None = None) -> pd.Series:
    """Unix seconds (API JSON) or a UTC date-time text (dashboard CSV) as naive UTC, the
    text read with its file's decided day-month order (``decided``: ``_formats``)."""
    text = values.astype("string").str.strip()
    seconds = pd.to_numeric(text.where(text.str.fullmatch(r"\d+").fillna(False)),
                            errors="coerce")
    out = pd.to_datetime(seconds, unit="s", errors="coerce")
    rest = out.isna() & text.notna()
    if rest.any():
        for fmt, rows in _per_file(decided, rest):
            formats_ = (formats.date_formats(fmt.get("created", {}).get("date_order"))
                        if fmt else CREATED_FORMATS)
            out[rows] = parse_timestamps(text[rows], formats_)
    return out.astype("datetime64[ns]")


def _per_file(decided: pd.Series | None, rows: pd.Series) -> list[tuple[dict, pd.Series]]:
    """(decided formats, mask) for each distinct ``_formats`` among ``rows``."""
    if decided is None:
        return [({}, rows)]
    keys = decided.astype("string").fillna("")
    return [(formats.loads(key), rows & (keys == key)) for key in keys[rows].unique()]


def canonical_amounts(values: pd.Series, field: str, decided: pd.Series | None) -> pd.Series:
    """Amount text as canonical numbers (``1234.50``) per its file's decimal mark and
    thousands separator; text a file's format cannot read becomes ``"invalid"``."""
    text = values.astype("string")
    if decided is None:
        return text
    out = text.copy()
    for fmt, rows in _per_file(decided, text.notna()):
        if not fmt or field not in fmt:
            continue
        read = formats.canonical_numbers(pa.array(text[rows].to_numpy(object), pa.string()),
                                         fmt[field]).to_pandas()
        out[rows] = pd.Series(read.to_numpy(object), dtype="string").fillna("invalid").to_numpy()
    return out


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

    book.quarantine_malformed()
    decided = df["_formats"] if "_formats" in df.columns else None
    pid = df["payment_id"].astype("string").str.strip()
    created = parse_created(df["created"], decided)
    currency = df["currency"].astype("string").str.strip().str.upper()
    exponent = pd.Series([currency_exponent(c) for c in currency.fillna("")], index=df.index,
                         dtype=object)
    unit = df["amount_unit"].astype("string").str.strip().str.lower().fillna("minor")
    amount_text = canonical_amounts(df["amount"], "amount", decided)
    amount = pd.Series([to_major(t, u, e) for t, u, e in zip(amount_text, unit, exponent,
                                                             strict=True)], index=df.index,
                       dtype=object)
    refunded_text = canonical_amounts(df["amount_refunded"], "amount_refunded", decided).mask(
        blank(df["amount_refunded"]), "0")
    refunded = pd.Series([to_major(t, u, e) for t, u, e in zip(refunded_text, unit, exponent,
                                                               strict=True)], index=df.index,
                         dtype=object)
    status_key = df["status"].astype("string").str.strip().str.lower()
    base_status = status_key.map(STATUS_MAP)
    kind = df["object_type"].astype("string").str.lower()
    charge_of = (df["charge"] if "charge" in df.columns else pd.Series(pd.NA, index=df.index)
                 ).astype("string").str.strip()

    # Refunds and disputes change the charge they name; they are not payments themselves.
    is_refund = kind.eq("refund").fillna(False).to_numpy(bool)
    is_dispute = kind.eq("dispute").fillna(False).to_numpy(bool)
    book.quarantine("invalid_amount", "amount", is_refund & amount.isna().to_numpy(bool))
    alive = book.alive.copy()
    counted = is_refund & alive & status_key.isin(REFUND_COUNTED).fillna(False).to_numpy(bool)
    refund_total = pd.Series(amount[counted].to_numpy(), index=charge_of[counted].to_numpy(),
                             dtype=object).groupby(level=0).agg(lambda v: sum(v, Decimal(0)))
    lost = is_dispute & alive & ~status_key.isin(DISPUTE_NOT_LOST).fillna(False).to_numpy(bool)
    disputed_charges = set(charge_of[lost].dropna())
    charge_ids = set(pid[kind.eq("charge").fillna(False)].dropna())
    adjustment = is_refund | is_dispute
    book.remove("adjustment_applied", adjustment & charge_of.isin(charge_ids).to_numpy(bool))
    book.remove("adjustment_without_charge", adjustment)
    if len(refund_total):
        from_refunds = pid.map(refund_total)
        refunded = pd.Series([r if t is None or pd.isna(t) or (r is not None and r >= t) else t
                              for r, t in zip(refunded, from_refunds, strict=True)],
                             index=df.index, dtype=object)

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
    # An authorised charge never captured is no payment: pending, or canceled once released.
    captured = flags(df.get("captured", pd.Series(pd.NA, index=df.index, dtype="string")))
    uncaptured = (kind.eq("charge").fillna(False) & captured.eq(False).fillna(False)
                  ).to_numpy(bool)
    released = uncaptured & (full_refund | _flag(df["refunded"]))
    status[uncaptured & status.eq("succeeded").to_numpy(bool)] = "pending"
    status[released] = "canceled"
    finished = status.isin(["succeeded", "refunded", "partially_refunded"])
    status[finished & part_refund] = "partially_refunded"
    status[finished & (full_refund | _flag(df["refunded"]))] = "refunded"
    disputed = _flag(df["disputed"]) | pid.isin(disputed_charges).to_numpy(bool)
    status[(finished | status.eq("disputed")) & disputed] = "disputed"

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
