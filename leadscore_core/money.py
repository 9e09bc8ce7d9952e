"""Which currency an amount of money is in: the one place it is decided, and how it is written.

The plan catalogue's prices and the amounts summed from a customer's payments are numbers; the
currency they are in is never guessed:

- A currency the catalogue declares (``currency:`` in the plan catalogue) is the plan prices'
  currency (and only payments in it are matched to a plan).
- With none declared, the evidence decides: the currencies of the payments that matched a
  plan (``clean/payments`` publishes them as ``payment_currencies.json``), or, while no
  payment matched one, the currencies of every payment landed. One currency is that
  currency; several are shown as several (the prices hold in each of them); none is "not
  known".
- Amounts summed from payments (a customer's amount paid or refunded) are summed per
  currency and never across currencies: 150 USD and 20 EUR are two amounts, not 170 of
  anything. Each customer's amounts are kept per currency (``PAYMENT_AMOUNTS``, beside
  their features) and shown so (``amounts_text``: "$150.00 + €20.00"), so a customer's
  amount reads in the currency their own payments were in. As a model's feature an amount
  is one number only while every payment it counts is in one currency; in several it is
  missing and the customer is set aside for it with the currencies and amounts named
  (``features.snapshot``); so is one in another currency than the feature is in across
  customers (the catalogue's declared currency, else the one all customers' amounts are
  in; several and none declared: none chosen). They are not converted: a rate would have
  to be chosen (which day's, whose), the exports state none, and a guessed rate is a wrong
  value that looks right; a missing feature is one the model is trained to read. Where no
  customer's row says what its amounts are in, they are in the landed payments' currencies.
- Amounts from invoice lines (a customer's spend, average basket) are in the currency the
  user declares for the invoice exports (``LEADSCORE_INVOICE_CURRENCY``): the exports carry
  none, so without it the currency is not known, and said to be.

``money_text`` writes an amount with its currency, ``amounts_text`` several amounts each in its
own: the API's plan answers, the reasons and
the pages all go through it. No Dagster and no Litestar imports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel.numbers import format_currency, is_currency

from leadscore_core.published import PublishedFile, publish_file, read_json

LOCALE = "en"
# Beside the serving snapshot: how many clean payments are in each currency (all landed, and
# those matched to a plan), published by clean/payments.
PAYMENT_CURRENCIES_FILE = "payment_currencies.json"
# A customer's amounts summed from payments, per field and currency (JSON text beside their
# features: ``{"amount_paid": {"EUR": 20.0, "USD": 150.0}, "amount_refunded": {}}``).
PAYMENT_AMOUNTS = "payment_amounts"

# Units of money in a ``FieldDisplay`` (besides an ISO 4217 code): an amount whose currency
# is not known, and an amount summed from payments (its currency: the payments').
MONEY = "money"
PAYMENT_MONEY = "money:payments"
INVOICE_MONEY = "money:invoices"  # an amount from invoice lines: the declared invoice currency
_SEVERAL = "money:"  # + "EUR,USD": an amount in one of several currencies
_ISO = re.compile(r"[A-Z]{3}")

DECLARED, MATCHED, LANDED, UNKNOWN = ("declared", "matched payments", "landed payments",
                                      "unknown")


def is_iso_currency(unit: str | None) -> bool:
    return bool(unit) and _ISO.fullmatch(unit) is not None


def is_money(unit: str | None) -> bool:
    return bool(unit) and (unit == MONEY or unit.startswith(_SEVERAL) or is_iso_currency(unit))


@dataclass(frozen=True)
class Currency:
    """The currencies an amount is in (one, several, or none known) and what says so."""

    codes: tuple[str, ...] = ()
    source: str = UNKNOWN  # DECLARED, MATCHED, LANDED or UNKNOWN

    @property
    def code(self) -> str | None:
        """The one ISO code, or None (several, or not known)."""
        return self.codes[0] if len(self.codes) == 1 else None

    @property
    def unit(self) -> str:
        """The ``FieldDisplay`` unit for an amount in this currency."""
        if len(self.codes) == 1:
            return self.codes[0]
        return _SEVERAL + ",".join(self.codes) if self.codes else MONEY

    def text(self, amount: float) -> str:
        return money_text(amount, self.unit)

    @property
    def description(self) -> str:
        """What the currency is and what says so, for a person."""
        if not self.codes:
            return "not known (none declared, and no payment with a currency landed)"
        if self.source == DECLARED:
            return f"{self.codes[0]} (declared in the plan catalogue)"
        if len(self.codes) == 1:
            return f"{self.codes[0]} (every one of the {self.source} is in it)"
        return (f"{' or '.join(self.codes)} (the {self.source} are in {len(self.codes)} "
                f"currencies: none is chosen, each amount names them all)")


def money_text(amount: float, unit: str = MONEY) -> str:
    """``$150.00`` (one currency), ``150.00 (EUR or USD)`` (several: the amount holds in
    each), ``150.00 (currency not known)``."""
    if is_iso_currency(unit):
        return format_currency(amount, unit, locale=LOCALE)
    if unit.startswith(_SEVERAL) and unit not in (PAYMENT_MONEY, INVOICE_MONEY):
        return f"{amount:,.2f} ({' or '.join(unit[len(_SEVERAL):].split(','))})"
    return f"{amount:,.2f} (currency not known)"


def amounts_text(by_currency: Mapping[str, float]) -> str:
    """Amounts in several currencies, each in its own, never added up:
    ``€20.00 + $150.00`` (in the order of the codes; a blank code: currency not known)."""
    return " + ".join(money_text(float(amount), code if is_iso_currency(code) else MONEY)
                      for code, amount in sorted(by_currency.items()))


def record_amounts(record: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The ``PAYMENT_AMOUNTS`` of a customer's row (empty for a row without any)."""
    text = record.get(PAYMENT_AMOUNTS)
    if not isinstance(text, str) or not text:
        return {}
    return {field: dict(by) for field, by in json.loads(text).items()}


