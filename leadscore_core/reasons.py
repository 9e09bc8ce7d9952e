"""Reasons a person reads: the one place a model's contribution becomes a sentence.

The explainers give, per feature, the export's column name, the value the model saw and a
contribution on the raw (log-odds) scale. People need something else: the field as their
export (or the profile's ``display`` labels) spells it, the value written for people (a time
of day as ``06:07``, money with its currency, numbers rounded sensibly, categories as sent),
a missing value said as such ("Campaign not given"), and the effect in points of the 0-100
score. ``human_reason`` makes that from one raw reason; the API answers, the CSV exports and
the pages all call it, so a reason reads the same everywhere. The raw contribution is kept
beside it for machines.

A reason's points are what it adds to the score: ``100 * (p - p_without)``, where
``p_without`` is the probability with that one contribution taken out of the raw score
(``link`` maps a raw score to a probability, the model's own calibration included). A
missing value is a reason only when it moves the score by at least ``MISSING_MIN_POINTS``:
a blank field that barely matters is not something to tell a salesperson about.

No Dagster and no Litestar imports: the API, the batch scores and the pages use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from leadscore_core.money import (
    INVOICE_MONEY,
    MONEY,
    PAYMENT_MONEY,
    Currency,
    amounts_text,
    is_money,
    money_text,
    record_amounts,
)

# A missing value is shown as a reason only when it moves the 0-100 score at least this much.
MISSING_MIN_POINTS = 1.0

Link = Callable[[float], float]


@dataclass(frozen=True)
class FieldDisplay:
    """How one field is shown: its label and its unit.

    ``unit``: an ISO 4217 currency code (``USD``) for money, ``money`` for an amount whose
    currency is not known, ``money:payments`` for an amount summed from payments (its
    currency the payments', ``leadscore_core.money``), ``money:invoices`` for one from
    invoice lines (the declared invoice currency), ``time_of_day`` for hours after
    midnight (6.1167 -> ``06:07``),
    ``share`` for a fraction written as a percentage (0.25 -> ``25%``), ``weekday`` for a
    day's name (``friday`` -> ``Friday``), or a word written after the number (``days``,
    ``months``, ``seats``; singular after 1).
    """

    label: str
    unit: str | None = None


# Fields the feature stage derives (not columns of any export), named for people.
DERIVED: dict[str, FieldDisplay] = {
    "created_hour": FieldDisplay("Time of day", "time_of_day"),
    "created_weekday": FieldDisplay("Day of the week", "weekday"),
    "recency_days": FieldDisplay("Days since last purchase", "days"),
    "frequency": FieldDisplay("Purchases"),
    "monetary": FieldDisplay("Spend", INVOICE_MONEY),
    "tenure_days": FieldDisplay("Days as a customer", "days"),
    "avg_basket": FieldDisplay("Average basket", INVOICE_MONEY),
    "distinct_products": FieldDisplay("Different products bought"),
    "return_rate": FieldDisplay("Share of items returned", "share"),
    "mean_days_between": FieldDisplay("Average days between purchases", "days"),
    "spend_30d": FieldDisplay("Spend in the last 30 days", INVOICE_MONEY),
    "spend_90d": FieldDisplay("Spend in the last 90 days", INVOICE_MONEY),
    "invoices_90d": FieldDisplay("Purchases in the last 90 days"),
    "invoices_180d": FieldDisplay("Purchases in the last 180 days"),
    "active_months": FieldDisplay("Months with a purchase", "months"),
    "spend_trend": FieldDisplay("Spend trend (last 90 days against the 90 before)"),
    "frequency_per_month": FieldDisplay("Purchases per month"),
    "recency_over_interval": FieldDisplay("Quiet time against the usual gap between purchases"),
    "spend_180d": FieldDisplay("Spend in the last 180 days", INVOICE_MONEY),
    "longest_gap_days": FieldDisplay("Longest gap between purchases", "days"),
    "recency_over_longest_gap": FieldDisplay("Quiet time against the longest gap before"),
    "avg_quantity": FieldDisplay("Average quantity per line"),
    "avg_unit_price": FieldDisplay("Average unit price", INVOICE_MONEY),
    "lines_per_invoice": FieldDisplay("Lines per invoice"),
    "tenure_share": FieldDisplay("Share of the data's history as a customer", "share"),
    "history_censored": FieldDisplay("Customer since before the data starts"),
    "country": FieldDisplay("Country"),
    # an account snapshot's payment history (features.snapshot.PAYMENT_FEATURES)
    "payments_count": FieldDisplay("Payments"),
    "payments_failed": FieldDisplay("Failed payments"),
    "failed_share": FieldDisplay("Share of payments that failed", "share"),
    "refunds_count": FieldDisplay("Refunds"),
    "amount_paid": FieldDisplay("Amount paid", PAYMENT_MONEY),
    "amount_refunded": FieldDisplay("Amount refunded", PAYMENT_MONEY),
    "disputes_count": FieldDisplay("Disputes"),
}


class HumanReason(NamedTuple):
    """One reason as people read it, with the machine's figures kept beside it (a named
    tuple: the API makes several per answer, and a tuple is the cheapest to make)."""

    text: str  # "Business type is Dental"
    points: float  # effect on the 0-100 score, signed
    feature: str  # the export's column name
    value: Any  # the value the model saw (None: missing)
    contribution: float  # raw (log-odds) contribution

    @property
    def points_text(self) -> str:
        return points_text(self.points)

    @property
    def sentence(self) -> str:
        """``Business type is Dental: +12 points``."""
        return f"{self.text}: {self.points_text}"


def displays_for(display: Mapping[str, Any] | None, payments: Currency | None = None,
                 invoices: Currency | None = None) -> dict[str, FieldDisplay]:
    """A profile's ``display`` section (column -> {label, unit}: mappings or objects with
    those attributes) as ``FieldDisplay``s; with ``payments`` (the landed payments' currency,
    ``money.payment_amount_currency``) and ``invoices`` (``money.invoice_amount_currency``),
    the derived amounts of payments and of invoice lines in those currencies."""
    out: dict[str, FieldDisplay] = {}
    for marker, currency in ((PAYMENT_MONEY, payments), (INVOICE_MONEY, invoices)):
        if currency is not None:
            out.update({column: FieldDisplay(shown.label, currency.unit)
                        for column, shown in DERIVED.items() if shown.unit == marker})
    for column, spec in (display or {}).items():
        if isinstance(spec, FieldDisplay):
            out[column] = spec
            continue
        get = spec.get if isinstance(spec, Mapping) else lambda k, s=spec: getattr(s, k, None)
        out[column] = FieldDisplay(get("label") or column, get("unit"))
    return out


def field_display(feature: str, displays: Mapping[str, FieldDisplay] | None = None
                  ) -> FieldDisplay:
    """The display of a field: the profile's, else a derived feature's, else its own name
    as the export spells it."""
    if displays and feature in displays:
        return displays[feature]
    return DERIVED.get(feature) or _own_name(feature)


@lru_cache(maxsize=4096)
def _own_name(feature: str) -> FieldDisplay:
    return FieldDisplay(feature)


_is_money = lru_cache(maxsize=256)(is_money)


def format_value(value: Any, unit: str | None = None) -> str:
    """A value as people write it (``None`` is the empty string: say "not given" instead)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):  # noqa: UP038 - the tuple is the faster check
        number = float(value)
        if unit == "time_of_day":
            minutes = int(round(number * 60)) % (24 * 60)
            return f"{minutes // 60:02d}:{minutes % 60:02d}"
        if unit and _is_money(unit):
            return money_text(number, unit)
        if unit == "share":  # whole percent from 10% up; below, one or two figures
            percent = 100 * number
            return f"{format_number(float(round(percent)) if abs(percent) >= 10 else percent)}%"
        text = format_number(number)
        if not unit:
            return text
        return f"{text} {unit[:-1] if text == '1' and unit.endswith('s') else unit}"
    if unit == "weekday":
        return str(value).capitalize()
    return str(value)


