"""From request bodies to answers: encode, predict, explain, no DataFrame on the way.

Each function takes the ``ServedModel`` a request started with (so a champion swapped in
meanwhile never mixes into one answer) and returns the response bodies plus the
(inputs, outputs) pairs for the prediction log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import numpy as np
from msgspec import Struct
from msgspec.structs import asdict

from api.models import ServedModel
from api.schemas import ID_FIELD, ChurnRisk, LeadScore, PlanRecommendation, Reason, Suggestion
from leadscore_core.money import Currency, PaymentCurrencies
from leadscore_core.plans import PlanCatalogue
from leadscore_core.reasons import (
    MISSING_MIN_POINTS,
    FieldDisplay,
    ReasonTexts,
    points_given,
)
from leadscore_core.suggest import actionable_indices, best_change, split_thresholds
from leadscore_core.tiers import tiers_of

# (inputs, outputs) per prediction; inputs are the request's own body (a Struct that encodes
# without its unset fields) or, for a customer looked up by id, the features used
LogRows = list[tuple[Struct | dict[str, Any], dict[str, Any]]]
TOP_K = 3


def records_of(bodies: Sequence[Struct]) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Feature mappings for the encoder, and the callers' ids."""
    records = [asdict(b) for b in bodies]
    ids = [r.pop(ID_FIELD, None) for r in records]
    return records, ids


def encode(model: ServedModel, records: list[dict[str, Any]]) -> np.ndarray:
    return model.bundle.encoder.transform_records(records)


# (base value, raw score, reasons for, reasons against) of one binary answer
Explained = tuple[float, float, list[Reason], list[Reason]]
Displays = Mapping[str, FieldDisplay] | ReasonTexts | None


def texts_of(displays: Displays) -> ReasonTexts:
    return displays if isinstance(displays, ReasonTexts) else ReasonTexts(displays)


def humanise(model: ServedModel, reasons: list[Reason], raw_score: float,
             record: Mapping[str, Any], texts: ReasonTexts) -> list[Reason]:
    """The reasons with their text and points for people (``leadscore_core.reasons``); a
    missing value that does not move the score by ``MISSING_MIN_POINTS`` is left out."""
    link, field_of = model.link, model.field_of
    p = link(raw_score)
    kept = []
    for r in reasons:
        points = points_given(p, r.contribution, raw_score, link)
        value = r.value
        if value is None or value != value:  # missing (NaN), as human_reason reads it
            if abs(points) < MISSING_MIN_POINTS:
                continue
            r.value, r.text = None, texts.missing(r.feature)
        else:
            r.text = texts(r.feature, value, record.get(field_of.get(r.feature, r.feature)))
        r.points = round(points, 2)
        kept.append(r)
    return kept


def _binary(model: ServedModel, records: list[dict[str, Any]], texts: ReasonTexts
            ) -> tuple[np.ndarray | list[float], list[Explained]]:
    """Probabilities and explained answers of binary-model rows: one lead through the
    explainer's single-row path, a batch from its ranked contributions in one pass (the same
    reasons, values and order as ``Explainer.explain`` gives: ``tests/test_api.py``)."""
    X = encode(model, records)
    if len(records) == 1:
        proba, (e,) = model.score_and_explain(X, TOP_K)
        return proba, [(e.base_value, e.raw_score,
                        humanise(model, e.reasons_for, e.raw_score, records[0], texts),
                        humanise(model, e.reasons_against, e.raw_score, records[0], texts))]
    ranked = model.bundle.explainer.ranked(X, TOP_K)
    proba = model.probabilities(X, ranked.raws)
    names, decode = model.reason_names, model.decoders
    link, field_of, missing_min = model.link, model.field_of, MISSING_MIN_POINTS
    out: list[Explained] = []
    for i, c in enumerate(ranked.contributions):
        x, raw, record = ranked.codes[i], ranked.raws[i], records[i]
        p = link(raw)
        sides: list[list[Reason]] = [[], []]
        for side, candidates in ((0, ranked.top[i]), (1, ranked.bottom[i])):
            kept = sides[side]
            for j in candidates:
                cj = c[j]
                if (cj <= 0) if side == 0 else (cj >= 0):
                    continue
                points = points_given(p, cj, raw, link)
                feature, value = names[j], decode[j](x[j])
                if value is None:  # decode gives None for a missing value
                    if abs(points) < missing_min:
                        continue
                    text = texts.missing(feature)
                else:
                    text = texts(feature, value, record.get(field_of.get(feature, feature)))
                kept.append(Reason(feature, value, cj, text, round(points, 2)))
        out.append((ranked.bases[i], raw, sides[0], sides[1]))
    return proba, out


def _tiers(model: ServedModel, scores: list[int], bounds: np.ndarray | None
           ) -> list[str | None]:
    bounds = model.tier_bounds if bounds is None else bounds
    if bounds is None:
        return [None] * len(scores)
    return tiers_of(scores, bounds)


def _inputs(record: Mapping[str, Any], id_: str | None) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if v is not None}
    if id_ is not None:
        out[ID_FIELD] = id_
    return out