def decide_currency(declared: str | None, evidence: Iterable[str], source: str) -> Currency:
    """The declared currency, else the distinct currencies of ``evidence`` (from ``source``)."""
    if declared:
        return Currency((declared.strip().upper(),), DECLARED)
    codes = tuple(sorted({str(c).strip().upper() for c in evidence if c and str(c).strip()}))
    return Currency(codes, source) if codes else Currency()


def iso_code(value: str | None) -> str | None:
    """A declared currency as its ISO 4217 code (``usd`` -> ``USD``); None for none; a
    ValueError for a word that is no currency (never shown as if it were one)."""
    if value is None or not str(value).strip():
        return None
    code = str(value).strip().upper()
    if not is_currency(code):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. USD, EUR, GBP)")
    return code


def currency_counts(currency: Iterable[Any], plan: Iterable[Any]) -> dict[str, Any]:
    """The published document: clean payments per currency, all and matched to a plan."""
    import pandas as pd

    landed: dict[str, int] = {}
    matched: dict[str, int] = {}
    for code, name in zip(currency, plan, strict=True):
        if pd.isna(code) or not str(code).strip():
            continue
        key = str(code).strip().upper()
        landed[key] = landed.get(key, 0) + 1
        if not pd.isna(name) and str(name):
            matched[key] = matched.get(key, 0) + 1
    return {"landed": landed, "matched": matched,
            "computed_at": datetime.now(UTC).isoformat(timespec="seconds")}


def payment_currencies_path(serving_snapshot: Path) -> Path:
    return Path(serving_snapshot).parent / PAYMENT_CURRENCIES_FILE


def publish_payment_currencies(document: Mapping[str, Any], serving_snapshot: Path) -> Path:
    return publish_file(lambda tmp: Path(tmp).write_text(json.dumps(document, indent=2)),
                        payment_currencies_path(serving_snapshot))


def plan_price_currency(declared: str | None, document: Mapping[str, Any] | None) -> Currency:
    """The plan prices' currency: declared, else the matched payments', else the landed."""
    document = document or {}
    matched = [c for c, n in (document.get("matched") or {}).items() if n]
    if matched or declared:
        return decide_currency(declared, matched, MATCHED)
    return payment_amount_currency(document)


def payment_amount_currency(document: Mapping[str, Any] | None) -> Currency:
    """The currency of amounts summed from payments: the landed payments' currencies."""
    landed = [c for c, n in ((document or {}).get("landed") or {}).items() if n]
    return decide_currency(None, landed, LANDED)


def invoice_amount_currency(declared: str | None) -> Currency:
    """The currency of amounts from invoice lines: the declared one, else not known."""
    return decide_currency(declared, (), UNKNOWN)


class PaymentCurrencies:
    """The published payment currencies and the decisions they lead to, re-read when the
    file is replaced (``refresh`` off the request path; the properties are attribute reads)."""

    def __init__(self, path: Path, declared: str | None):
        self._file = PublishedFile(Path(path), read_json)
        self.declared = declared
        self.plan_prices = plan_price_currency(declared, None)
        self.payment_amounts = payment_amount_currency(None)
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when a decision changed."""
        document = self._file.get()
        decided = (plan_price_currency(self.declared, document),
                   payment_amount_currency(document))
        changed = decided != (self.plan_prices, self.payment_amounts)
        self.plan_prices, self.payment_amounts = decided
        return changed