def format_number(number: float) -> str:
    """Sensible rounding: whole numbers stay whole, 151.484 -> ``151``, 3.14159 -> ``3.1``,
    0.01234 -> ``0.012``; thousands separated."""
    if not math.isfinite(number):
        return str(number)
    if number.is_integer() or abs(number) >= 100:
        return f"{round(number):,}"
    if abs(number) >= 1:
        return f"{number:,.1f}".rstrip("0").rstrip(".")
    if number == 0:
        return "0"
    digits = 1 - int(math.floor(math.log10(abs(number))))  # two significant digits
    return f"{number:.{digits}f}".rstrip("0").rstrip(".")


def points_text(points: float) -> str:
    """``+12 points``, ``-3 points``, ``+0.4 points``, ``+0.04 points``, ``+<0.01 points``
    (a reason never reads "0 points")."""
    if abs(round(points, 1)) >= 1:
        whole = round(points)
        return f"{whole:+d} point{'s' if abs(whole) != 1 else ''}"
    if abs(points) >= 0.095:
        return f"{points:+.1f} points"
    if abs(points) >= 0.0095:
        return f"{points:+.2f} points"
    return f"{'-' if points < 0 else '+'}<0.01 points"


def reason_points(contribution: float, raw_score: float, link: Link) -> float:
    """What this contribution adds to the 0-100 score (see the module docstring)."""
    return points_given(_probability(link, raw_score), contribution, raw_score, link)