def score_leads(model: ServedModel, bodies: Sequence[Struct],
                tier_bounds: np.ndarray | None = None,
                displays: Displays = None, *, horizon: str = "",
                ) -> tuple[list[LeadScore], LogRows]:
    """``tier_bounds``: the batch scores' published boundaries for this version (default: the
    bundle's own); ``displays``: the lead profile's labels and units for the reasons (a
    ``ReasonTexts`` of them remembers the texts from one request to the next);
    ``horizon``: what the probability is of (``leadscore_core.horizons``)."""
    records, ids = records_of(bodies)
    proba, explained = _binary(model, records, texts_of(displays))
    # 0-100, half to even: Python's round and numpy's rint agree
    if len(records) == 1:
        probabilities, scores = [float(proba[0])], [round(100.0 * proba[0])]
    else:
        probabilities = np.asarray(proba, dtype=np.float64).tolist()
        scores = np.rint(100.0 * np.asarray(proba)).astype(int).tolist()
    tiers = _tiers(model, scores, tier_bounds)
    name, version = model.name, model.version
    out, log = [], []
    for i, (base, raw, reasons_for, reasons_against) in enumerate(explained):
        p, s, t = probabilities[i], scores[i], tiers[i]
        out.append(LeadScore(
            id=ids[i], probability=p, score=s, tier=t, reasons_for=reasons_for,
            reasons_against=reasons_against, base_value=base, raw_score=raw, model=name,
            version=version, horizon=horizon))
        log.append((bodies[i], {"probability": p, "score": s, "tier": t}))
    return out, log


def churn_risks(model: ServedModel, bodies: Sequence[Struct] | None,
                risk: Callable[[float], str], *, records: list[dict[str, Any]] | None = None,
                ids: list[str | None] | None = None, as_of: str | None = None,
                displays: Displays = None, horizon: str = "",
                ) -> tuple[list[ChurnRisk], LogRows]:
    if records is None:
        records, ids = records_of(bodies or [])
        inputs: Sequence[Any] = bodies or []
    else:
        inputs = [_inputs(r, i) for r, i in zip(records, ids or [None] * len(records),
                                                strict=True)]
    proba, explained = _binary(model, records, texts_of(displays))
    out, log = [], []
    for i, (base, raw, reasons_for, reasons_against) in enumerate(explained):
        p = float(proba[i])
        level = risk(p)
        out.append(ChurnRisk(
            id=ids[i], probability=p, risk=level, reasons_for=reasons_for,
            reasons_against=reasons_against, base_value=base, raw_score=raw,
            model=model.name, version=model.version, as_of=as_of, horizon=horizon))
        log.append((inputs[i], {"probability": p, "risk": level}))
    return out, log


class PlanPrices:
    """The price list plan answers carry, in the currency decided for the prices
    (``PaymentCurrencies.plan_prices``); ``current`` is replaced whole, so a batch reads one
    list."""

    def __init__(self, catalogue: PlanCatalogue, currencies: PaymentCurrencies):
        self.catalogue, self.currencies = catalogue, currencies
        self.current: dict[str, dict[str, Any]] = {}
        self.refresh()

    def refresh(self) -> None:
        self.current = {
            p["plan"].lower(): {k: (float(v) if k.endswith("price") else v) for k, v in p.items()}
            for p in self.catalogue.price_list(self.currencies.plan_prices)}

    @property
    def currency(self) -> Currency:
        return self.currencies.plan_prices


def recommend_plans(model: ServedModel, bodies: Sequence[Struct],
                    prices: Mapping[str, Mapping[str, Any]]
                    ) -> tuple[list[PlanRecommendation], LogRows]:
    records, ids = records_of(bodies)
    X = encode(model, records)
    proba = np.atleast_2d(model.bundle.predict_proba(X))
    best = np.argmax(proba, axis=1)
    out, log = [], []
    for i in range(len(records)):
        plan = model.classes[int(best[i])]
        probabilities = {c: float(proba[i, k]) for k, c in enumerate(model.classes)}
        price = prices.get(plan.lower(), {})
        out.append(PlanRecommendation(
            id=ids[i], plan=plan, monthly_price=price.get("monthly_price"),
            first_month_price=price.get("first_month_price"), currency=price.get("currency"),
            currencies=price.get("currencies") or [],
            probabilities=probabilities, model=model.name, version=model.version))
        log.append((bodies[i], {"plan": plan, **{
            f"probability_{c}": v for c, v in probabilities.items()}}))
    return out, log


def wants_suggestion(scope: Mapping[str, Any]) -> bool:
    """``?suggest=true`` on the request (read from the scope: the handler and the direct path
    answer alike)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query.get("suggest", [""])[-1].strip().lower() in ("true", "1", "yes")


class Suggester:
    """Best single changes for one served model version (its split thresholds read once)."""

    def __init__(self, model: ServedModel, actionable: Sequence[str]):
        self.model = model
        self.columns = actionable_indices(model.bundle, actionable)
        self.thresholds = split_thresholds(model.bundle)

    def suggest(self, records: list[dict[str, Any]], *, higher_is_better: bool,
                risk: Callable[[float], str] | None = None) -> list[Suggestion | None]:
        X = encode(self.model, records)
        out: list[Suggestion | None] = []
        for x in X:
            change = best_change(self.model.bundle, x, self.columns, self.thresholds,
                                 higher_is_better=higher_is_better)
            if change is None:
                out.append(None)
                continue
            p = change.probability
            out.append(Suggestion(
                feature=change.feature, value=change.value, change_to=change.change_to,
                probability=p, score=None if risk else round(100.0 * p),
                risk=risk(p) if risk else None))
        return out