def points_given(probability: float, contribution: float, raw_score: float, link: Link
                 ) -> float:
    """``reason_points`` when the raw score's probability (``link(raw_score)``) is known."""
    return 100.0 * (probability - link(raw_score - contribution))


def points_of_many(raws: np.ndarray, contributions: np.ndarray, a: float = 1.0,
                   b: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``points_given`` for many reasons at once, with the link ``sigmoid_link(a, b)``:
    ``raws`` (rows,) are raw scores and ``contributions`` (rows, k) their reasons'. Returns
    the points, on the same side of ``MISSING_MIN_POINTS`` as ``points_given``'s, and the
    points rounded to two places, the very float ``round(points_given(...), 2)`` is.

    numpy's ``exp`` is not ``math.exp`` to the last bit, and ``rint(100 x) / 100`` is not
    Python's correctly rounded ``round(x, 2)`` next to a half; a last bit matters only to a
    value within reach of a rounding half or of ``MISSING_MIN_POINTS``, so those few are
    worked out one at a time, as the single-reason path does.
    """

    def sigmoid(raw: np.ndarray) -> np.ndarray:  # sigmoid_link's two branches at once
        z = a * raw + b
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    raws = np.asarray(raws, dtype=np.float64)
    points = 100.0 * (sigmoid(raws)[:, None] - sigmoid(raws[:, None] - contributions))
    scaled = 100.0 * points
    rounded = np.rint(scaled) / 100.0
    # the error of numpy's figures is below 1e-11 points; the margins are far wider
    near = ((np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
            | (np.abs(np.abs(points) - MISSING_MIN_POINTS) < 1e-9))
    if near.any():
        link = sigmoid_link(a, b)
        for i, k in zip(*np.nonzero(near), strict=True):
            raw = float(raws[i])
            exact = points_given(link(raw), float(contributions[i, k]), raw, link)
            points[i, k], rounded[i, k] = exact, round(exact, 2)
    return points, rounded


# The reasons of one answer share its raw score: its probability is worked out once.
_last_probability: tuple[Link, float, float] | None = None


def _probability(link: Link, raw_score: float) -> float:
    global _last_probability
    last = _last_probability
    if last is not None and last[0] is link and last[1] == raw_score:
        return last[2]
    p = link(raw_score)
    _last_probability = (link, raw_score, p)
    return p


def human_reason(feature: str, value: Any, contribution: float, *, raw_score: float,
                 link: Link, displays: Mapping[str, FieldDisplay] | None = None,
                 sent: Any = None) -> HumanReason | None:
    """The reason as people read it, or None for a missing value that does not move the
    score by ``MISSING_MIN_POINTS``.

    ``sent``: the value as the caller sent it (a request's own spelling of a category); the
    model's decoded value is normalised (lower case), so ``sent`` wins when given.
    """
    shown = (displays[feature] if displays and feature in displays
             else DERIVED.get(feature) or _own_name(feature))  # field_display, inlined
    points = reason_points(contribution, raw_score, link)
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if missing:
        if abs(points) < MISSING_MIN_POINTS:
            return None
        text = f"{shown.label} not given"
    else:
        text = reason_text(shown, value, sent)
    return HumanReason(text=text, points=points, feature=feature,
                       value=None if missing else value, contribution=contribution)


def reason_text(shown: FieldDisplay, value: Any, sent: Any = None) -> str:
    """The text of a reason whose value is given (``human_reason``'s ``text``)."""
    if isinstance(sent, str) and sent.strip() and isinstance(value, str):
        value_text = " ".join(sent.split())
    else:
        value_text = format_value(value, shown.unit)
    return (f"{shown.label}: {value_text}" if isinstance(value, bool)
            else f"{shown.label} is {value_text}")


class ReasonTexts:
    """``human_reason``'s text, remembered per field, value and spelling sent: the reasons
    of a batch repeat the same few values, and writing one costs more than looking it up.
    Bounded: arbitrary numbers cannot grow it without limit."""

    def __init__(self, displays: Mapping[str, FieldDisplay] | None = None,
                 limit: int = 65_536):
        self.displays = displays
        self.limit = limit
        self._texts: dict[tuple[str, type, Any, Any], str] = {}

    def __call__(self, feature: str, value: Any, sent: Any = None) -> str:
        """The text for a given (not missing) value; ``sent`` as for ``human_reason``."""
        # the spelling sent counts only for a category sent as text; the value's type is in
        # the key because True, 1 and 1.0 are equal keys but are written differently
        spelt = sent if type(sent) is str and type(value) is str else None
        key = (feature, type(value), value, spelt)
        text = self._texts.get(key)
        if text is None:
            text = reason_text(field_display(feature, self.displays), value, spelt)
            if len(self._texts) >= self.limit:
                self._texts.clear()
            self._texts[key] = text
        return text

    def use(self, displays: Mapping[str, FieldDisplay] | None) -> None:
        """Word the reasons by ``displays`` from now on (a decided currency changed)."""
        self.displays = displays
        self._texts = {}

    def missing(self, feature: str) -> str:
        """The text for a missing value."""
        return f"{field_display(feature, self.displays).label} not given"


class CustomerReasonTexts(ReasonTexts):
    """A known customer's reasons: an amount from payments in the currency of the customer's
    own payments; one the model read as missing for its currency (in several, or in another
    than the feature's: ``features.snapshot``) says each currency's amount instead of "not
    given"."""

    def __init__(self, texts: ReasonTexts, amounts: Mapping[str, Mapping[str, float]]):
        displays = dict(texts.displays or {})
        self.set_aside: dict[str, str] = {}
        for field, by_currency in amounts.items():
            shown = field_display(field, texts.displays)
            if len(by_currency) == 1:
                [code] = by_currency
                displays[field] = FieldDisplay(shown.label, code or MONEY)
                why = "in another currency than the score compares amounts in"
            else:
                why = f"in {len(by_currency)} currencies, not added up"
            if by_currency:
                self.set_aside[field] = (f"{shown.label} is {amounts_text(by_currency)} "
                                         f"({why}: the score reads it as not given)")
        super().__init__(displays, limit=texts.limit)

    def missing(self, feature: str) -> str:
        return self.set_aside.get(feature) or super().missing(feature)


def customer_texts(texts: ReasonTexts, record: Mapping[str, Any]) -> ReasonTexts:
    """The reasons' texts for one customer's row: ``texts`` itself unless the row keeps its
    amounts per currency (``money.PAYMENT_AMOUNTS``)."""
    amounts = record_amounts(record)
    return CustomerReasonTexts(texts, amounts) if amounts else texts


def record_value_text(record: Mapping[str, Any], feature: str, unit: str | None) -> str:
    """A field of a customer's row as people read it: an amount from payments in each of
    its currencies (``$150.00``, ``€20.00 + $150.00``), anything else by ``format_value``."""
    by_currency = record_amounts(record).get(feature)
    if by_currency:
        return amounts_text(by_currency)
    return format_value(record.get(feature), unit)


def logistic_link(task: str, calibration: Mapping[str, Any] | None,
                  objective: str | None = None) -> tuple[float, float] | None:
    """(a, b) with probability = sigmoid(a * raw score + b) for a binary model (Platt
    calibration, or LightGBM's plain ``binary sigmoid:1``), or None when the link is
    something else."""
    if task != "binary":
        return None
    if calibration:
        if calibration.get("method") != "platt":
            return None
        return float(calibration["a"]), float(calibration["b"])
    if objective is not None and objective not in ("binary sigmoid:1", "binary sigmoid:1.0"):
        return None
    return 1.0, 0.0


def bundle_logistic_link(bundle: Any) -> tuple[float, float] | None:
    """``logistic_link`` of a ``ModelBundle`` (its calibration, else its booster's objective)."""
    if bundle.task != "binary" or bundle.calibration or bundle.booster is None:
        return logistic_link(bundle.task, bundle.calibration)
    if bundle.linear is not None:  # a blend: its raw score is log-odds by construction
        return logistic_link(bundle.task, None)
    objective = str(bundle.booster.dump_model(num_iteration=0).get("objective", ""))
    return logistic_link(bundle.task, None, objective)


def bundle_link(bundle: Any) -> Link:
    """Raw score -> probability for a binary ``ModelBundle`` (plain sigmoid when its link is
    not logistic: points are then an approximation)."""
    return sigmoid_link(*(bundle_logistic_link(bundle) or (1.0, 0.0)))


def sigmoid_link(a: float = 1.0, b: float = 0.0) -> Link:
    def link(raw: float) -> float:
        z = a * raw + b
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    return link
